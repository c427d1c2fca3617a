import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { expect, vi } from 'vitest';
import { patternChunk } from './http.ts';

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** How far a producing upstream got: bytes written, held up on 'drain', done, or cut off before done. */
export interface Produced {
  written: number;
  blocked: boolean;
  finished: boolean;
  aborted: boolean;
}

/**
 * An upstream handler that writes up to `total` bytes of pattern chunks,
 * waiting for 'drain' whenever `write` returns false, and reports how far it
 * got in `state`. `withLength` sends a Content-Length (else the body is chunked).
 */
export function producer(total: number, options: { withLength?: boolean } = {}): {
  state: Produced;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
} {
  const state: Produced = { written: 0, blocked: false, finished: false, aborted: false };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (options.withLength === true) res.setHeader('content-length', String(total));
    res.on('close', () => { if (!state.finished) state.aborted = true; });
    let i = 0;
    const pump = (): void => {
      while (state.written < total) {
        const n = Math.min(CHUNK, total - state.written);
        const ok = res.write(patternChunk(i++, CHUNK).subarray(0, n));
        state.written += n;
        if (!ok) {
          state.blocked = true;
          res.once('drain', () => {
            state.blocked = false;
            pump();
          });
          return;
        }
      }
      state.finished = true;
      res.end();
    };
    req.resume();
    pump();
  };
  return { state, handler };
}

/**
 * With `client` paused after sending its request for a large body: the
 * upstream behind `state` is held up and makes no progress between two polls,
 * having written far less than all (socket buffers hold a few MB; a gateway
 * that buffered the body would take it all); reading again lets it go on;
 * and once the client is gone the upstream's response is torn down.
 */
export async function expectReadingStops(state: Produced, client: Socket, options: { timeout: number; interval: number }): Promise<void> {
  try {
    let last = -1;
    await vi.waitFor(() => {
      const now = state.written;
      const stalled = state.blocked && now === last;
      last = now;
      expect(stalled, 'the upstream is held up and made no progress between two polls').toBe(true);
    }, options);
    expect(state.finished).toBe(false);
    expect(state.written).toBeLessThan(64 * MB);
    const before = state.written;
    client.resume();
    await vi.waitFor(() => expect(state.written).toBeGreaterThan(before + 8 * MB), { timeout: options.timeout });
  } finally {
    client.destroy();
  }
  await vi.waitFor(() => expect(state.aborted, 'the upstream response is torn down once the client is gone').toBe(true), { timeout: 5_000 });
}
