import { BadRequestError } from '../errors.ts';

export interface NormalizedPath {
  /** Decoded segments joined by '/', used for route matching. */
  match: string;
  /** The same structure with every segment's bytes as received: what goes upstream. */
  forward: string;
  /** Set when the path holds `%2F`, `%5C` (either case) or a raw `\`: refused unless the route keeps them. */
  encodedSlash?: true;
}

const NEEDS_WORK = /%|\/\/|\/\.|\\|#/;
const ENCODED_SLASH = /%2f|%5c|\\/i;

/**
 * Resolves `.` and `..` segments (also percent-encoded ones) and collapses
 * repeated slashes, so `/public/%2e%2e/admin` and `//admin` match the route
 * `/admin` and nothing else. Segments keep their encoding for the upstream;
 * an encoded slash (`%2F`) stays inside its segment. Invalid percent-encoding
 * is a 400. A path with an encoded slash or backslash is marked
 * (`encodedSlash`): the route table refuses it unless the route keeps them.
 * A raw `#` is a 400: a request target has no fragment (RFC 9112 §3.2), uWS
 * hands it over as part of the path, and an upstream that cuts the path at
 * it would see another path than the one routed (Envoy refuses it too).
 * Also a 400: `%00` (nginx refuses it: a NUL ends a path in C, so an
 * upstream may read a shorter path than the one routed), and a dot-segment
 * with a path parameter (`..;`, `.;x`): Tomcat and Jetty read `/api/..;/admin`
 * as `/admin` while the segment is not `..` to a router (the `..;/` bypass
 * of Istio issue 27409; Jetty's maintainers propose refusing it too).
 */
export function normalizePath(path: string): NormalizedPath {
  if (!NEEDS_WORK.test(path)) return { match: path, forward: path };
  if (path.includes('#')) throw new BadRequestError('a fragment (#) in the request target');
  const raws = path.split('/');
  const outRaw: string[] = [];
  const outDec: string[] = [];
  const last = raws.length - 1;
  for (let i = 1; i <= last; i++) {
    const raw = raws[i]!;
    if (raw === '') {
      if (i === last) {
        outRaw.push('');
        outDec.push('');
      }
      continue;
    }
    const dec = decodeSegment(raw);
    if (dec.charCodeAt(0) === 46 /* . */ && /^\.\.?;/.test(dec)) throw new BadRequestError('a dot-segment with a path parameter (..;) in the path');
    if (dec === '.' || dec === '..') {
      if (dec === '..') {
        outRaw.pop();
        outDec.pop();
      }
      // `/a/..` names the directory `/`: keep the trailing slash.
      if (i === last) {
        outRaw.push('');
        outDec.push('');
      }
      continue;
    }
    outRaw.push(raw);
    outDec.push(dec);
  }
  const out: NormalizedPath = { match: '/' + outDec.join('/'), forward: '/' + outRaw.join('/') };
  if (ENCODED_SLASH.test(path)) out.encodedSlash = true;
  return out;
}

function decodeSegment(raw: string): string {
  if (!raw.includes('%')) return raw;
  let dec: string;
  try {
    dec = decodeURIComponent(raw.replace(/%2f/gi, '%252F'));
  } catch {
    throw new BadRequestError('malformed percent-encoding in path');
  }
  if (dec.includes('\0')) throw new BadRequestError('an encoded NUL (%00) in the path');
  return dec;
}
