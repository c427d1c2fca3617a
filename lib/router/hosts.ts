import type { Observable, Observer, Unsubscribable } from 'rxjs';
import type { GatewayRequest, GatewayResponse } from '../types.ts';
import { RouteTable, type GatewayRoute } from './table.ts';

/**
 * A route's `hosts` entry: a name (`api.example.com`), an IPv4 address, or a
 * wildcard for every name under a domain (`*.example.com`, which matches
 * `a.example.com` and `a.b.example.com`, not `example.com`). No port: a
 * route matches the Host header's name whatever port it names.
 */
export const HOST_PATTERN = /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/**
 * The name a Host header routes by: lower case, without the port and a
 * trailing dot (`API.Example.com.:8080` → `api.example.com`); an IPv6
 * literal keeps its brackets (`[::1]:8080` → `[::1]`).
 */
export function hostName(host: string | undefined): string {
  if (host === undefined) return '';
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    end = close === -1 ? end : close + 1;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  return host.slice(0, end).toLowerCase();
}

/** A `hosts` entry as compared: lower case, no trailing dot. */
export function canonicalHost(pattern: string): string {
  const p = pattern.toLowerCase();
  return p.endsWith('.') ? p.slice(0, -1) : p;
}

/** Whether `name` lies under a wildcard's `suffix` (`.example.com`): one label or more before it. */
function under(name: string, suffix: string): boolean {
  return name.length > suffix.length && name.endsWith(suffix);
}

/** Whether a canonical `hosts` entry serves every name the other does, or some of them (both wildcards). */
function covers(p: string, q: string): boolean {
  if (p === q) return true;
  if (!p.startsWith('*.')) return false;
  const suffix = p.slice(1);
  return q.startsWith('*.') ? q.endsWith(suffix) : under(q, suffix);
}

/** Whether two routes' `hosts` can share a name a request carries: yes when either has none. */
export function hostsOverlap(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  return a.some((x) => b.some((y) => {
    const [p, q] = [canonicalHost(x), canonicalHost(y)];
    return covers(p, q) || covers(q, p);
  }));
}

/**
 * The route table of a config whose routes name `hosts`, chosen in the
 * order of Envoy's virtual hosts and nginx's `server_name`: the routes of
 * the request's exact host name, then those of each wildcard that covers it
 * (longest first), then the routes without `hosts`; the first of these
 * whose routes serve the path answers (a 405 with `Allow` when they serve
 * it for other methods only).
 */
export class HostTable {
  private readonly exact = new Map<string, RouteTable>();
  /** `.example.com` suffixes, longest first. */
  private readonly wildcards: Array<{ suffix: string; table: RouteTable }> = [];
  private readonly rest: RouteTable;
  private readonly routeCount: number;

  /** A plain RouteTable when no route names hosts (nothing to do per request). */
  static of(routes: readonly GatewayRoute[]): RouteTable | HostTable {
    return routes.some((r) => r.hosts !== undefined && r.hosts.length > 0) ? new HostTable(routes) : new RouteTable(routes);
  }

  private constructor(routes: readonly GatewayRoute[]) {
    const byPattern = new Map<string, GatewayRoute[]>();
    const rest: GatewayRoute[] = [];
    for (const route of routes) {
      if (route.hosts === undefined || route.hosts.length === 0) {
        rest.push(route);
        continue;
      }
      for (const pattern of new Set(route.hosts.map(canonicalHost))) {
        let list = byPattern.get(pattern);
        if (list === undefined) byPattern.set(pattern, (list = []));
        list.push(route);
      }
    }
    for (const [pattern, list] of byPattern) {
      const table = new RouteTable(list);
      if (pattern.startsWith('*.')) this.wildcards.push({ suffix: pattern.slice(1), table });
      else this.exact.set(pattern, table);
    }
    this.wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
    this.rest = new RouteTable(rest);
    this.routeCount = routes.length;
  }

  get size(): number {
    return this.routeCount;
  }

  dispatch(req: GatewayRequest): Observable<GatewayResponse> {
    return this.tableFor(req).dispatch(req);
  }

  start(req: GatewayRequest, observer: Observer<GatewayResponse>): Unsubscribable | null {
    return this.tableFor(req).start(req, observer);
  }

  /** `RouteTable.refuse` in the table that would serve the request. */
  refuse(req: GatewayRequest, err: unknown): Observable<never> {
    return this.tableFor(req).refuse(req, err);
  }

  /**
   * The first table that serves the path: the exact name's, then each
   * wildcard's that covers the name (longest first), then the routes
   * without hosts.
   */
  private tableFor(req: GatewayRequest): RouteTable {
    const name = hostName(req.headers['host']);
    const path = req.normalizedPath;
    const table = this.exact.get(name);
    if (table !== undefined && table.serves(path, req)) return table;
    for (const w of this.wildcards) {
      if (under(name, w.suffix) && w.table.serves(path, req)) return w.table;
    }
    return this.rest;
  }
}
