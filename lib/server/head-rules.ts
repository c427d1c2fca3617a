import type { HttpRequest } from 'uWebSockets.js';

/**
 * The request-head rules rxgate adds to uWebSockets.js's parser (RFC 9112
 * §6.1, §6.3, §3.2): a head that breaks one is answered 400 and its
 * connection closed, so nothing that follows it on that connection (a body
 * another parser would read as a request) is ever parsed or forwarded.
 *
 * - `Content-Length` repeated (even with equal values) or not a decimal number;
 * - `Content-Length` together with `Transfer-Encoding`;
 * - `Transfer-Encoding` other than exactly one `chunked` (uWS decodes no other coding);
 * - `Host` repeated, empty, or with a byte nginx's `ngx_http_validate_host`
 *   refuses: one ≤ 0x20, 0x7f, `/`, `\`, or two dots in a row (a path or a
 *   space smuggled into `X-Forwarded-Host` and the cache key); an `http`
 *   URI has no empty host (RFC 9110 §4.2.1), and nginx refuses one too;
 * - CR, LF or NUL inside a header value.
 *
 * A missing `Host` on HTTP/1.1 is not checked: uWS 20.30 does not expose the
 * request's HTTP version.
 *
 * The checks ride on the one `forEach` that collects the headers: a shared
 * callback and a flag word, no allocation per request. The control-byte
 * rule is skipped where uWS enforces it itself: 20.30 (the Node 20 build)
 * never hands over a head with CR, LF or NUL in a value (it holds the
 * connection until its ~10 s idle timeout closes it) (test/integration/uws-head-controls.test.ts), so the regular
 * expression per value (60–75 ns) would never match there.
 */

const REPEATED_CONTENT_LENGTH = 1;
const REPEATED_HOST = 2;
const CONTROL_IN_VALUE = 4;

const CONTROL = /[\r\n\0]/;
const DECIMAL = /^[0-9]+$/;

/** The headers `collectHeader` adds to: `forEach` takes a callback, and a shared one allocates no closure per request. */
let collecting: Record<string, string> = {};
let flags = 0;
/** Header lines and their bytes (`name: value\r\n`) in the last head read: for `limits.maxHeaders` and `maxHeaderBytes`. */
let fieldCount = 0;
let fieldBytes = 0;

function collectHeader(name: string, value: string): void {
  if (CONTROL.test(value)) flags |= CONTROL_IN_VALUE;
  collectHeaderUnscanned(name, value);
}

/** `collectHeader` without the control-byte test, for a uWS build that refuses such heads itself. */
function collectHeaderUnscanned(name: string, value: string): void {
  fieldCount++;
  fieldBytes += name.length + value.length + 4;
  const prev = collecting[name];
  if (prev === undefined) {
    collecting[name] = value;
    return;
  }
  if (name === 'content-length') flags |= REPEATED_CONTENT_LENGTH;
  else if (name === 'host') flags |= REPEATED_HOST;
  // A repeated Transfer-Encoding joins into a list, which the rule below refuses.
  collecting[name] = prev + (name === 'cookie' ? '; ' : ', ') + value;
}

/**
 * Reads the request's headers into `headers` (repeated ones joined with
 * `, `, cookies with `; `) and returns why the head must be refused, or null.
 * `controlsRefused`: the uWS build already refused any head with a control
 * byte in a value (see above), so values are not scanned again.
 */
export function readHead(req: HttpRequest, headers: Record<string, string>, controlsRefused = false): string | null {
  collecting = headers;
  flags = 0;
  fieldCount = 0;
  fieldBytes = 0;
  req.forEach(controlsRefused ? collectHeaderUnscanned : collectHeader);
  return headViolation(headers, flags);
}

/**
 * How many header lines the last `readHead` saw, and their bytes as
 * `name: value\r\n` (repeated headers counted line by line). Read in the same
 * uWS handler call, before another head is read.
 */
export function lastHeadFields(): number {
  return fieldCount;
}

/** See `lastHeadFields`. */
export function lastHeadFieldBytes(): number {
  return fieldBytes;
}

/** The rules on headers already collected (exported for unit tests). */
export function headViolation(headers: Record<string, string>, found: number): string | null {
  if (found !== 0) {
    if ((found & CONTROL_IN_VALUE) !== 0) return 'a header value contains CR, LF or NUL';
    if ((found & REPEATED_CONTENT_LENGTH) !== 0) return 'Content-Length is repeated';
    return 'Host is repeated';
  }
  const host = headers['host'];
  if (host !== undefined && invalidHost(host)) return 'Host is not a valid host';
  const cl = headers['content-length'];
  const te = headers['transfer-encoding'];
  if (cl !== undefined) {
    if (te !== undefined) return 'Content-Length together with Transfer-Encoding';
    if (!DECIMAL.test(cl)) return 'Content-Length is not a decimal number';
  } else if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    return 'Transfer-Encoding other than a single chunked';
  }
  return null;
}

/** `close` among a `Connection` header's options (RFC 9112 §9.6), any case, optional whitespace around commas. */
const CLOSE_OPTION = /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i;

/**
 * Whether a request's `Connection` value asks to close the connection after
 * its answer (RFC 9112 §9.6): then nothing after it on that connection may be
 * processed. `keep-alive`, what most clients that send the header send, and
 * a lone `close` are decided without the regular expression.
 */
export function asksClose(connection: string): boolean {
  if (connection === 'keep-alive') return false;
  if (connection.length === 5) return connection === 'close' || connection.toLowerCase() === 'close';
  return CLOSE_OPTION.test(connection);
}

/** The last Host value found valid: most requests repeat it, and comparing two strings costs less than the scan. Never '' (refused). */
let validHost = 'localhost';

/** One scan of the Host value, no allocation (see the rules above). */
function invalidHost(host: string): boolean {
  if (host === validHost) return false;
  // No host name before the port (`:80`): nginx refuses it as an empty host too.
  if (host.length === 0 || host.charCodeAt(0) === 0x3a) return true;
  let prev = 0;
  for (let i = 0, n = host.length; i < n; i++) {
    const c = host.charCodeAt(i);
    if (c <= 0x2f) {
      if (c <= 0x20 || c === 0x2f || (c === 0x2e && prev === 0x2e)) return true;
    } else if (c === 0x5c || c === 0x7f) {
      return true;
    }
    prev = c;
  }
  validHost = host;
  return false;
}
