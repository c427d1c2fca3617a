import type { HttpResponse } from 'uWebSockets.js';
import type { GatewayError } from '../errors.ts';
import type { GatewayRequest } from '../types.ts';
import { writeErrorHead } from './response-head.ts';

/**
 * An error answer, head and `body` (its `errorResponseBody`), inside `cork`
 * (response-writer.ts): closed after it when the head was refused
 * (`closeAfterError`) or the connection ends (`closeAtEnd`).
 */
export function writeErrorAnswer(
  res: HttpResponse, req: GatewayRequest, error: GatewayError, body: string, responseTime: string,
  isHead: boolean, closeAfterError: boolean, closeAtEnd: boolean,
): void {
  writeErrorHead(res, error.status, error.headers, responseTime, req.id);
  // HEAD: the length a GET would get and no body, which a client would read as the next response
  // (a refused head closing: the body does no harm). endWithoutBody(undefined) writes a bogus length.
  if (isHead && !closeAfterError) {
    if (closeAtEnd) res.writeHeader('connection', 'close');
    res.writeHeader('content-length', String(Buffer.byteLength(body))).endWithoutBody();
  } else ((closeAfterError || closeAtEnd) && req.headers['connection']?.length === 5 ? res.writeHeader('connection', 'close') : res).end(body, closeAfterError || closeAtEnd);
}

/**
 * The head and all but the last byte of an error answer to a Content-Length body still coming, at most `LINGER_BYTES`
 * of it left (`RequestBody.linger`; nginx and Envoy answer at once too): uWS's `tryEnd` with the whole length writes
 * `Content-Length` and does not end, so the client has the status now. `endErrorAnswer` sends the last byte once the
 * body's last chunk came or the linger was cut. Ended at once (F15, backed out), that last chunk came after the end and
 * turned uWS 20.30's connection timer off with nothing to turn it on again: an idle client was never closed. The end
 * after it restarts the timer. Outside the writer's `cork` ops: a rare path, one closure each.
 */
export function writeErrorAnswerHead(res: HttpResponse, req: GatewayRequest, error: GatewayError, text: string, responseTime: string): Buffer {
  const body = Buffer.from(text);
  res.cork(() => {
    writeErrorHead(res, error.status, error.headers, responseTime, req.id);
    res.tryEnd(body.subarray(0, body.length - 1), body.length);
  });
  return body;
}

/** The last byte of `writeErrorAnswerHead`'s answer: the response ends (and uWS's timer restarts). */
export function endErrorAnswer(res: HttpResponse, body: Buffer): void {
  res.cork(() => res.tryEnd(body.subarray(body.length - 1), body.length));
}
