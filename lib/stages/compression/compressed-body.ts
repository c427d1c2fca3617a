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

/** A compressor for `encoding` at its level; `sizeHint` (the identity length, when known) helps brotli size its window. */
export function compressor(encoding: Encoding, levels: Levels, sizeHint: number | null): Transform {
  if (encoding === 'gzip') return zlib.createGzip({ level: levels.gzip });
  if (encoding === 'br') {
    const params: Record<number, number> = { [zlib.constants.BROTLI_PARAM_QUALITY]: levels.br };
    if (sizeHint !== null) params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
    return zlib.createBrotliCompress({ params });
  }
  return z.createZstdCompress!({ params: { [z.constants.ZSTD_c_compressionLevel!]: levels.zstd } });
}

/**
 * A response body fed through a zlib stream, with backpressure both ways:
 * the source is paused while zlib's input buffer is full (until `drain`),
 * and zlib is paused while the sink refuses more (until `resume`). So at
 * most zlib's two buffers (16 KiB each) are held, whatever the body's size.
 * `onEnd` runs once the last compressed byte went to the sink; `onError`
 * if zlib fails (the body is then destroyed, and the sink never ended: a
 * truncated body must not look complete).
 */
export class CompressedBody implements Body {
  readonly length = null;
  private sourcePaused = false;
  private done = false;

  constructor(
    private readonly source: Body,
    private readonly zs: Transform,
    private readonly onEnd: () => void,
    private readonly onError: (err: unknown) => void,
  ) {}

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
    });
    this.source.pipe({
      write: (chunk) => {
        if (this.done) return false;
        if (zs.write(chunk)) return true;
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
