import { fnv1a } from '../hash.ts';
import type { GatewayRequest } from '../types.ts';
import type { Balancer, BalancerContext } from './balancer.ts';
import type { Upstream } from './upstream.ts';

/** `hash` balancer options: what a request is keyed by (one of header, cookie, ip). */
export interface HashOptions {
  /** Key by this request header (lower case). */
  header?: string;
  /** Key by this cookie's value. */
  cookie?: string;
  /** Key by the client's address. @default true when neither header nor cookie is set */
  ip?: boolean;
  /**
   * Bounded load (Google's consistent hashing with bounded loads): an
   * instance takes a key only while its in-flight count is under
   * `loadFactor` × the average; past that the key goes on round the ring.
   * @default 1.25
   */
  loadFactor?: number;
  /** Points on the ring per unit of weight. @default 100 */
  pointsPerWeight?: number;
}

const defaults = { loadFactor: 1.25, pointsPerWeight: 100 };

/** A key's place on the ring: FNV-1a, then a final avalanche (murmur3's) so that keys differing in the last byte spread over the ring. */
function ringHash(s: string): number {
  let h = fnv1a(s);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/** The value of cookie `name` in a `cookie` header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let at = 0;
  while (at < header.length) {
    while (header.charCodeAt(at) === 32) at++;
    const end = header.indexOf(';', at);
    const stop = end === -1 ? header.length : end;
    if (header.startsWith(name, at) && header.charCodeAt(at + name.length) === 61 /* = */) {
      return header.slice(at + name.length + 1, stop);
    }
    at = stop + 1;
  }
  return undefined;
}

/**
 * Consistent hashing with bounded load, for sticky sessions: each instance
 * owns `pointsPerWeight × weight` points on a ring; a key goes to the owner
 * of the first point at or after its hash that is a candidate (so a retry,
 * which excludes the instance it tried, goes to the next one) and is not
 * over its share of the load. Adding an instance moves only the keys whose
 * points it takes (about 1/n of them). A request without the key is placed
 * at random.
 */
export function hashBalancer(ctx: BalancerContext): Balancer {
  const o = { ...defaults, ...(ctx.options ?? {}) as HashOptions };
  if (o.header !== undefined && o.cookie !== undefined) throw new TypeError(`service ${ctx.service} hash: set one of header, cookie or ip`);
  if (!(o.loadFactor >= 1)) throw new TypeError(`service ${ctx.service} hash.loadFactor: expected at least 1, got ${o.loadFactor}`);
  const header = o.header?.toLowerCase();
  const cookie = o.cookie;
  const keyOf = (req: GatewayRequest): string | undefined =>
    header !== undefined ? req.headers[header] : cookie !== undefined ? cookieValue(req.headers.cookie, cookie) : req.clientAddress ?? req.remoteAddress;
  let points = new Uint32Array(0);
  let owners: Upstream[] = [];
  const random = ctx.runtime.random;

  return {
    update(instances) {
      const ring: Array<[number, Upstream]> = [];
      for (const u of instances) {
        const count = Math.max(1, Math.round(o.pointsPerWeight * u.weight));
        for (let i = 0; i < count; i++) ring.push([ringHash(`${u.url}#${i}`), u]);
      }
      ring.sort((a, b) => a[0] - b[0]);
      points = Uint32Array.from(ring, (p) => p[0]);
      owners = ring.map((p) => p[1]);
    },
    pick(candidates, req) {
      const n = candidates.length;
      const key = req === null ? undefined : keyOf(req);
      if (key === undefined || key === '' || points.length === 0) return candidates[Math.floor(random() * n)]!;
      let load = 0;
      for (let i = 0; i < n; i++) load += candidates[i]!.inFlight;
      const cap = Math.ceil(o.loadFactor * (load + 1) / n);
      // First point at or after the key's hash.
      const h = ringHash(key);
      let lo = 0;
      let hi = points.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (points[mid]! < h) lo = mid + 1;
        else hi = mid;
      }
      let fallback: Upstream | undefined;
      for (let k = 0; k < points.length; k++) {
        const u = owners[(lo + k) % points.length]!;
        if (!candidates.includes(u)) continue;
        if (u.inFlight + 1 <= cap) return u;
        fallback ??= u;
      }
      return fallback ?? candidates[0]!;
    },
  };
}
