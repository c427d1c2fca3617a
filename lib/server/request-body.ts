import type { Body, BodySink } from '../types.ts';
import type { Exchange } from './connection.ts';

/**
 * The client's request body as the pipeline sees it: a view of its
 * exchange, which reads it from uWS `onData` with backpressure (see
 * `Exchange.readBody`).
 */
export class RequestBody implements Body {
  constructor(private readonly exchange: Exchange, readonly length: number | null) {}

  pipe(sink: BodySink): void {
    this.exchange.pipeBody(sink);
  }

  resume(): void {
    this.exchange.resumeBody();
  }

  destroy(): void {
    this.exchange.destroyBody();
  }
}
