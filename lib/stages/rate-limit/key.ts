import { createHash } from 'node:crypto';
import type { GatewayRequest } from '../../types.ts';

/** What a request is counted against. */
export type RateLimitKey =
  | 'ip'
  | 'route'
  | { claim: string }
  | { header: string }
  | ((req: GatewayRequest) => string | undefined);

/** Keys longer than this (long API keys) are hashed so store keys stay small. */
const MAX_KEY_LENGTH = 128;

/**
 * Compiles a `key` option into a function from request to bucket name.
 * `'ip'` uses `req.clientAddress` (the address behind the top-level
 * `trustedProxies`, set by the `ipFilter` stage), else `req.remoteAddress`; `'route'` is one
 * bucket for everyone on the route. A claim or header that is absent (or a
 * function returning undefined) falls back to the client IP, so a request
 * cannot escape the limit by leaving it out.
 */
export function compileKey(key: RateLimitKey): (req: GatewayRequest) => string {
  // The last address and its key: the same client sends request after
  // request, and handing back the same string (flat, hash cached) makes the
  // store's Map lookup cheaper than a new string every time.
  let lastAddress: string | undefined;
  let lastIpKey = '';
  const byIp = (req: GatewayRequest): string => {
    const address = req.clientAddress ?? req.remoteAddress;
    if (address !== lastAddress) {
      lastAddress = address;
      lastIpKey = `ip:${address}`;
    }
    return lastIpKey;
  };
  if (key === 'ip') return byIp;
  if (key === 'route') return () => 'route';
  if (typeof key === 'function') {
    return function customKey(req) {
      const k = key(req);
      return k === undefined || k === '' ? byIp(req) : `fn:${bounded(k)}`;
    };
  }
  if (typeof key === 'object' && key !== null && 'claim' in key && typeof key.claim === 'string' && key.claim !== '') {
    const claim = key.claim;
    return function claimKey(req) {
      const v = req.locals.claims?.[claim];
      return typeof v === 'string' || typeof v === 'number' ? `claim:${claim}:${bounded(String(v))}` : byIp(req);
    };
  }
  if (typeof key === 'object' && key !== null && 'header' in key && typeof key.header === 'string' && key.header !== '') {
    const header = key.header.toLowerCase();
    return function headerKey(req) {
      const v = req.headers[header];
      return v === undefined || v === '' ? byIp(req) : `header:${header}:${bounded(v)}`;
    };
  }
  throw new TypeError(`rateLimit: key must be 'ip', 'route', { claim }, { header } or a function, got ${JSON.stringify(key)}`);
}

function bounded(value: string): string {
  return value.length <= MAX_KEY_LENGTH ? value : `sha256:${createHash('sha256').update(value).digest('base64url')}`;
}
