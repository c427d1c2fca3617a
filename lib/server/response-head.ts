import { STATUS_CODES } from 'node:http';
import type { HttpResponse } from 'uWebSockets.js';
import { NON_ASCII } from '../headers.ts';
import type { GatewayResponse } from '../types.ts';

/** Headers uWS writes itself, or that must not be copied from the upstream. */
const SKIP = new Set(['content-length', 'date', 'transfer-encoding', 'connection', 'keep-alive']);

const statusLines = new Map<number, string>();
export function statusLine(status: number, text?: string): string {
  const standard = STATUS_CODES[status];
  if (text !== undefined && text !== '' && text !== standard) return `${status} ${text}`;
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${standard ?? 'Unknown'}`;
    statusLines.set(status, line);
  }
  return line;
}

/** Statuses whose responses never have a body. */
export function bodyless(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * Header names and status lines as bytes: uWS takes a Buffer's bytes as
 * they are, and a string only after converting it to UTF-8 (measured inside
 * a uWS handler: 189 → 152 ns per `writeHeader`, min of 200). Names are
 * tokens (ASCII), so both give the same bytes. Bounded: a name past the
 * limit goes as a string.
 */
const NAME_BYTES = new Map<string, Buffer>();
const NAME_BYTES_MAX = 512;
const STATUS_BYTES = new Map<number, Buffer>();
const RESPONSE_TIME = Buffer.from('x-gateway-response-time', 'latin1');
const REQUEST_ID = Buffer.from('x-request-id', 'latin1');

function nameBytes(name: string): Buffer | string {
  let bytes = NAME_BYTES.get(name);
  if (bytes === undefined) {
    if (NAME_BYTES.size >= NAME_BYTES_MAX || NON_ASCII.test(name)) return name;
    bytes = Buffer.from(name, 'latin1');
    NAME_BYTES.set(name, bytes);
  }
  return bytes;
}

/** `statusLine` as bytes when the reason phrase is the standard one (the usual case). */
function statusBytes(status: number, text: string | undefined): Buffer | string {
  if (text !== undefined && text !== '' && text !== STATUS_CODES[status]) return statusLine(status, text);
  let bytes = STATUS_BYTES.get(status);
  if (bytes === undefined) {
    bytes = Buffer.from(statusLine(status), 'latin1');
    STATUS_BYTES.set(status, bytes);
  }
  return bytes;
}

/**
 * Writes a response's status line and headers to uWS, then the two the edge
 * adds: `x-gateway-response-time`, and `x-request-id` unless the response
 * has one. Call inside `cork`. Returns the upstream's content-length, if any
 * (uWS writes Content-Length itself, from what it is given to send).
 */
export function writeHead(res: HttpResponse, response: GatewayResponse, responseTime: string, requestId: string): string | undefined {
  const headers = response.headers;
  let contentLength: string | undefined;
  let hasRequestId = false;
  res.writeStatus(statusBytes(response.status, response.statusText));
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (SKIP.has(name)) {
      if (name === 'content-length') contentLength = value;
      continue;
    }
    if (name === 'x-request-id') hasRequestId = true;
    // Header bytes pass through as received (undici gives them as latin1).
    res.writeHeader(nameBytes(name), NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value);
  }
  res.writeHeader(RESPONSE_TIME, responseTime);
  if (!hasRequestId) res.writeHeader(REQUEST_ID, requestId);
  return contentLength;
}

const JSON_TYPE = 'application/json';

/**
 * The head of an error answer (the one place errors become responses): JSON,
 * the request id, the response time, and the error's own headers
 * (`retry-after`, `www-authenticate`, `allow`…). Call inside `cork`.
 */
export function writeErrorHead(res: HttpResponse, status: number, extra: Record<string, string> | undefined, responseTime: string, requestId: string): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', JSON_TYPE);
  res.writeHeader('x-request-id', requestId);
  res.writeHeader('x-gateway-response-time', responseTime);
  if (extra !== undefined) {
    for (const name in extra) res.writeHeader(name, extra[name]!);
  }
}
