import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { adminPageRoutes } from '../../lib/admin/page.ts';
import type { AdminHandler } from '../../lib/admin/types.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * `adminPageRoutes` mounted on a server of one's own, not the admin
 * listener: the handlers answer methods (405 with `Allow: GET, HEAD`) and
 * set `cache-control: no-store` themselves, so the page's live numbers are
 * never cached and a POST is never answered with the page. The admin
 * listener's own answers are in admin-page.test.ts.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A node:http server that hands every method to the handler of the path, and writes the answer as it is. */
async function mount(routes: Record<string, AdminHandler>): Promise<string> {
  const server: Server = createServer((req, res) => {
    const [path = '/', query = ''] = (req.url ?? '/').split('?');
    req.resume();
    void Promise.resolve(routes[path]!({ method: req.method ?? 'GET', path, query })).then((a) => {
      res.writeHead(a.status, { 'content-type': a.contentType, ...a.headers }).end(req.method === 'HEAD' ? undefined : a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function pageServer(): Promise<string> {
  const up = await startUpstream((req, res) => {
    req.resume();
    res.end('ok');
  });
  cleanups.push(() => up.close());
  const gw = await startGatewayFromYaml(`
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { name: all, path: /*, service: s }
`);
  cleanups.push(() => gw.close());
  return mount(adminPageRoutes(gw));
}

describe('the admin page routes mounted outside the admin listener', () => {
  it.each(['/', '/api/overview', '/api/series?seconds=60'])('answers POST, PUT and DELETE on %s with 405 and Allow: GET, HEAD', async (path) => {
    const url = await pageServer();
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const res = await request(`${url}${path}`, { method, body: method === 'DELETE' ? null : '{}' });
      expect(res.statusCode, method).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(await res.body.json()).toEqual({ error: 'method not allowed' });
    }
  });

  it.each(['/', '/api/overview', '/api/series?seconds=60'])('answers GET and HEAD on %s with 200 and cache-control: no-store', async (path) => {
    const url = await pageServer();
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await request(`${url}${path}`, { method });
      expect(res.statusCode, method).toBe(200);
      expect(res.headers['cache-control'], method).toBe('no-store');
      await res.body.text();
    }
  });

  it('keeps the page\'s own headers next to no-store', async () => {
    const url = await pageServer();
    const res = await request(`${url}/`);
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'none'/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(await res.body.text()).toMatch(/<html/i);
  });
});
