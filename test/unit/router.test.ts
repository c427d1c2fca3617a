import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MethodNotAllowedError, RouteNotFoundError } from '../../lib/errors.ts';
import { CompiledRoute, Router, type RouteDefinition } from '../../lib/router/router.ts';

function router(...defs: Array<Omit<RouteDefinition<string>, 'value'> & { value?: string }>): Router<string> {
  const r = new Router<string>();
  for (const d of defs) r.add({ ...d, value: d.value ?? d.path });
  return r;
}

/** The matched route's value, or the error code. */
function which(r: Router<string>, method: string, path: string): string {
  try {
    return r.match(method, path).route.value;
  } catch (err) {
    if (err instanceof RouteNotFoundError) return '404';
    if (err instanceof MethodNotAllowedError) return `405 allow=${err.headers?.allow}`;
    throw err;
  }
}

describe('Router matching', () => {
  it('matches an exact path, with or without a trailing slash, and nothing else', () => {
    const r = router({ path: '/users' });
    expect(which(r, 'GET', '/users')).toBe('/users');
    expect(which(r, 'GET', '/users/')).toBe('/users');
    expect(which(r, 'GET', '/users/1')).toBe('404');
    expect(which(r, 'GET', '/user')).toBe('404');
    expect(which(r, 'GET', '/')).toBe('404');
  });

  it('matches the root path', () => {
    const r = router({ path: '/' });
    expect(which(r, 'GET', '/')).toBe('/');
    expect(which(r, 'GET', '/x')).toBe('404');
  });

  it('captures :param segments and refuses empty ones', () => {
    const r = router({ path: '/users/:id/orders/:orderId' });
    expect(r.match('GET', '/users/42/orders/7').params).toEqual({ id: '42', orderId: '7' });
    expect(which(r, 'GET', '/users//orders/7')).toBe('404');
    expect(which(r, 'GET', '/users/42/orders')).toBe('404');
  });

  it('matches a /* prefix at the prefix and below, never a longer sibling name', () => {
    const r = router({ path: '/api/*' });
    for (const p of ['/api', '/api/', '/api/x', '/api/x/y/z']) expect(which(r, 'GET', p)).toBe('/api/*');
    expect(which(r, 'GET', '/apix')).toBe('404');
    expect(which(r, 'GET', '/ap')).toBe('404');
  });

  it('matches everything with /*', () => {
    const r = router({ path: '/*' });
    expect(which(r, 'GET', '/')).toBe('/*');
    expect(which(r, 'GET', '/a/b')).toBe('/*');
  });

  it('prefers static over :param over wildcard at the first segment that differs', () => {
    const r = router({ path: '/users/*' }, { path: '/users/:id' }, { path: '/users/me' }, { path: '/:section/me' });
    expect(which(r, 'GET', '/users/me')).toBe('/users/me');
    expect(which(r, 'GET', '/users/42')).toBe('/users/:id');
    expect(which(r, 'GET', '/users/42/x')).toBe('/users/*');
    expect(which(r, 'GET', '/users')).toBe('/users/*');
    expect(which(r, 'GET', '/teams/me')).toBe('/:section/me');
  });

  it('prefers an exact route over the prefix of the same path', () => {
    const r = router({ path: '/api/*' }, { path: '/api' });
    expect(which(r, 'GET', '/api')).toBe('/api');
    expect(which(r, 'GET', '/api/x')).toBe('/api/*');
  });

  it('prefers the longer prefix', () => {
    const r = router({ path: '/*' }, { path: '/api/*' }, { path: '/api/v2/*' });
    expect(which(r, 'GET', '/api/v2/x')).toBe('/api/v2/*');
    expect(which(r, 'GET', '/api/v2')).toBe('/api/v2/*');
    expect(which(r, 'GET', '/api/v1')).toBe('/api/*');
    expect(which(r, 'GET', '/other')).toBe('/*');
  });

  it('matches paths with more segments than any route looks at, with and without a trailing slash, as a whole split would (a 414 refusal of 16,000 segments is routed for its cors, review RB of bc6785c)', () => {
    const r = router({ path: '/users/:id' }, { path: '/users/:id/orders/*' }, { path: '/a/b' }, { path: '/api/*' });
    const deep = (n: number, trail: string) => '/' + Array.from({ length: n }, (_, i) => `s${i}`).join('/') + trail;
    expect(which(r, 'GET', '/api' + deep(16000, '/'))).toBe('/api/*');
    expect(which(r, 'GET', '/users/1/orders' + deep(5000, ''))).toBe('/users/:id/orders/*');
    expect(which(r, 'GET', '/users/1/')).toBe('/users/:id');
    expect(which(r, 'GET', '/users/1/x/')).toBe('404');
    expect(which(r, 'GET', '/a/b/')).toBe('/a/b');
    expect(which(r, 'GET', '/a/b/c/')).toBe('404');
    expect(which(r, 'GET', '/a/b/c/d/')).toBe('404');
    expect(r.match('GET', '/users/42/orders/x/y/').params).toEqual({ id: '42' });
  });

  it('keeps the first of two equally specific routes', () => {
    const r = router({ path: '/a/:x', value: 'first' }, { path: '/a/:y', value: 'second' });
    expect(which(r, 'GET', '/a/1')).toBe('first');
  });
});

describe('Router methods', () => {
  it('serves only listed methods, case-insensitively, and HEAD where GET is allowed', () => {
    const r = router({ path: '/x', methods: ['get', 'Post'] });
    expect(which(r, 'GET', '/x')).toBe('/x');
    expect(which(r, 'POST', '/x')).toBe('/x');
    expect(which(r, 'HEAD', '/x')).toBe('/x');
    expect(which(r, 'DELETE', '/x')).toBe('405 allow=GET, HEAD, POST');
  });

  it('lists HEAD in Allow beside GET, since a GET route serves it, once however the routes list it', () => {
    expect(which(router({ path: '/x', methods: ['GET'] }), 'POST', '/x')).toBe('405 allow=GET, HEAD');
    expect(which(router({ path: '/x', methods: ['HEAD', 'GET'] }), 'POST', '/x')).toBe('405 allow=HEAD, GET');
    expect(which(router({ path: '/x', methods: ['GET'] }, { path: '/*', methods: ['HEAD', 'PUT'] }), 'POST', '/x')).toBe('405 allow=GET, HEAD, PUT');
    expect(which(router({ path: '/x', methods: ['POST'] }), 'GET', '/x')).toBe('405 allow=POST');
  });

  it('lists the methods of every route matching the path in Allow', () => {
    const r = router({ path: '/x', methods: ['GET'] }, { path: '/*', methods: ['PUT'] }, { path: '/y', methods: ['PATCH'] });
    const err = (() => {
      try {
        r.match('DELETE', '/x');
      } catch (e) {
        return e as MethodNotAllowedError;
      }
      throw new Error('expected a 405');
    })();
    expect(err.status).toBe(405);
    expect(err.code).toBe('METHOD_NOT_ALLOWED');
    expect(err.headers?.allow?.split(', ').sort()).toEqual(['GET', 'HEAD', 'PUT']);
  });

  it('answers CONNECT and TRACE 405 on a route without methods, and serves them on a route that lists them', () => {
    const r = router({ path: '/api/*' }, { path: '/tunnel', methods: ['CONNECT', 'TRACE'] });
    expect(which(r, 'CONNECT', '/api/x')).toBe('405 allow=GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS');
    expect(which(r, 'TRACE', '/api/x')).toBe('405 allow=GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS');
    expect(which(r, 'GET', '/api/x')).toBe('/api/*');
    expect(which(r, 'CONNECT', '/tunnel')).toBe('/tunnel');
    expect(which(r, 'TRACE', '/tunnel')).toBe('/tunnel');
  });

  it('falls through to a less specific route that allows the method', () => {
    const r = router({ path: '/items/:id', methods: ['GET'] }, { path: '/items/*' });
    expect(which(r, 'GET', '/items/1')).toBe('/items/:id');
    expect(which(r, 'DELETE', '/items/1')).toBe('/items/*');
  });

  it('answers 404, not 405, when no route matches the path at all', () => {
    const r = router({ path: '/x', methods: ['GET'] });
    const err = (() => {
      try {
        r.match('GET', '/y');
      } catch (e) {
        return e as RouteNotFoundError;
      }
      throw new Error('expected a 404');
    })();
    expect(err).toBeInstanceOf(RouteNotFoundError);
    expect(err.status).toBe(404);
  });
});

describe('Router rewrites', () => {
  function rewrite(def: Omit<RouteDefinition<string>, 'value'>, path: string): string | null {
    const r = router(def);
    return r.match('GET', def.path.replace('/*', '').replace(/:\w+/g, 'p') || '/').route.rewrite!(path);
  }

  it('rewrites by regex with capture groups', () => {
    expect(rewrite({ path: '/api/users/*', rewrite: { pattern: '^/api/users', replacement: '/users' } }, '/api/users/42')).toBe('/users/42');
    expect(rewrite({ path: '/v/*', rewrite: { pattern: '^/v/(\\d+)/(.*)$', replacement: '/version-$1/$2' } }, '/v/3/a')).toBe('/version-3/a');
  });

  it('adds a leading slash when the regex removed it', () => {
    expect(rewrite({ path: '/api/*', rewrite: { pattern: '^/api/', replacement: '' } }, '/api/x')).toBe('/x');
  });

  it('strips a prefix, with or without its trailing slash, leaving / when nothing is left', () => {
    const def = { path: '/api/*', rewrite: { stripPrefix: '/api' } };
    expect(rewrite(def, '/api/orders/7')).toBe('/orders/7');
    expect(rewrite(def, '/api')).toBe('/');
    expect(rewrite(def, '/api/')).toBe('/');
    expect(rewrite({ path: '/api/*', rewrite: { stripPrefix: '/api/' } }, '/api/x')).toBe('/x');
  });

  it('leaves the path alone when the prefix only matches part of a segment or not at all', () => {
    const def = { path: '/*', rewrite: { stripPrefix: '/api' } };
    expect(rewrite(def, '/apix/y')).toBe('/apix/y');
    expect(rewrite(def, '/other')).toBe('/other');
  });

  it('strips a prefix the client spelled with percent-encodings, by the segments it matched by, keeping the rest as sent', () => {
    const strip = (prefix: string, path: string, matched: string): string | null => new CompiledRoute({ path: '/*', rewrite: { stripPrefix: prefix }, value: '' }).rewrite!(path, matched);
    expect(strip('/api', '/%61pi/a%20b', '/api/a b')).toBe('/a%20b');
    expect(strip('/api/v1', '/api/%76%31/x%2Fy', '/api/v1/x%2Fy')).toBe('/x%2Fy');
    expect(strip('/api', '/%61pi', '/api')).toBe('/');
    expect(strip('/api', '/%61pi/', '/api/')).toBe('/');
    expect(strip('/café', '/caf\xC3\xA9/x', '/café/x')).toBe('/x');
    expect(strip('/api', '/%61pix/y', '/apix/y')).toBe('/%61pix/y');
    expect(strip('/api', '/other', '/other')).toBe('/other');
  });

  it('refuses (null) a pattern rewrite whose capture makes a dot-segment, plain, encoded or with a parameter', () => {
    const def = { path: '/re/*', rewrite: { pattern: '^/re/x(.*)$', replacement: '/v2/$1' } };
    for (const path of ['/re/x../admin', '/re/x%2e%2e/admin', '/re/x./a', '/re/x..;/admin', '/re/x..']) expect(rewrite(def, path), path).toBeNull();
    for (const path of ['/re/x...', '/re/x.a/b', '/re/xa..b/c', '/re/x/.well-known']) expect(rewrite(def, path), path).not.toBeNull();
  });

  it('has no rewrite when none is configured', () => {
    expect(router({ path: '/x' }).match('GET', '/x').route.rewrite).toBeNull();
  });
});

describe('Router validation', () => {
  it.each([
    [{ path: 'api/*' }, /must start with \//],
    [{ path: '/a/*/b' }, /\* is only allowed as the last segment/],
    [{ path: '/a', rewrite: { pattern: '(' } }, /rewrite pattern "\("/],
    [{ path: '/a', rewrite: {} }, /rewrite needs pattern\+replacement or stripPrefix/],
  ])('refuses %j with a TypeError when the route is added', (def, message) => {
    expect(() => new Router<string>().add({ ...def, value: 'v' })).toThrow(TypeError);
    expect(() => new Router<string>().add({ ...def, value: 'v' })).toThrow(message);
  });

  it('counts its routes', () => {
    expect(router({ path: '/a' }, { path: '/b/*' }).size).toBe(2);
  });
});

describe('Router properties', () => {
  // Route shapes over a tiny alphabet so that many of them overlap.
  const segment = fc.constantFrom('a', 'b', ':p');
  const routePath = fc.tuple(fc.array(segment, { maxLength: 3 }), fc.boolean())
    .map(([segs, prefix]) => '/' + [...segs, ...(prefix ? ['*'] : [])].join('/'));
  const requestPath = fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 4 }).map((segs) => '/' + segs.join('/'));

  it('picks the same route whatever order the routes were added in', () => {
    fc.assert(fc.property(
      fc.uniqueArray(routePath, { minLength: 1, maxLength: 8 }).chain((paths) => fc.tuple(fc.constant(paths), fc.shuffledSubarray(paths, { minLength: paths.length }))),
      fc.array(requestPath, { minLength: 1, maxLength: 10 }),
      ([paths, shuffled], requests) => {
        const a = router(...paths.map((path) => ({ path })));
        const b = router(...shuffled.map((path) => ({ path })));
        for (const p of requests) expect(which(b, 'GET', p)).toBe(which(a, 'GET', p));
      },
    ));
  });

  it('only ever returns a route that matches the path', () => {
    fc.assert(fc.property(
      fc.uniqueArray(routePath, { minLength: 1, maxLength: 8 }),
      requestPath,
      (paths, p) => {
        const r = router(...paths.map((path) => ({ path })));
        const got = which(r, 'GET', p);
        const matching = paths.filter((route) => which(router({ path: route }), 'GET', p) !== '404');
        if (got === '404') expect(matching).toEqual([]);
        else expect(matching).toContain(got);
      },
    ));
  });

  it('prefers a route without wildcard over one with, and a static segment over a param at the first difference', () => {
    fc.assert(fc.property(
      fc.uniqueArray(routePath, { minLength: 2, maxLength: 8 }),
      requestPath,
      (paths, p) => {
        const r = router(...paths.map((path) => ({ path })));
        const got = which(r, 'GET', p);
        if (got === '404') return;
        const kinds = (route: string): number[] => route.split('/').slice(1).filter((s) => s !== '')
          .map((s) => (s === '*' ? 1 : s.startsWith(':') ? 2 : 3));
        for (const other of paths) {
          if (other === got || which(router({ path: other }), 'GET', p) === '404') continue;
          const g = kinds(got);
          const o = kinds(other);
          const i = g.findIndex((k, j) => k !== o[j]);
          // At the first segment where they differ, the winner is at least as specific.
          if (i !== -1 && i < o.length) expect(g[i]!).toBeGreaterThanOrEqual(o[i]!);
        }
      },
    ));
  });
});
