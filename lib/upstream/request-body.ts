import { Readable } from 'node:stream';
import { BufferedBody } from '../body.ts';
import type { Body } from '../types.ts';

/**
 * The request body as undici takes it. A replayable body goes as bytes
 * (undici can resend them). A streamed one is read only once undici starts
 * writing it to a connected socket: if the connection fails first, the body
 * is untouched and another attempt may send it (see `GatewayError.sent`).
 */
export function requestBody(body: Body | null): Buffer | Readable | null {
  if (body === null) return null;
  if (body instanceof BufferedBody) return Buffer.concat(body.chunks as Uint8Array[]);
  let piped = false;
  const readable = new Readable({
    read() {
      if (piped) {
        body.resume();
        return;
      }
      piped = true;
      body.pipe({
        write: (chunk) => readable.push(chunk),
        end: () => void readable.push(null),
      });
    },
    destroy(err, cb) {
      // Never read: the body is still whole, and the edge destroys it when the request ends.
      if (piped) body.destroy();
      cb(err);
    },
  });
  return readable;
}
