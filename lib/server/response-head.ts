import type { HttpResponse } from 'uWebSockets.js';
import { NON_ASCII } from '../headers.ts';
import { EDGE_REQUEST_ID, EDGE_RESPONSE_TIME, type GatewayResponse } from '../types.ts';
import { LastHead, LENGTH, LINE, OWN_ID, SKIPPED } from './last-head.ts';
import { NAME_BYTES_MAX, nameBytes, safeHeaders, statusBytes, UNSAFE } from './head-names.ts';

export { elapsed } from './response-time.ts';
export { statusLine } from './head-names.ts';

/** Headers uWS writes itself, or that must not be copied from the upstream. */
const SKIP = new Set(['content-length', 'date', 'transfer-encoding', 'connection', 'keep-alive']);

/** Statuses whose responses never have a body. */
export function bodyless(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}

const RESPONSE_TIME = Buffer.from('x-gateway-response-time', 'latin1');
const REQUEST_ID = Buffer.from('x-request-id', 'latin1');

/**
 * Writes a response's status line and headers to uWS, then the two the edge
 * adds: `x-gateway-response-time`, and `x-request-id` unless the response
 * has one. Call inside `cork`. Returns the upstream's content-length, if any
 * (uWS writes Content-Length itself, from what it is given to send).
 *
 * The headers go to uWS in one `writeHeader` call: uWS writes `name: value`
 * and CRLF without looking inside the value, so the first header's value
 * carries the others as `\r\nname: value` lines, written as bytes into one
 * scratch buffer (uWS copies them at once). The same bytes as a call per
 * header, for one call (measured in a uWS handler, 11 headers: 2.0 → 1.1 µs
 * min, 3.8 → 2.3 median) and no string built. Header values are bytes as
 * undici hands them over (latin1); a name outside ASCII, or headers larger
 * than the scratch buffer, go one call per header (`writeEach`).
 *
 * Returns null, having written nothing, for a head uWS would throw on or
 * that would split the response (review RR2 #4: a code stage's header that
 * is not a string, or holds CR, LF or NUL). Only lines written fresh are
 * scanned, as their bytes are copied; lines equal to the last head's, or a
 * stored head's, were scanned when first written.
 */
export function writeHead(res: HttpResponse, response: GatewayResponse, responseTime: string, requestId: string): string | undefined | null {
  // A route whose rules remove an edge header (the headers stage): apart, so no other response pays more than this read.
  if (response.omit !== undefined) return writeOmitting(res, response, responseTime, requestId, response.omit);
  const headers = response.headers;
  let contentLength: string | undefined;
  let hasRequestId = false;
  let first: Buffer | string | null = null;
  let at = 0;
  let i = 0;
  const block = response.head; // a stored head's lines, made once (head-bytes.ts)
  let mark = -1; // where the block's entries end, when this response makes its bytes
  let matched = -1; // entries the last head's bytes gave (a response without a block)
  if (block === undefined) {
    i = matched = LAST.match(headers, SCRATCH);
    if (i > 0) {
      ({ at, contentLength, hasRequestId } = LAST);
      if (LAST.hasFirst(i)) first = LAST.first;
    }
  } else if (block.seen !== -1 && block.prefixOf(headers)) {
    if (block.bytes === null) {
      if (block.seen++ > 0) mark = block.headers.length;
    } else {
      i = block.headers.length;
      contentLength = block.contentLength;
      hasRequestId = block.hasRequestId;
      first = block.first;
      if (first !== null) SCRATCH.set(block.bytes, 0);
      at = block.bytes.length;
    }
  }
  // ENDS: where each header's bytes end, for LAST.
  for (; i < headers.length; ENDS[i >> 1] = at, i += 2) {
    if (i === mark) block!.keep(SCRATCH, at, first, contentLength, hasRequestId);
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (SKIP.has(name)) {
      if (name === 'content-length') contentLength = value;
      continue;
    }
    if (name === 'x-request-id') hasRequestId = true;
    if (at < 0) continue;
    // A stage in plain JS may push a number, which uWS throws on: refused, nothing written.
    if (typeof value !== 'string' || typeof name !== 'string') return null;
    if (first === null) {
      if ((first = nameBytes(name)) === null) return null;
      at = putBytes(value, 0, false);
    } else at = putLine(name, value, at, false);
  }
  if (i === mark) block!.keep(SCRATCH, at, first, contentLength, hasRequestId);
  if (matched >= 0 && at >= 0) LAST.renew(headers, matched, SCRATCH, ENDS, first, kindOf);
  if (at >= 0) {
    if (first === null) {
      first = RESPONSE_TIME;
      at = putBytes(responseTime, 0, true);
    } else at = putAfter(RESPONSE_TIME_LINE, responseTime, at, true);
  }
  const status = statusBytes(response.status, response.statusText);
  if (status === null || (at < 0 && !safeHeaders(headers, SKIP))) return null;
  res.writeStatus(status);
  if (at < 0) {
    writeEach(res, headers, responseTime, hasRequestId ? null : requestId);
    return contentLength;
  }
  // The request id may be the client's, in UTF-8 (uWS writes a string as UTF-8): not a line of bytes then.
  const withId = hasRequestId ? at : putAfter(REQUEST_ID_LINE, requestId, at, true);
  res.writeHeader(first!, scratchView(withId < 0 ? at : withId));
  if (withId < 0) res.writeHeader(REQUEST_ID, requestId);
  return contentLength;
}

/** Where `writeHead` puts the header lines it hands to uWS in one call. */
const SCRATCH = Buffer.allocUnsafe(16 * 1024); // 16 KiB; larger heads go header by header
/** The last head's leading lines (last-head.ts), and where each header of the one being written ends in SCRATCH. */
const LAST = new LastHead();
const ENDS = new Int32Array(256);
const kindOf = (name: string): number => (name === 'content-length' ? LENGTH : SKIP.has(name) ? SKIPPED : name === 'x-request-id' ? OWN_ID : LINE);
const CR = 13, LF = 10, COLON = 58, SPACE = 32;

/** Views of SCRATCH's first bytes, by length, made once each (a view per response was its one allocation). */
const VIEWS: (Buffer | undefined)[] = [];
const VIEWS_MAX = 2048;
function scratchView(length: number): Buffer {
  if (length > VIEWS_MAX) return SCRATCH.subarray(0, length);
  return (VIEWS[length] ??= SCRATCH.subarray(0, length));
}

/**
 * `\r\nname: ` as bytes, per header name (bounded as NAME_BYTES is): one
 * `set` copies it where a loop over its characters cost ~38 instructions
 * each (writeHead with what it calls: ~7,330 → ~6,660 instructions per bare
 * response, docs/performance-instructions.md).
 */
const LINE_STARTS = new Map<string, Uint8Array>();
const RESPONSE_TIME_LINE = Buffer.from('\r\nx-gateway-response-time: ', 'latin1');
const REQUEST_ID_LINE = Buffer.from('\r\nx-request-id: ', 'latin1');

/**
 * Writes `\r\nname: value` into SCRATCH at `at`; returns the offset after
 * it, or -1 when it does not fit, the name is not ASCII, or (`ascii`) the
 * value is not. A value's characters are written as latin1 bytes, as
 * `Buffer.from(value, 'latin1')` does.
 */
function putLine(name: string, value: string, at: number, ascii: boolean): number {
  let start = LINE_STARTS.get(name);
  if (start === undefined && LINE_STARTS.size < NAME_BYTES_MAX && !NON_ASCII.test(name) && !UNSAFE.test(name)) {
    start = Buffer.from(`\r\n${name}: `, 'latin1');
    LINE_STARTS.set(name, start);
  }
  return start === undefined ? putLineChars(name, value, at, ascii) : putAfter(start, value, at, ascii);
}

/** `start` (a line's `\r\nname: `) and `value` into SCRATCH at `at` (see `putLine`). */
function putAfter(start: Uint8Array, value: string, at: number, ascii: boolean): number {
  if (at + start.length + value.length > SCRATCH.length) return -1;
  SCRATCH.set(start, at);
  return putBytes(value, at + start.length, ascii);
}

/** `putLine` a character at a time: a name outside ASCII (-1), or past the cache's bound. */
function putLineChars(name: string, value: string, at: number, ascii: boolean): number {
  if (at + name.length + value.length + 4 > SCRATCH.length) return -1;
  SCRATCH[at++] = CR;
  SCRATCH[at++] = LF;
  for (let j = 0; j < name.length; j++) {
    const c = name.charCodeAt(j);
    if (c > 0x7f || c === CR || c === LF || c === 0) return -1;
    SCRATCH[at++] = c;
  }
  SCRATCH[at++] = COLON;
  SCRATCH[at++] = SPACE;
  return putBytes(value, at, ascii);
}

/** `value` into SCRATCH at `at` (see `putLine`); -1 as well for a CR, LF or NUL, which `safeHeaders` then refuses. */
function putBytes(value: string, at: number, ascii: boolean): number {
  if (at + value.length > SCRATCH.length) return -1;
  for (let j = 0; j < value.length; j++) {
    const c = value.charCodeAt(j);
    // One range compare for the usual printable ASCII byte, as `c > 0x7f` was before.
    if ((c - 0x20) >>> 0 > 0x5f && (c > 0x7f ? ascii : c === CR || c === LF || c === 0)) return -1;
    SCRATCH[at++] = c; // a Uint8Array stores the low byte, as latin1 does
  }
  return at;
}

/** `writeHead`'s headers one `writeHeader` call each: values with bytes outside ASCII as latin1 bytes; null: not written. */
function writeEach(res: HttpResponse, headers: readonly string[], responseTime: string | null, requestId: string | null): void {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (SKIP.has(name)) continue;
    const value = headers[i + 1]!;
    res.writeHeader(nameBytes(name)!, NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value);
  }
  if (responseTime !== null) res.writeHeader(RESPONSE_TIME, responseTime);
  if (requestId !== null) res.writeHeader(REQUEST_ID, requestId);
}

/** `writeHead` for a response without some of the edge's headers (`GatewayResponse.omit`): header by header, as refused heads are checked. */
function writeOmitting(res: HttpResponse, response: GatewayResponse, responseTime: string, requestId: string, omit: number): string | undefined | null {
  const headers = response.headers;
  const status = statusBytes(response.status, response.statusText);
  if (status === null || !safeHeaders(headers, SKIP)) return null;
  let contentLength: string | undefined;
  let hasRequestId = false;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-length') contentLength = headers[i + 1];
    else if (headers[i] === 'x-request-id') hasRequestId = true;
  }
  res.writeStatus(status);
  writeEach(res, headers, (omit & EDGE_RESPONSE_TIME) === 0 ? responseTime : null, (omit & EDGE_REQUEST_ID) === 0 && !hasRequestId ? requestId : null);
  return contentLength;
}

const JSON_TYPE = 'application/json';
const CONTENT_TYPE = Buffer.from('content-type', 'latin1');

/**
 * The head of an error answer (the one place errors become responses): JSON,
 * the request id, the response time, and the error's own headers
 * (`retry-after`, `www-authenticate`, `allow`…). Call inside `cork`.
 */
export function writeErrorHead(res: HttpResponse, status: number, extra: Record<string, string> | undefined, responseTime: string, requestId: string): void {
  res.writeStatus(statusBytes(status, undefined)!);
  // One `writeHeader`, as in `writeHead`: every part is a string, which uWS writes as UTF-8 whether in one call or several.
  let lines = JSON_TYPE + '\r\nx-request-id: ' + requestId + '\r\nx-gateway-response-time: ' + responseTime;
  if (extra !== undefined) {
    for (const name in extra) lines += '\r\n' + name + ': ' + extra[name]!;
  }
  res.writeHeader(CONTENT_TYPE, lines);
}
