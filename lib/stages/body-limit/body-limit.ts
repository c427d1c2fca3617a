import { Observable, type Subscription } from 'rxjs';
import { PayloadTooLargeError } from '../../errors.ts';
import type { Body, GatewayRequest, Policy } from '../../types.ts';

export interface BodyLimitOptions {
  /** Largest request body accepted, in bytes (nginx's `client_max_body_size`). */
  maxBytes?: number;
}

/**
 * Refuses request bodies over `maxBytes` with 413 `PAYLOAD_TOO_LARGE`: at
 * once when `Content-Length` says so, and for a chunked body as soon as the
 * bytes streamed past the limit — the upstream request is then aborted
 * (unsubscribed) and, if its response has not started, the client gets the
 * 413. The body is never buffered to count it.
 */
export function bodyLimit(options: BodyLimitOptions = {}): Policy {
  const max = options.maxBytes;
  if (max === undefined) return (next) => next;
  if (!Number.isInteger(max) || max < 0) throw new TypeError(`bodyLimit.maxBytes: expected a byte count, got ${max}`);
  const tooLarge = (): PayloadTooLargeError => new PayloadTooLargeError(`request body larger than ${max} bytes`);

  return (next) => function bodyLimitHandler(req: GatewayRequest) {
    const body = req.body;
    if (body === null) return next(req);
    if (body.length !== null) {
      return body.length > max ? new Observable((s) => s.error(tooLarge())) : next(req);
    }
    return new Observable((subscriber) => {
      let over = false;
      let inner: Subscription | undefined;
      req.body = counting(body, max, () => {
        over = true;
        inner?.unsubscribe();
        subscriber.error(tooLarge());
      });
      inner = next(req).subscribe({
        next: (res) => subscriber.next(res),
        error: (err: unknown) => {
          if (!over) subscriber.error(err);
        },
        complete: () => subscriber.complete(),
      });
      if (over) inner.unsubscribe();
      return inner;
    });
  };
}

/** A view of `body` that calls `onOver` (once, and stops the flow) when more than `max` bytes pass. */
function counting(body: Body, max: number, onOver: () => void): Body {
  let seen = 0;
  return {
    length: null,
    pipe(sink) {
      body.pipe({
        write(chunk) {
          seen += chunk.byteLength;
          if (seen > max) {
            body.destroy();
            onOver();
            return false;
          }
          return sink.write(chunk);
        },
        end: () => sink.end(),
      });
    },
    resume: () => body.resume(),
    destroy: () => body.destroy(),
  };
}
