import { Observable } from 'rxjs';
import { BufferedBody } from '../../body.ts';
import type { Body } from '../../types.ts';

/**
 * Reads a one-shot body into a `BufferedBody` that can be replayed for each
 * attempt. Unsubscribing stops the read and destroys the source.
 */
export function bufferBody(body: Body): Observable<BufferedBody> {
  return new Observable<BufferedBody>((subscriber) => {
    const chunks: Uint8Array[] = [];
    let done = false;
    body.pipe({
      write(chunk) {
        // Copy: the source may reuse its buffer once write returns (uWS does).
        chunks.push(Uint8Array.prototype.slice.call(chunk));
        return true;
      },
      end() {
        done = true;
        subscriber.next(new BufferedBody(chunks));
        subscriber.complete();
      },
    });
    return () => {
      if (!done) body.destroy();
    };
  });
}
