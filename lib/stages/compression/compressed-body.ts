import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Body, BodySink } from '../../types.ts';
import type { Encoding } from './negotiate.ts';

type ZstdFactory = (options: { params: Record<number, number> }) => Transform;
const z = zlib as unknown as { createZstdCompress?: ZstdFactory; constants: Record<string, number> };

/** Whether this runtime's zlib has zstd (Node 22.15+/23.8+; Node 20 does not). */
export const HAS_ZSTD = typeof z.createZstdCompress === 'function' && z.constants.ZSTD_c_compressionLevel !== undefined;

export interface Levels {
  gzip: number;
  br: number;
  zstd: number;
}

/** A zlib stream: `flush` pushes out what it holds (gzip with `Z_SYNC_FLUSH`, keeping its dictionary). */
export type Compressor = Transform & { flush(kind?: number): void };

/** A compressor for `encoding` at its level; `sizeHint` (the identity length, when known) helps brotli size its window. */
export function compressor(encoding: Encoding, levels: Levels, sizeHint: number | null): Compressor {
  if (encoding === 'gzip') return zlib.createGzip({ level: levels.gzip });
  if (encoding === 'br') {
    const params: Record<number, number> = { [zlib.constants.BROTLI_PARAM_QUALITY]: levels.br };
    if (sizeHint !== null) params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
    return zlib.createBrotliCompress({ params });
  }
  return z.createZstdCompress!({ params: { [z.constants.ZSTD_c_compressionLevel!]: levels.zstd } }) as Compressor;
}

/**
 * A response body fed through a zlib stream, with backpressure both ways:
 * the source is paused while zlib's input buffer is full (until `drain`),
 * and zlib is paused while the sink refuses more (until `resume`). So at
 * most zlib's two buffers (16 KiB each) are held, whatever the body's size.
 * `onEnd` runs once the last compressed byte went to the sink; `onError`
 * if zlib fails (the body is then destroyed, and the sink never ended: a
 * truncated body must not look complete).
 *
 * A body of unknown length (chunked: a stream, a long poll, NDJSON) is
 * flushed once a whole event-loop turn passes without a chunk, so what the
 * upstream sent reaches the client when the upstream pauses, not when
 * zlib's buffer fills or the body ends (Envoy's compressor flushes every
 * data frame). A body that keeps coming is not flushed until it pauses; a
 * body of known length never is.
 */
export class CompressedBody implements Body {
  readonly length = null;
  private sourcePaused = false;
  private done = false;
  /** A check for a pause is queued; a chunk came since the last one. */
  private checking = false;
  private chunkSinceCheck = false;
  private readonly streaming: boolean;

  constructor(
    private readonly source: Body,
    private readonly zs: Compressor,
    private readonly onEnd: () => void,
    private readonly onError: (err: unknown) => void,
    /** What `flush` takes for a flush that keeps the stream going (gzip: `Z_SYNC_FLUSH`; undefined: the stream's own). */
    private readonly flushKind: number | undefined = undefined,
  ) {
    this.streaming = source.length === null;
  }

  /** On setImmediate, not a timer: a turn of the loop (its I/O done), whatever the clock. */
  private readonly checkPause = (): void => {
    // Held back by zlib itself, the source is not pausing: `drain` checks again.
    if (this.done || this.sourcePaused) {
      this.checking = false;
      return;
    }
    if (this.chunkSinceCheck) {
      this.chunkSinceCheck = false;
      setImmediate(this.checkPause);
      return;
    }
    this.checking = false;
    this.zs.flush(this.flushKind);
  };

  private watchForPause(): void {
    this.chunkSinceCheck = true;
    if (this.checking) return;
    this.checking = true;
    setImmediate(this.checkPause);
  }

  pipe(sink: BodySink): void {
    const zs = this.zs;
    zs.on('data', (chunk: Buffer) => {
      if (!this.done && !sink.write(chunk)) zs.pause();
    });
    zs.once('end', () => {
      if (this.done) return;
      this.done = true;
      sink.end();
      this.onEnd();
    });
    zs.once('error', (err) => {
      if (this.done) return;
      this.destroy();
      this.onError(err);
    });
    zs.on('drain', () => {
      if (!this.sourcePaused || this.done) return;
      this.sourcePaused = false;
      this.source.resume();
      if (this.streaming) this.watchForPause();
    });
    this.source.pipe({
      write: (chunk) => {
        if (this.done) return false;
        const more = zs.write(chunk);
        if (this.streaming) this.watchForPause();
        if (more) return true;
        this.sourcePaused = true;
        return false;
      },
      end: () => {
        if (!this.done) zs.end();
      },
    });
  }

  resume(): void {
    if (!this.done) this.zs.resume();
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.source.destroy();
    this.zs.destroy();
  }
}
