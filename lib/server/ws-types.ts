/** What a proxied WebSocket link reports, and what the client's uWS socket carries. */
import type { WsLink } from './ws-link.ts';

/** How a link ended, for metrics and logs. */
export type LinkEnd = 'client' | 'upstream' | 'idle' | 'slow-client' | 'slow-upstream' | 'too-big' | 'aborted' | 'shutdown';

export interface LinkSummary {
  readonly end: LinkEnd;
  /** The close code the side that ended it gave (1006: abrupt). */
  readonly code: number;
  readonly durationMs: number;
  /** Messages client → upstream, and upstream → client. */
  readonly messagesIn: number;
  readonly messagesOut: number;
}

/** The uWS socket's user data: the link it belongs to. */
export interface ClientData {
  link: WsLink;
}

/** `pause`/`resume` on a uWS WebSocket exist from uWS 20.4x (the Node 22 build), not in the Node 20 one. */
export type Pausable = { pause?: () => void; resume?: () => void };
