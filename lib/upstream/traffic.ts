import type { Runtime } from '../runtime.ts';
import type { GatewayRequest, Handler } from '../types.ts';
import { cookieValue } from './hash-balancer.ts';

/** One condition on a header, query parameter or cookie: its exact value, `{ regex }`, or `true`/`false` for present/absent. */
export type ValueMatch = string | boolean | { regex: string };

/** Conditions on a request beyond path and method; all must hold. */
export interface RequestMatch {
  headers?: Record<string, ValueMatch>;
  query?: Record<string, ValueMatch>;
  cookies?: Record<string, ValueMatch>;
}

type Test = (value: string | undefined) => boolean;

function test(m: ValueMatch, where: string): Test {
  if (typeof m === 'boolean') return (v) => (v !== undefined) === m;
  if (typeof m === 'string') return (v) => v === m;
  let re: RegExp;
  try {
    re = new RegExp(m.regex);
  } catch (err) {
    throw new TypeError(`match ${where}: ${(err as Error).message}`);
  }
  return (v) => v !== undefined && re.test(v);
}

function queryValue(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    if (decode(key) === name) return eq === -1 ? '' : decode(pair.slice(eq + 1));
  }
  return undefined;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** A predicate for `match`, compiled once (a bad regex throws `TypeError` here). */
export function requestMatcher(match: RequestMatch): (req: GatewayRequest) => boolean {
  const tests: Array<(req: GatewayRequest) => boolean> = [];
  for (const [name, m] of Object.entries(match.headers ?? {})) {
    const t = test(m, `headers.${name}`);
    const key = name.toLowerCase();
    tests.push((req) => t(req.headers[key]));
  }
  for (const [name, m] of Object.entries(match.query ?? {})) {
    const t = test(m, `query.${name}`);
    tests.push((req) => t(queryValue(req.query, name)));
  }
  for (const [name, m] of Object.entries(match.cookies ?? {})) {
    const t = test(m, `cookies.${name}`);
    tests.push((req) => t(cookieValue(req.headers.cookie, name)));
  }
  return (req) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(req)) return false;
    return true;
  };
}

/**
 * Routes that share a path, tried in order: the first whose `match` holds
 * (a route without one always does) handles the request; none → `orElse`.
 */
export function matchHandler(routes: ReadonlyArray<{ match: ((req: GatewayRequest) => boolean) | null; handler: Handler }>, orElse: Handler): Handler {
  return function matchedRoute(req) {
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.match === null || r.match(req)) return r.handler(req);
    }
    return orElse(req);
  };
}

/**
 * Weighted split between backends (a canary): each request goes to one
 * handler with probability weight / total, drawn from the runtime.
 */
export function splitHandler(backends: ReadonlyArray<{ weight: number; handler: Handler }>, runtime: Runtime): Handler {
  if (backends.length === 1) return backends[0]!.handler;
  const total = backends.reduce((sum, b) => sum + b.weight, 0);
  if (!(total > 0)) throw new TypeError('backends: weights must add up to more than 0');
  return function splitRequest(req) {
    let r = runtime.random() * total;
    for (let i = 0; i < backends.length - 1; i++) {
      r -= backends[i]!.weight;
      if (r < 0) return backends[i]!.handler(req);
    }
    return backends[backends.length - 1]!.handler(req);
  };
}
