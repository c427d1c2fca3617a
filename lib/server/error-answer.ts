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
  // On a cached route the gateway's own 502/503/504 say the cache's verdict too, as every other answer there
  // does (A12's F14); the 504 of only-if-cached and the 412 carry theirs in the error's headers already.
  const cache = req.locals.cache;
  if (cache !== undefined && error.headers?.['x-cache'] === undefined) res.writeHeader('x-cache', cache);
  // HEAD: the length a GET would get and no body, which a client would read as the next response
  // (a refused head closing: the body does no harm). endWithoutBody(undefined) writes a bogus length.
  if (isHead && !closeAfterError) {
    if (closeAtEnd) res.writeHeader('connection', 'close');
    res.writeHeader('content-length', String(Buffer.byteLength(body))).endWithoutBody();
  } else ((closeAfterError || closeAtEnd) && req.headers['connection']?.length === 5 ? res.writeHeader('connection', 'close') : res).end(body, closeAfterError || closeAtEnd);
}
