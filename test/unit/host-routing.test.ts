import fc from 'fast-check';
import { of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { HostTable, hostName, hostsOverlap } from '../../lib/router/hosts.ts';
import { RouteTable } from '../../lib/router/table.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { callNow, gatewayRequest } from '../support/request.ts';

/** A handler that answers 200 with `name` in a header. */
const answer = (name: string): Handler => () => of<GatewayResponse>({ status: 200, headers: ['x-route', name], body: null });

function routed(table: RouteTable | HostTable, host: string | undefined, path: string, method = 'GET'): string {
  const out = callNow((req) => table.dispatch(req), gatewayRequest({ method, path, headers: host === undefined ? {} : { host } }));
  return 'status' in out && !('code' in out) ? String((out as GatewayResponse).headers[1]) : `${(out as { status: number }).status}`;
}

describe('hostName: the name a Host header routes by', () => {
  it('lower-cases and drops the port and a trailing dot; IPv6 literals keep their brackets', () => {
    expect(hostName('API.Example.com.:8080')).toBe('api.example.com');
    expect(hostName('api.example.com')).toBe('api.example.com');
    expect(hostName('[::1]:8080')).toBe('[::1]');
    expect(hostName('[::1]')).toBe('[::1]');
    expect(hostName('10.0.0.1:80')).toBe('10.0.0.1');
    expect(hostName(undefined)).toBe('');
  });

  it('never keeps a port, whatever the name', () => {
    fc.assert(fc.property(fc.domain(), fc.integer({ min: 0, max: 65535 }), (name, port) => {
      expect(hostName(`${name.toUpperCase()}:${port}`)).toBe(name.toLowerCase());
    }));
  });
});

describe('hostsOverlap: whether two routes can serve one Host', () => {
  it('compares names without case or trailing dot, and wildcards by the names under them', () => {
    expect(hostsOverlap(undefined, ['a.test'])).toBe(true);
    expect(hostsOverlap(['A.Test.'], ['a.test'])).toBe(true);
    expect(hostsOverlap(['a.test'], ['b.test'])).toBe(false);
    expect(hostsOverlap(['*.example.com'], ['x.example.com'])).toBe(true);
    expect(hostsOverlap(['x.example.com'], ['*.example.com'])).toBe(true);
    expect(hostsOverlap(['*.example.com'], ['example.com'])).toBe(false);
    expect(hostsOverlap(['*.example.com'], ['*.a.example.com'])).toBe(true);
    expect(hostsOverlap(['*.a.test'], ['*.b.test'])).toBe(false);
  });
});

describe('HostTable', () => {
  const routes = [
    { path: '/api/*', hosts: ['api.example.com'], handler: answer('api') },
    { path: '/only-get', hosts: ['API.Example.COM.'], methods: ['GET'], handler: answer('api-get') },
    { path: '/*', hosts: ['*.example.com'], handler: answer('wild') },
    { path: '/*', hosts: ['*.eu.example.com'], handler: answer('eu') },
    { path: '/*', handler: answer('default') },
  ];
  const table = HostTable.of(routes);

  it('is a plain RouteTable when no route names hosts', () => {
    expect(HostTable.of([{ path: '/*', handler: answer('x') }])).toBeInstanceOf(RouteTable);
    expect(table).toBeInstanceOf(HostTable);
    expect(table.size).toBe(5);
  });

  it('chooses the exact name, then the longest wildcard, then the routes without hosts', () => {
    expect(routed(table, 'api.example.com', '/api/x')).toBe('api');
    expect(routed(table, 'API.EXAMPLE.COM:8080', '/api/x')).toBe('api');
    expect(routed(table, 'api.example.com.', '/only-get')).toBe('api-get');
    expect(routed(table, 'a.eu.example.com', '/x')).toBe('eu');
    expect(routed(table, 'b.example.com', '/x')).toBe('wild');
    expect(routed(table, 'a.b.example.com', '/x')).toBe('wild');
    // A wildcard covers names under the domain, not the domain itself.
    expect(routed(table, 'example.com', '/x')).toBe('default');
    expect(routed(table, 'other.org', '/api/x')).toBe('default');
    expect(routed(table, undefined, '/api/x')).toBe('default');
  });

  it('falls through to the next host\'s routes when the chosen ones do not serve the path', () => {
    // api.example.com serves /api/* and /only-get; /x goes on to *.example.com.
    expect(routed(table, 'api.example.com', '/x')).toBe('wild');
  });

  it('answers 405 for a path the host serves for other methods only', () => {
    expect(routed(table, 'api.example.com', '/only-get', 'POST')).toBe('405');
  });

  it('answers 404 when no table serves the path', () => {
    const hostsOnly = HostTable.of([{ path: '/a', hosts: ['a.test'], handler: answer('a') }]);
    expect(routed(hostsOnly, 'a.test', '/a')).toBe('a');
    expect(routed(hostsOnly, 'b.test', '/a')).toBe('404');
  });
});

describe('hosts in the config', () => {
  const config = (hosts: string): string => `
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /a, service: s, hosts: ${hosts} }
`;
  function problems(text: string): readonly string[] {
    try {
      parseConfig(text, 'test.yaml', {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    return [];
  }

  it('accepts names, wildcards and addresses', () => {
    expect(problems(config('[api.example.com, "*.example.com", 10.0.0.1, localhost, API.EXAMPLE.COM.]'))).toEqual([]);
  });

  it('refuses a port, a wildcard elsewhere than first, an empty list, with the key path', () => {
    expect(problems(config('["api.example.com:8080"]')).join('\n')).toMatch(/routes\[0\]\.hosts\[0\]: expected a host name without a port/);
    expect(problems(config('["api.*.com"]')).join('\n')).toMatch(/routes\[0\]\.hosts\[0\]/);
    expect(problems(config('["*"]')).join('\n')).toMatch(/routes\[0\]\.hosts\[0\]/);
    expect(problems(config('[]')).join('\n')).toMatch(/routes\[0\]\.hosts/);
  });

  it('keeps routes on one path for different hosts apart, and refuses the same route twice for one host', () => {
    const two = `
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /a, service: s, hosts: [a.test] }
  - { path: /a, service: s, hosts: [b.test] }
  - { path: /a, service: s }
`;
    expect(problems(two)).toEqual([]);
    expect(problems(two + '  - { path: /a, service: s, hosts: [A.test] }\n').join('\n')).toMatch(/routes\[3\]\.path: routes\[0\] has the same path/);
  });
});
