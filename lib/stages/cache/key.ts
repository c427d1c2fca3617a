import { clientScheme } from '../../headers.ts';
import type { GatewayRequest, RequestHeaders } from '../../types.ts';

/**
 * Cache keys. The base key names the resource: method (GET for HEAD, so a
 * HEAD is answered from a cached GET), scheme, host, raw path and the query
 * with its parameters sorted by name (a bare `?` is a query of its own). A response with `Vary` is stored under a variant
 * key: the base key plus the values of the request headers it names.
 */
export function baseKey(req: GatewayRequest): string {
  return keyOf(req.method === 'HEAD' ? 'GET' : req.method, clientScheme(req), req);
}

/** The base key a GET of `req`'s target has: what an unsafe method on it invalidates. */
export function getKey(req: GatewayRequest): string {
  return keyOf('GET', clientScheme(req), req);
}

/** Entries of a `KeyMemo`: a power of two. */
const MEMO_SIZE = 32;

/**
 * `baseKey` for a route's requests, giving the same string object for the
 * same parts (method as keyed, scheme, raw host, path, query): a recent
 * request's key is found by comparing its parts, not built again. A key
 * built per request is a new concatenation, which the store's `Map` lookup
 * then flattens and hashes (V8 caches a hash in the string object), ~3,000
 * instructions of a hit (docs/cache-hit.md, tenth round). Direct-mapped by
 * the path's length and last character; a collision builds the key and
 * takes the entry over.
 */
export class KeyMemo {
  private readonly parts: Array<MemoEntry | undefined> = new Array<MemoEntry | undefined>(MEMO_SIZE).fill(undefined);

  baseKey(req: GatewayRequest): string {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const { path, query } = req;
    const host = req.headers.host;
    const scheme = clientScheme(req);
    const emptyQuery = req.emptyQuery === true;
    const i = (path.length * 31 + path.charCodeAt(path.length - 1)) & (MEMO_SIZE - 1);
    const m = this.parts[i];
    if (m !== undefined && m.path === path && m.host === host && m.query === query && m.method === method && m.scheme === scheme && m.emptyQuery === emptyQuery) {
      return m.key;
    }
    const key = keyOf(method, scheme, req);
    this.parts[i] = { method, scheme, host, path, query, emptyQuery, key };
    return key;
  }
}

interface MemoEntry {
  readonly method: string;
  readonly scheme: string;
  readonly host: string | undefined;
  readonly path: string;
  readonly query: string;
  readonly emptyQuery: boolean;
  readonly key: string;
}

function keyOf(method: string, scheme: string, req: GatewayRequest): string {
  const host = (req.headers.host ?? '').toLowerCase();
  // The scheme the client used (a trusted TLS proxy's X-Forwarded-Proto): an answer to http (a redirect to https) is not one to https.
  // A bare `?` (`GET /x?`) is kept apart from no query, as nginx's $request_uri keeps it and forward sends it.
  const query = req.query === '' ? (req.emptyQuery === true ? '?' : '') : sortedQuery(req.query);
  return `${method} ${scheme}://${host}${req.path}${query}`;
}

/**
 * `?a=1&b=2` with the `&`-separated parameters sorted by name, a repeated
 * name's parameters kept in their order (`?x=2&x=1` is not `?x=1&x=2`: for
 * most APIs, `?sort=b&sort=a` or `?id=3&id=1`, the order means something;
 * nginx's default key does not sort at all); '' without a query.
 */
export function sortedQuery(query: string): string {
  if (query === '') return '';
  if (!query.includes('&')) return `?${query}`;
  const parts = query.split('&').filter((p) => p !== '');
  parts.sort(byName); // stable (V8's sort is)
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

const EQUALS = 0x3d; // '='

/**
 * Orders two `name=value` parameters by name alone: as the strings `name=`
 * compare, a bare name (`flag`) ending as `flag=` does. One terminator for
 * both, so the order is transitive (a bare `x` and `x=1` are one name, and
 * sort alike against `x-y=2`; with the end of the string below `=` they did
 * not, and `?x=1&x-y=2&x` and `?x&x=1&x-y=2` shared a key). Queries whose
 * parameters all have a `=` keep the keys a sort of the whole parameters
 * gave (the keys used to); a bare name sorts after a longer name it begins
 * with when the next character is below `=` (`a.b=1&a`, was `a&a.b=1`).
 */
export function byName(a: string, b: string): number {
  for (let i = 0; ; i++) {
    const ca = i < a.length ? a.charCodeAt(i) : EQUALS;
    const cb = i < b.length ? b.charCodeAt(i) : EQUALS;
    if (ca !== cb) return ca - cb;
    if (ca === EQUALS) return 0; // one name
  }
}

/** The key of the variant `headers` select, given a response's sorted `Vary` names. */
export function variantKey(base: string, headers: RequestHeaders, names: readonly string[]): string {
  if (names.length === 0) return base;
  let key = base;
  for (const name of names) {
    const v = headers[name];
    // \n cannot occur in a request line or header value, so keys cannot collide
    key += `\n${name}:${v === undefined ? '' : v.trim().replace(/\s+/g, ' ')}`;
  }
  return key;
}

/** What a response without `Vary` varies on: one shared, frozen array instead of a new one per miss. */
const NO_VARY: readonly string[] = Object.freeze([]);

/**
 * A response's `Vary` header as sorted, unique lower-case names; `'*'` when it
 * varies on something outside the request (uncacheable); [] when absent.
 */
export function parseVary(value: string | undefined): readonly string[] | '*' {
  if (value === undefined || value.trim() === '') return NO_VARY;
  const names = new Set<string>();
  for (const part of value.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '*') return '*';
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}
