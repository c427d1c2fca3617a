import { Resolver } from 'node:dns/promises';
import { parseDuration, type Duration } from '../duration.ts';
import { after } from '../runtime.ts';
import { defineDiscovery, type Discovery, type DiscoveryContext } from './discovery.ts';
import type { UpstreamSpec } from './service-options.ts';

/** `discovery: { dns: {…} }`. */
export interface DnsDiscoveryOptions {
  /** The name to resolve. */
  name: string;
  /** `A`, `AAAA`, `A+AAAA`, or `SRV` (targets and ports from the records, weights from theirs). @default 'A' */
  type?: 'A' | 'AAAA' | 'A+AAAA' | 'SRV';
  /** Port of every instance (A/AAAA). @default 80 (443 for https) */
  port?: number;
  /** @default 'http' */
  scheme?: 'http' | 'https';
  /** DNS servers (`host:port`) instead of the system's. */
  servers?: string[];
  /** Re-resolved after the records' TTL, but never sooner than this… @default '1s' */
  minInterval?: Duration;
  /** …nor later than this (and after this for SRV, whose TTL Node does not report). @default '30s' */
  maxInterval?: Duration;
}

/**
 * DNS discovery: A/AAAA records re-resolved when their TTL runs out, or SRV
 * records (each target resolved to its addresses, with the record's port
 * and weight). A failed lookup keeps the instances there are.
 */
export function dnsDiscovery(ctx: DiscoveryContext): Discovery {
  const o = ctx.options as DnsDiscoveryOptions;
  const type = o.type ?? 'A';
  const scheme = o.scheme ?? 'http';
  const port = o.port ?? (scheme === 'https' ? 443 : 80);
  const minMs = parseDuration(o.minInterval ?? '1s', `service ${ctx.service} discovery.dns.minInterval`);
  if (!(minMs > 0)) throw new TypeError(`service ${ctx.service} discovery.dns.minInterval: must be more than 0`);
  const maxMs = Math.max(minMs, parseDuration(o.maxInterval ?? '30s', `service ${ctx.service} discovery.dns.maxInterval`));
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  if (o.servers !== undefined) resolver.setServers(o.servers);
  const url = (ip: string, p: number): string => `${scheme}://${ip.includes(':') ? `[${ip}]` : ip}:${p}`;

  const addresses = async (name: string): Promise<{ ips: string[]; ttl: number }> => {
    const ips: string[] = [];
    let ttl = Infinity;
    if (type !== 'AAAA') {
      for (const r of await resolver.resolve4(name, { ttl: true })) {
        ips.push(r.address);
        ttl = Math.min(ttl, r.ttl);
      }
    }
    if (type === 'AAAA' || type === 'A+AAAA') {
      const v6 = await resolver.resolve6(name, { ttl: true }).catch((err: unknown) => (type === 'AAAA' ? Promise.reject(err) : []));
      for (const r of v6) {
        ips.push(r.address);
        ttl = Math.min(ttl, r.ttl);
      }
    }
    return { ips, ttl };
  };

  const lookup = async (): Promise<{ specs: UpstreamSpec[]; ttlMs: number }> => {
    if (type !== 'SRV') {
      const { ips, ttl } = await addresses(o.name);
      return { specs: ips.map((ip) => url(ip, port)), ttlMs: ttl * 1000 };
    }
    const records = await resolver.resolveSrv(o.name);
    const best = Math.min(...records.map((r) => r.priority));
    const specs: UpstreamSpec[] = [];
    for (const r of records.filter((x) => x.priority === best)) {
      const { ips } = await addresses(r.name);
      for (const ip of ips) specs.push({ url: url(ip, r.port), weight: Math.max(1, r.weight) });
    }
    return { specs, ttlMs: maxMs };
  };

  let stopped = false;
  let timer: { unsubscribe(): void } = { unsubscribe: () => undefined };
  const resolve = (): void => {
    let wait = maxMs;
    lookup().then(({ specs, ttlMs }) => {
      wait = Math.min(maxMs, Math.max(minMs, Number.isFinite(ttlMs) ? ttlMs : maxMs));
      if (!stopped) ctx.update(specs);
    }, ctx.error).finally(() => {
      if (!stopped) timer = after(ctx.runtime, wait, resolve);
    });
  };
  resolve();
  return {
    stop() {
      stopped = true;
      timer.unsubscribe();
      resolver.cancel();
    },
  };
}

defineDiscovery('dns', dnsDiscovery);
