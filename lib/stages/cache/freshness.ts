import { storageDirectives, type CacheControl } from './cache-control.ts';

/**
 * Freshness bookkeeping of a stored response (RFC 9111 §4.2), all times in
 * the injected clock's milliseconds. Stored with the entry so every gateway
 * sharing a store judges it the same way (given clocks that agree).
 */
export interface Freshness {
  /** When the response head arrived. */
  readonly storedAt: number;
  /** The upstream's `Age` in seconds when it arrived. */
  readonly initialAge: number;
  /** Until when it is fresh. */
  readonly freshUntil: number;
  /** How long past `freshUntil` it may be served while revalidating in the background. */
  readonly staleWhileRevalidate: number;
  /** How long past `freshUntil` it may be served when the upstream fails. */
  readonly staleIfError: number;
}

export interface FreshnessPolicy {
  /** Lifetime (ms) when the upstream gives none. */
  readonly ttl: number;
  /** Cap (ms) on any lifetime, or null for none. */
  readonly maxTtl: number | null;
  /** Default `stale-while-revalidate` window (ms). */
  readonly staleWhileRevalidate: number;
  /** Default `stale-if-error` window (ms). */
  readonly staleIfError: number;
}

/** fresh: serve; stale: serve and revalidate; stale-if-error: serve only if the upstream fails; expired: miss. */
export type EntryState = 'fresh' | 'stale' | 'stale-if-error' | 'expired';

/**
 * The freshness of a response arriving at `now`: lifetime from `s-maxage`
 * (we are a shared cache), else `max-age`, else `Expires` − `Date`, else the
 * route's TTL, capped by `maxTtl`; the upstream's `Age` is already spent.
 * Stale windows come from the upstream's extensions, else the route's
 * defaults, and are zero under `must-revalidate`/`proxy-revalidate`.
 */
export function freshnessOf(
  cc: CacheControl,
  expires: string | undefined,
  date: string | undefined,
  age: string | undefined,
  now: number,
  policy: FreshnessPolicy,
): Freshness {
  let lifetime: number;
  const d = storageDirectives(cc);
  const explicit = d.lifetime;
  if (explicit !== undefined) {
    lifetime = explicit * 1000;
  } else if (expires !== undefined) {
    const exp = httpDate(expires);
    const base = date === undefined ? now : httpDate(date);
    // an invalid Expires (often "0") means already expired (RFC 9111 §5.3)
    lifetime = Number.isNaN(exp) || Number.isNaN(base) ? 0 : Math.max(0, exp - base);
  } else {
    lifetime = policy.ttl;
  }
  if (policy.maxTtl !== null) lifetime = Math.min(lifetime, policy.maxTtl);
  const initialAge = parseAge(age);
  const mustRevalidate = d.mustRevalidate;
  return {
    storedAt: now,
    initialAge,
    freshUntil: now + lifetime - initialAge * 1000,
    staleWhileRevalidate: mustRevalidate ? 0 : windowMs(d.staleWhileRevalidate, policy.staleWhileRevalidate),
    staleIfError: mustRevalidate ? 0 : windowMs(d.staleIfError, policy.staleIfError),
  };
}

function windowMs(seconds: number | undefined, fallback: number): number {
  return seconds === undefined ? fallback : seconds * 1000;
}

/**
 * An HTTP-date (all three RFC 9110 §5.6.7 forms start with a day name) in ms,
 * else NaN; `Date.parse` alone would read "0" as the year 2000.
 */
export function httpDate(value: string): number {
  return /^\s*(mon|tue|wed|thu|fri|sat|sun)/i.test(value) ? Date.parse(value) : NaN;
}

function parseAge(value: string | undefined): number {
  if (value === undefined) return 0;
  const v = value.trim();
  return /^\d+$/.test(v) ? Math.min(Number(v), 2_147_483_648) : 0;
}

export function entryState(f: Freshness, now: number): EntryState {
  if (now < f.freshUntil) return 'fresh';
  const past = now - f.freshUntil;
  if (past < f.staleWhileRevalidate) return 'stale';
  if (past < f.staleIfError) return 'stale-if-error';
  return 'expired';
}

/** The `Age` header value at `now`: the upstream's age plus whole seconds held here. */
export function ageSeconds(f: Freshness, now: number): number {
  return f.initialAge + Math.max(0, Math.floor((now - f.storedAt) / 1000));
}

/**
 * A stored `Expires` as a hit states it (`expiresLast`): the gateway's
 * `Date` (uWS writes its own, the current second, and cannot leave it out)
 * plus the `Age` sent plus the time the entry stays fresh here. A
 * downstream cache takes `Expires` − `Date` as the lifetime and counts
 * `Age` against it (RFC 9111 §4.2.1, §4.2.3): so it counts the time held
 * here once, as it does from the stored `Date` and `Age` Varnish sends.
 * Before, the stored `Expires` under the gateway's `Date` counted it twice.
 */
export function restatedExpires(f: Freshness, now: number): string {
  // Whole seconds, as the date is written; the hits of an entry within a second state the same one.
  const s = Math.floor((now - (now % 1000) + ageSeconds(f, now) * 1000 + (f.freshUntil - now)) / 1000);
  const slot = s & (EXPIRES_SLOTS - 1);
  if (expiresSeconds[slot] !== s) {
    expiresSeconds[slot] = s;
    expiresTexts[slot] = new Date(s * 1000).toUTCString();
  }
  return expiresTexts[slot]!;
}

/**
 * The dates `restatedExpires` made, by their second (direct-mapped): one
 * `toUTCString` costs ~350 ns, and hits of several entries within a second
 * each restate another date (one memo for the last date made them all again).
 */
const EXPIRES_SLOTS = 64;
const expiresSeconds = new Float64Array(EXPIRES_SLOTS).fill(Number.NaN);
const expiresTexts: string[] = new Array<string>(EXPIRES_SLOTS).fill('');

/**
 * Whether a stored header list ends with the `Expires` line that hits
 * restate (`restatedExpires`): `planStorage` puts it last when the
 * freshness came from it, and keeps it from the end otherwise.
 */
export function expiresLast(headers: readonly string[]): boolean {
  const n = headers.length;
  return n >= 2 && headers[n - 2] === 'expires';
}

/** How long a store should keep the entry (ms): fresh time left plus the longer stale window; ≤ 0 means don't store. */
export function retention(f: Freshness, now: number): number {
  return Math.ceil(f.freshUntil + Math.max(f.staleWhileRevalidate, f.staleIfError) - now);
}
