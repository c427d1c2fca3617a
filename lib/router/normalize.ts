import { BadRequestError } from '../errors.ts';

export interface NormalizedPath {
  /** Decoded segments joined by '/', used for route matching. */
  match: string;
  /** The same structure with every segment's bytes as received: what goes upstream. */
  forward: string;
}

const NEEDS_WORK = /%|\/\/|\/\.|\\/;

/**
 * Resolves `.` and `..` segments (also percent-encoded ones) and collapses
 * repeated slashes, so `/public/%2e%2e/admin` and `//admin` match the route
 * `/admin` and nothing else. Segments keep their encoding for the upstream;
 * an encoded slash (`%2F`) stays inside its segment. Invalid percent-encoding
 * is a 400.
 */
export function normalizePath(path: string): NormalizedPath {
  if (!NEEDS_WORK.test(path)) return { match: path, forward: path };
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
  return { match: '/' + outDec.join('/'), forward: '/' + outRaw.join('/') };
}

function decodeSegment(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw.replace(/%2f/gi, '%252F'));
  } catch {
    throw new BadRequestError('malformed percent-encoding in path');
  }
}
