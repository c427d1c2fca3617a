import type { Body, BodySink } from './types.ts';

/**
 * A body over bytes already in memory (a cached response, a buffered request
 * for retries, a fixed reply). It can be piped any number of times: each
 * `replay()` gives a fresh one-shot Body over the same chunks.
 */
export class BufferedBody implements Body {
  readonly length: number;
  private sink: BodySink | null = null;
  private index = 0;
  private destroyed = false;

  constructor(readonly chunks: readonly Uint8Array[]) {
    let n = 0;
    for (const c of chunks) n += c.byteLength;
    this.length = n;
  }

  static of(data: string | Uint8Array): BufferedBody {
    return new BufferedBody([typeof data === 'string' ? Buffer.from(data) : data]);
  }

  replay(): BufferedBody {
    return new BufferedBody(this.chunks);
  }

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.flow();
  }

  resume(): void {
    this.flow();
  }

  destroy(): void {
    this.destroyed = true;
    this.sink = null;
  }

  private flow(): void {
    const sink = this.sink;
    if (sink === null) return;
    while (!this.destroyed && this.index < this.chunks.length) {
      const ok = sink.write(this.chunks[this.index++]!);
      if (!ok) return;
    }
    if (!this.destroyed) {
      this.sink = null;
      sink.end();
    }
  }
}

/**
 * Wraps a body so every chunk is also handed to `tap` (to keep a copy while
 * it streams to the client, say). `onEnd` runs once the body has ended;
 * `destroy` passes through. The cache has a one-object version of its own
 * (stages/cache/tee.ts): this one costs several closures per body.
 */
export function tapBody(body: Body, tap: (chunk: Uint8Array) => void, onEnd: () => void): Body {
  return {
    length: body.length,
    pipe(sink) {
      body.pipe({
        write(chunk) {
          tap(chunk);
          return sink.write(chunk);
        },
        end() {
          onEnd();
          sink.end();
        },
      });
    },
    resume: () => body.resume(),
    destroy: () => body.destroy(),
  };
}

/**
 * Reads a whole body into memory, refusing past `limit` bytes. For the cache
 * and retry buffering only, and only under their size limits.
 */
export function collectBody(body: Body, limit = Infinity): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    body.pipe({
      write(chunk) {
        size += chunk.byteLength;
        if (size > limit) {
          body.destroy();
          reject(new RangeError(`body larger than ${limit} bytes`));
          return false;
        }
        chunks.push(chunk);
        return true;
      },
      end() {
        resolve(Buffer.concat(chunks));
      },
    });
  });
}
