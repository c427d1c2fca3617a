import { of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { isGatewayError, UnauthorizedError, type GatewayError } from '../../lib/errors.ts';
import { negotiate } from '../../lib/stages/compression/negotiate.ts';
import { typeMatcher, DEFAULT_TYPES } from '../../lib/stages/compression/media-types.ts';
import { cors } from '../../lib/stages/cors/cors.ts';
import { originMatcher } from '../../lib/stages/cors/origins.ts';
import { addVary } from '../../lib/stages/cors/vary.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { throwError } from 'rxjs';
import { callNow, gatewayRequest } from '../support/request.ts';

function request(method: string, headers: Record<string, string>): GatewayRequest {
  return gatewayRequest({ id: 'r', method, headers });
}

const call = callNow;

function header(res: GatewayResponse | GatewayError, name: string): string | undefined {
  if (isGatewayError(res)) return res.headers?.[name];
  const i = res.headers.indexOf(name);
  return i === -1 ? undefined : res.headers[i + 1];
}

describe('origin matching', () => {
  const m = originMatcher(['https://app.example.com', 'https://*.example.org', 'http://localhost:3000', { regex: 'https://pr-[0-9]+\\.preview\\.dev' }]);

  it('admits exact origins, any case, and nothing that merely starts or ends like them', () => {
    expect(m.matches('https://app.example.com')).toBe(true);
    expect(m.matches('HTTPS://APP.EXAMPLE.COM')).toBe(true);
    expect(m.matches('https://app.example.com.evil.net')).toBe(false);
    expect(m.matches('http://app.example.com')).toBe(false);
    expect(m.matches('http://localhost:3000')).toBe(true);
    expect(m.matches('http://localhost:3001')).toBe(false);
  });

  it('admits subdomains for a wildcard, not the apex nor look-alikes', () => {
    expect(m.matches('https://a.example.org')).toBe(true);
    expect(m.matches('https://a.b.example.org')).toBe(true);
    expect(m.matches('https://example.org')).toBe(false);
    expect(m.matches('https://evilexample.org')).toBe(false);
    expect(m.matches('https://evil.com/.example.org')).toBe(false);
    expect(m.matches('http://a.example.org')).toBe(false);
  });

  it('matches a regex whole', () => {
    expect(m.matches('https://pr-42.preview.dev')).toBe(true);
    expect(m.matches('https://pr-42.preview.dev.evil.net')).toBe(false);
    expect(m.matches('xhttps://pr-42.preview.dev')).toBe(false);
  });

  it('refuses patterns that are no origin', () => {
    expect(() => originMatcher(['example.com'])).toThrow(TypeError);
    expect(() => originMatcher(['https://ex*ample.com'])).toThrow(TypeError);
    expect(() => originMatcher([{ regex: '(' }])).toThrow(TypeError);
  });
});

describe('cors', () => {
  const OK: GatewayResponse = { status: 200, headers: ['content-type', 'text/plain', 'access-control-allow-origin', '*'], body: null };
  let forwarded = 0;
  const next: Handler = () => { forwarded++; return of(OK); };
  const policy = cors({ origins: ['https://app.example.com'], credentials: true, exposeHeaders: ['x-total'], maxAge: '10m', allowHeaders: ['content-type', 'authorization'] });

  it('answers a preflight itself with 204 and the allow headers', () => {
    forwarded = 0;
    const res = call(policy(next), request('OPTIONS', { origin: 'https://app.example.com', 'access-control-request-method': 'PUT' })) as GatewayResponse;
    expect(forwarded).toBe(0);
    expect(res.status).toBe(204);
    expect(header(res, 'access-control-allow-origin')).toBe('https://app.example.com');
    expect(header(res, 'access-control-allow-credentials')).toBe('true');
    expect(header(res, 'access-control-allow-methods')).toBe('GET, HEAD, PUT, PATCH, POST, DELETE');
    expect(header(res, 'access-control-allow-headers')).toBe('content-type, authorization');
    expect(header(res, 'access-control-max-age')).toBe('600');
    expect(header(res, 'vary')).toBe('Origin');
  });

  it('refuses a preflight from another origin with 403, without forwarding it', () => {
    forwarded = 0;
    const err = call(policy(next), request('OPTIONS', { origin: 'https://evil.example', 'access-control-request-method': 'GET' }));
    expect(forwarded).toBe(0);
    expect(isGatewayError(err) && err.status === 403).toBe(true);
    expect(header(err, 'access-control-allow-origin')).toBeUndefined();
  });

  it('adds the CORS headers to an admitted origin\'s response, replacing the upstream\'s, with Vary: Origin', () => {
    const res = call(policy(next), request('GET', { origin: 'https://app.example.com' })) as GatewayResponse;
    expect(res.headers.filter((h) => h === 'access-control-allow-origin')).toHaveLength(1);
    expect(header(res, 'access-control-allow-origin')).toBe('https://app.example.com');
    expect(header(res, 'access-control-expose-headers')).toBe('x-total');
    expect(header(res, 'vary')).toBe('Origin');
  });

  it('adds none for another origin or none, but still Vary: Origin', () => {
    for (const headers of [{ origin: 'https://evil.example' }, {}]) {
      const res = call(policy(next), request('GET', headers)) as GatewayResponse;
      expect(header(res, 'access-control-allow-origin')).toBeUndefined();
      expect(header(res, 'vary')).toBe('Origin');
    }
  });

  it('puts the headers on error answers too, so the page can read a 401', () => {
    const err = call(policy(() => throwError(() => new UnauthorizedError('no token'))), request('GET', { origin: 'https://app.example.com' }));
    expect(isGatewayError(err) && err.status === 401 && err instanceof UnauthorizedError).toBe(true);
    expect(header(err, 'access-control-allow-origin')).toBe('https://app.example.com');
    expect(header(err, 'vary')).toBe('Origin');
  });

  it('sends * without Vary for any origin without credentials, and reflects request headers with credentials', () => {
    const any = call(cors()(next), request('GET', { origin: 'https://x.test' })) as GatewayResponse;
    expect(header(any, 'access-control-allow-origin')).toBe('*');
    expect(header(any, 'vary')).toBeUndefined();
    const reflect = call(cors({ origins: ['https://x.test'], credentials: true })(next), request('OPTIONS', {
      origin: 'https://x.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-a, content-type',
    })) as GatewayResponse;
    expect(header(reflect, 'access-control-allow-headers')).toBe('x-a, content-type');
    expect(header(reflect, 'vary')).toBe('Access-Control-Request-Headers, Origin');
  });

  it('refuses credentials with every origin when built', () => {
    expect(() => cors({ credentials: true })).toThrow(TypeError);
  });
});

describe('Vary', () => {
  it('appends to an existing Vary once, and leaves Vary: * alone', () => {
    const h = ['vary', 'Accept-Encoding'];
    addVary(h, 'Origin');
    addVary(h, 'origin');
    expect(h).toEqual(['vary', 'Accept-Encoding, Origin']);
    const star = ['vary', '*'];
    addVary(star, 'Origin');
    expect(star).toEqual(['vary', '*']);
  });
});

describe('Accept-Encoding negotiation', () => {
  const offered = ['br', 'gzip'] as const;
  it.each([
    [undefined, null],
    ['', null],
    ['gzip', 'gzip'],
    ['gzip, deflate, br', 'br'],
    ['gzip;q=1.0, br;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['br;q=0, gzip;q=0', null],
    ['*', 'br'],
    ['*;q=0.1, br;q=0', 'gzip'],
    ['identity', null],
    ['deflate', null],
    ['x-gzip', 'gzip'],
    ['GZIP;Q=0.5', 'gzip'],
    ['gzip;q=0.1, identity;q=1', null],
    ['gzip;q=2', null],
    ['gzip;q=abc, br;q=0.3', 'br'],
    ['gzip ; q=0.8 , br ; q=0.8', 'br'],
  ] as const)('%j → %j', (accept, expected) => {
    expect(negotiate(accept, offered)).toBe(expected);
  });
});

describe('compressible types', () => {
  const t = typeMatcher(DEFAULT_TYPES);
  it.each([
    ['text/html; charset=utf-8', true], ['application/json', true], ['application/problem+json', true],
    ['image/svg+xml', true], ['application/javascript', true], ['TEXT/CSS', true],
    ['text/event-stream', false], ['image/png', false], ['application/octet-stream', false], [undefined, false],
  ] as const)('%j → %j', (type, expected) => {
    expect(t(type)).toBe(expected);
  });
});
