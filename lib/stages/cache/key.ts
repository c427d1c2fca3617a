import type { GatewayRequest, RequestHeaders } from '../../types.ts';

/**
 * Cache keys. The base key names the resource: method (GET for HEAD, so a
 * HEAD is answered from a cached GET), scheme, host, raw path and the query
 * with its parameters sorted. A response with `Vary` is stored under a variant
 * key: the base key plus the values of the request headers it names.
 */
export function baseKey(req: GatewayRequest): string {
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const host = (req.headers.host ?? '').toLowerCase();
  return `${method} ${req.protocol}://${host}${req.path}${sortedQuery(req.query)}`;
}

/** `?a=1&b=2` with the `&`-separated parameters in byte order; '' without a query. */
export function sortedQuery(query: string): string {
  if (query === '') return '';
  if (!query.includes('&')) return `?${query}`;
  const parts = query.split('&').filter((p) => p !== '');
  parts.sort();
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
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
