import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway, GatewayRoute } from '../../lib/gateway.ts';
import type { Handler } from '../../lib/types.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { header, rawRequest, type RawResponse } from '../support/http.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * Every route gets its own upstream that answers `<route name> <path as received>`,
 * so each test sees which route served a request and what path went upstream.
 */
let upstreams: TestUpstream[] = [];
let gateway: (Gateway & { url: string }) | undefined;
let params: Array<Record<string, string>> = [];

interface RouteSpec extends Omit<GatewayRoute, 'handler' | 'name'> {
  name: string;
}

async function gatewayWith(specs: RouteSpec[]): Promise<Gateway & { url: string }> {
  const services: Service[] = [];
  const routes: GatewayRoute[] = [];
  for (const spec of specs) {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end(`${spec.name} ${req.url}`);
    });
    upstreams.push(up);
    const service = new Service(spec.name, { upstreams: [up.url] });
    services.push(service);
    const fwd = forward(service);
    const handler: Handler = (req) => {
      params.push({ ...req.params });
      return fwd(req);
    };
    routes.push({ ...spec, handler });
  }
  gateway = await startGateway(routes, { services });
  return gateway;
}

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await Promise.all(upstreams.map((u) => u.close()));
  upstreams = [];
  params = [];
});

function get(path: string, method = 'GET'): Promise<RawResponse> {
  return rawRequest(gateway!.url, `${method} ${path} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n`, { noBody: method === 'HEAD' });
}

/** `<route name> <upstream path>` or `<status>` when the gateway answered itself. */
async function served(path: string, method = 'GET'): Promise<string> {
  const res = await get(path, method);
  if (res.status !== 200) return String(res.status);
  return res.body.toString();
}

describe('route matching', () => {
  it('matches an exact path and nothing below or beside it', async () => {
    await gatewayWith([{ name: 'exact', path: '/users' }]);
    expect(await served('/users')).toBe('exact /users');
    expect(await served('/users/')).toBe('exact /users/');
    expect(await served('/users/1')).toBe('404');
    expect(await served('/usersx')).toBe('404');
  });

  it('matches :param segments and hands their values to the pipeline', async () => {
    await gatewayWith([{ name: 'item', path: '/users/:id/orders/:orderId' }]);
    expect(await served('/users/42/orders/7')).toBe('item /users/42/orders/7');
    expect(params.at(-1)).toEqual({ id: '42', orderId: '7' });
    expect(await served('/users/42/orders')).toBe('404');
    expect(await served('/users//orders/7')).toBe('404');
  });

  it('gives :param values decoded', async () => {
    await gatewayWith([{ name: 'item', path: '/tags/:tag' }]);
    expect(await served('/tags/caf%C3%A9')).toBe('item /tags/caf%C3%A9');
    expect(params.at(-1)).toEqual({ tag: 'café' });
  });

  it('matches a trailing /* prefix at the prefix itself and at any depth below it', async () => {
    await gatewayWith([{ name: 'api', path: '/api/*' }]);
    expect(await served('/api')).toBe('api /api');
    expect(await served('/api/')).toBe('api /api/');
    expect(await served('/api/x/y')).toBe('api /api/x/y');
    expect(await served('/apix')).toBe('404');
    expect(await served('/')).toBe('404');
  });

  it('serves only the listed methods, HEAD with GET, and answers 405 with Allow otherwise', async () => {
    await gatewayWith([{ name: 'ro', path: '/ro', methods: ['GET'] }, { name: 'rw', path: '/rw', methods: ['get', 'post'] }]);
    expect(await served('/ro')).toBe('ro /ro');
    expect((await get('/ro', 'HEAD')).status).toBe(200);
    const denied = await get('/ro', 'POST');
    expect(denied.status).toBe(405);
    expect(header(denied, 'allow')).toBe('GET, HEAD');
    expect(await served('/rw', 'POST')).toBe('rw /rw');
    expect((await get('/rw', 'DELETE')).status).toBe(405);
  });

  it('prefers a static segment over a :param over a wildcard, whatever the order they were added in', async () => {
    await gatewayWith([
      { name: 'wild', path: '/users/*' },
      { name: 'param', path: '/users/:id' },
      { name: 'static', path: '/users/me' },
    ]);
    expect(await served('/users/me')).toBe('static /users/me');
    expect(await served('/users/42')).toBe('param /users/42');
    expect(await served('/users/42/orders')).toBe('wild /users/42/orders');
    expect(await served('/users')).toBe('wild /users');
  });

  it('prefers the longer prefix over the shorter one', async () => {
    await gatewayWith([
      { name: 'all', path: '/*' },
      { name: 'api', path: '/api/*' },
      { name: 'v2', path: '/api/v2/*' },
    ]);
    expect(await served('/api/v2/x')).toBe('v2 /api/v2/x');
    expect(await served('/api/v1/x')).toBe('api /api/v1/x');
    expect(await served('/elsewhere')).toBe('all /elsewhere');
  });

  it('falls through to a less specific route that allows the method', async () => {
    await gatewayWith([
      { name: 'read', path: '/items/:id', methods: ['GET'] },
      { name: 'catchall', path: '/items/*' },
    ]);
    expect(await served('/items/1')).toBe('read /items/1');
    expect(await served('/items/1', 'DELETE')).toBe('catchall /items/1');
  });
});

describe('rewrites', () => {
  it('rewrites the upstream path by regex and keeps the query string', async () => {
    await gatewayWith([{ name: 'users', path: '/api/users/*', rewrite: { pattern: '^/api/users', replacement: '/users' } }]);
    expect(await served('/api/users/42?expand=orders&x=%20')).toBe('users /users/42?expand=orders&x=%20');
    expect(await served('/api/users')).toBe('users /users');
  });

  it('rewrites with capture groups', async () => {
    await gatewayWith([{ name: 'v', path: '/v/:n/*', rewrite: { pattern: '^/v/(\\d+)/(.*)$', replacement: '/version-$1/$2' } }]);
    expect(await served('/v/3/a/b')).toBe('v /version-3/a/b');
  });

  it('strips a prefix, leaving / when nothing remains', async () => {
    await gatewayWith([{ name: 'orders', path: '/api/orders/*', rewrite: { stripPrefix: '/api' } }]);
    expect(await served('/api/orders/7?x=1')).toBe('orders /orders/7?x=1');
    await gateway!.close();
    await gatewayWith([{ name: 'root', path: '/api/*', rewrite: { stripPrefix: '/api/' } }]);
    expect(await served('/api')).toBe('root /');
    expect(await served('/api/x')).toBe('root /x');
  });

  it('applies the rewrite to the normalised path, so dot-segments cannot smuggle the prefix', async () => {
    await gatewayWith([{ name: 'users', path: '/api/users/*', rewrite: { stripPrefix: '/api' } }]);
    expect(await served('/api/x/../users/1')).toBe('users /users/1');
  });
});

describe('normalised matching', () => {
  it.each([
    '/public/../admin',
    '/public/%2e%2e/admin',
    '/public/%2E%2e/admin',
    '/public/.%2e/admin',
    '//admin',
    '/admin/./x',
    '/public/../../admin/x',
  ])('answers 404 for %s when only /public/* is routed', async (path) => {
    await gatewayWith([{ name: 'public', path: '/public/*' }]);
    expect(await served(path)).toBe('404');
  });

  it.each([
    ['/public/../admin', 'admin /admin'],
    ['/public/%2e%2e/admin', 'admin /admin'],
    ['/public/%2e%2e/%2e%2e/admin/secrets', 'admin /admin/secrets'],
    ['//admin', 'admin /admin'],
    ['/admin/./x', 'admin /admin/x'],
    ['/public//x', 'public /public/x'],
    ['/public/./x', 'public /public/x'],
  ])('sends %s to the route it resolves to, with the resolved path', async (path, expected) => {
    await gatewayWith([{ name: 'public', path: '/public/*' }, { name: 'admin', path: '/admin/*' }]);
    expect(await served(path)).toBe(expected);
  });

  it('keeps an encoded slash inside its segment rather than treating it as a separator, on a route with encodedSlashes: keep', async () => {
    await gatewayWith([{ name: 'public', path: '/public/*', encodedSlashes: 'keep' }, { name: 'admin', path: '/admin/*' }]);
    expect(await served('/public/..%2fadmin')).toBe('public /public/..%2fadmin');
  });

  it.each(['/public/..%2fadmin/secret', '/public/..%2Fadmin', '/public/a%5cb', '/public/a%5Cb'])(
    'answers 400 for %s by default, without contacting any upstream', async (path) => {
      await gatewayWith([{ name: 'public', path: '/public/*' }, { name: 'admin', path: '/admin/*' }]);
      expect(await served(path)).toBe('400');
      expect(params).toEqual([]);
    },
  );
});
