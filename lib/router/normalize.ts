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
  try {
    return decodeURIComponent(raw.replace(/%2f/gi, '%252F'));
  } catch {
    throw new BadRequestError('malformed percent-encoding in path');
  }
}
