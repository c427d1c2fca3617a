/**
 * `Cache-Control` parsing (RFC 9111 §5.2): directive names in lower case,
 * values unquoted, `true` for a directive without a value. The first
 * occurrence of a repeated directive wins.
 */
export type CacheControl = Readonly<Record<string, string | true>>;

const EMPTY: CacheControl = Object.freeze(Object.create(null) as Record<string, string | true>);

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t';
}

/**
 * Parsed values by header text: upstreams send the same few Cache-Control
 * strings over and over, so the miss path parses each once. Bounded: cleared
 * when full, so varied values cannot grow it.
 */
const memo = new Map<string, CacheControl>();
const MEMO_SIZE = 256;

export function parseCacheControl(value: string | undefined): CacheControl {
  if (value === undefined || value === '') return EMPTY;
  let cc = memo.get(value);
  if (cc === undefined) {
    cc = Object.freeze(parse(value));
    if (memo.size >= MEMO_SIZE) memo.clear();
    memo.set(value, cc);
  }
  return cc;
}

function parse(value: string): Record<string, string | true> {
  const out = Object.create(null) as Record<string, string | true>;
  const n = value.length;
  let i = 0;
  while (i < n) {
    while (i < n && (value[i] === ',' || isSpace(value[i]))) i++;
    if (i >= n) break;
    let start = i;
    while (i < n && value[i] !== '=' && value[i] !== ',') i++;
    const name = value.slice(start, i).trim().toLowerCase();
    let arg: string | true = true;
    if (value[i] === '=') {
      i++;
      while (i < n && isSpace(value[i])) i++;
      if (value[i] === '"') {
        // quoted-string: commas inside belong to the value (`private="a, b"`)
        i++;
        let s = '';
        while (i < n && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < n) i++;
          s += value[i];
          i++;
        }
        arg = s;
        while (i < n && value[i] !== ',') i++;
      } else {
        start = i;
        while (i < n && value[i] !== ',') i++;
        arg = value.slice(start, i).trim();
      }
    }
    if (name !== '' && !(name in out)) out[name] = arg;
  }
  return out;
}

/** The largest delta-seconds RFC 9111 §1.2.2 asks caches to handle (2^31). */
const MAX_DELTA = 2_147_483_648;

/**
 * A directive's delta-seconds value. `undefined` when the directive is absent;
 * a present but malformed value counts as 0, so a bad `max-age` means stale
 * (RFC 9111 §4.2.1) rather than the route's default TTL.
 */
export function deltaSeconds(cc: CacheControl, name: string): number | undefined {
  const v = cc[name];
  if (v === undefined) return undefined;
  if (v === true || !/^\d+$/.test(v)) return 0;
  return Math.min(Number(v), MAX_DELTA);
}

export function has(cc: CacheControl, name: string): boolean {
  return cc[name] !== undefined;
}

/** What storing a response reads from its `Cache-Control`, worked out once per parsed value. */
export interface StorageDirectives {
  /** `no-store`, `private` or `no-cache`: the response is not stored. */
  readonly refuse: boolean;
  /** `s-maxage`, else `max-age` (delta-seconds as `deltaSeconds` reads them). */
  readonly lifetime: number | undefined;
  readonly staleWhileRevalidate: number | undefined;
  readonly staleIfError: number | undefined;
  /** `must-revalidate` or `proxy-revalidate`. */
  readonly mustRevalidate: boolean;
}

/**
 * By parsed value: `parseCacheControl` hands out one frozen object per header
 * text, so a miss reads its directives with one lookup instead of four
 * delta-seconds parses and five lookups in a dictionary-mode object (~1 µs
 * of a stored miss end to end, docs/cache-memory.md). Weak: a value the memo
 * dropped is not held here.
 */
const directives = new WeakMap<CacheControl, StorageDirectives>();

export function storageDirectives(cc: CacheControl): StorageDirectives {
  let d = directives.get(cc);
  if (d === undefined) {
    d = {
      refuse: has(cc, 'no-store') || has(cc, 'private') || has(cc, 'no-cache'),
      lifetime: deltaSeconds(cc, 's-maxage') ?? deltaSeconds(cc, 'max-age'),
      staleWhileRevalidate: deltaSeconds(cc, 'stale-while-revalidate'),
      staleIfError: deltaSeconds(cc, 'stale-if-error'),
      mustRevalidate: has(cc, 'must-revalidate') || has(cc, 'proxy-revalidate'),
    };
    directives.set(cc, d);
  }
  return d;
}
