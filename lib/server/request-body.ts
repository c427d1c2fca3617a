import type { Body, BodySink } from '../types.ts';
import type { Exchange } from './connection.ts';
import type { IdleWatched } from './limits-cores.ts';

/**
 * The client's request body as the pipeline sees it: a view of its
 * exchange, which reads it from uWS `onData` with backpressure (see
 * `Exchange.readBody`). Chunks pass through it on their way to the
 * pipeline's sink, so it knows when the pipeline is reading and whether the
 * client keeps sending (`limits.bodyIdleTimeout`, see limits.ts).
 */
export class RequestBody implements Body, BodySink, IdleWatched {
  stirred = false;
  reading = false;
  idleRounds = 0;
  owner: { idle(): void } | null = null;
  private sink: BodySink | null = null;

  constructor(private readonly exchange: Exchange, readonly length: number | null) {}

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.reading = true;
    this.exchange.pipeBody(this);
  }

  resume(): void {
    if (this.sink === null) return;
    this.reading = true;
    this.exchange.resumeBody();
  }

  destroy(): void {
    this.reading = false;
    this.exchange.destroyBody();
  }

  // The exchange writes here (the sink it was given); passed on to the pipeline's.

  write(chunk: Uint8Array): boolean {
    this.stirred = true;
    const more = this.sink!.write(chunk);
    // Held back by the pipeline (the upstream is slow): the client is paused, not idle.
    if (!more) this.reading = false;
    return more;
  }

  end(): void {
    this.reading = false;
    this.sink!.end();
  }
}
