import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminListener } from '../../lib/admin/listener.ts';
import { adminPageRoutes, type Overview, type SeriesAnswer } from '../../lib/admin/page.ts';
import type { AdminHandler } from '../../lib/admin/types.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { launchChromium, skipWithoutChromium } from '../support/browser.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * The admin page: routes with their stages, services with their instances'
 * health, and per-route plots it draws itself from `/api/series`. Loaded in
 * headless Chromium (Debian's, driven by playwright-core), as an operator
 * would open it.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A node:http server answering with the page's handlers (what the admin listener mounts). */
async function serve(routes: Record<string, AdminHandler>): Promise<string> {
  const server: Server = createServer((req, res) => {
    const [path = '/', query = ''] = (req.url ?? '/').split('?');
    const handler = routes[path];
    if (handler === undefined) {
      res.writeHead(404).end();
      return;
    }
    void Promise.resolve(handler({ method: req.method ?? 'GET', path, query })).then((a) => {
      res.writeHead(a.status, { 'content-type': a.contentType, ...a.headers }).end(req.method === 'HEAD' ? undefined : a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function gatewayWithTwoServices() {
  const users = await startUpstream((req, res) => {
    req.resume();
    res.statusCode = req.url?.includes('boom') ? 500 : 200;
    res.end('ok');
  });
  const orders = await startUpstream((req, res) => {
    req.resume();
    res.end('ok');
  });
  cleanups.push(() => users.close(), () => orders.close());
  const gw = await startGatewayFromYaml(`
services:
  users: { upstreams: ["${users.url}"], timeout: 2s }
  orders: { upstreams: ["${orders.url}"], timeout: 2s }
routes:
  - { name: users, path: /users/*, service: users, retry: false }
  - { name: orders, path: /orders/*, service: orders, methods: [GET], rateLimit: { limit: 1000, window: 1s } }
`);
  cleanups.push(() => gw.close());
  return { gw, users, orders };
}

async function send(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await request(url);
    await res.body.text();
  }
}

describe('the admin page data', () => {
  it('lists the routes with their stages and the services with their instances', async () => {
    const { gw, users } = await gatewayWithTwoServices();
    const routes = adminPageRoutes(gw);
    const answer = await routes['/api/overview']!({ method: 'GET', path: '/api/overview', query: '' });
    expect(answer.status).toBe(200);
    const overview = JSON.parse(String(answer.body)) as Overview;
    expect(overview.routes.map((r) => [r.name, r.path, r.services])).toEqual([['users', '/users/*', ['users']], ['orders', '/orders/*', ['orders']]]);
    const orders = overview.routes[1]!;
    expect(orders.methods).toEqual(['GET']);
    expect(orders.stages).toContain('rateLimit');
    expect(orders.stages.at(-1)).toBe('forward');
    expect(overview.routes[0]!.stages).not.toContain('retry');
    expect(overview.health.services['users']!.instances.map((i) => i.url)).toEqual([users.url]);
  });

  it('counts requests and 5xx answers per second, with latency quantiles', async () => {
    const { gw } = await gatewayWithTwoServices();
    await send(`${gw.url}/users/1`, 5);
    await send(`${gw.url}/users/boom`, 2);
    const routes = adminPageRoutes(gw);
    const answer = await routes['/api/series']!({ method: 'GET', path: '/api/series', query: 'seconds=60' });
    const series = JSON.parse(String(answer.body)) as SeriesAnswer;
    expect(series.seconds).toBe(60);
    const users = series.routes['users']!;
    expect(users.requests).toHaveLength(60);
    expect(users.requests.reduce((a, b) => a + b, 0)).toBe(7);
    expect(users.errors.reduce((a, b) => a + b, 0)).toBe(2);
    expect(users.p99.some((v) => v !== null && v > 0)).toBe(true);
    expect(series.routes['orders']).toBeUndefined();
  });

  it('is answered by the admin listener for methods: 405 with Allow for anything but GET and HEAD, no-store on every answer', async () => {
    const { gw } = await gatewayWithTwoServices();
    const admin = new AdminListener({ host: '127.0.0.1', port: 0, routes: adminPageRoutes(gw), logger: silentLogger });
    await admin.listen();
    cleanups.push(() => admin.close());
    const base = `http://127.0.0.1:${admin.port}`;
    const post = await request(`${base}/`, { method: 'POST' });
    await post.body.dump();
    expect(post.statusCode).toBe(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
    const head = await request(`${base}/api/overview`, { method: 'HEAD' });
    await head.body.dump();
    expect(head.statusCode).toBe(200);
    expect(head.headers['cache-control']).toBe('no-store');
    const page = await request(`${base}/`);
    await page.body.dump();
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
  });
});

describe.skipIf(skipWithoutChromium('admin page browser test'))('the admin page in a browser', () => {
  it('shows the config\'s services, and a plot that changes after traffic', async () => {
    const { gw, users } = await gatewayWithTwoServices();
    const admin = await serve(adminPageRoutes(gw));
    await send(`${gw.url}/orders/1`, 1);

    const browser: Browser = await launchChromium();
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    const failures: string[] = [];
    page.on('requestfailed', (r) => failures.push(r.url()));
    page.on('pageerror', (e) => failures.push(e.message));
    await page.goto(`${admin}/`);

    await page.waitForSelector('#services tr[data-service="orders"]');
    const services = await page.$$eval('#services tbody tr', (rows) => rows.map((r) => r.getAttribute('data-service')));
    expect(services).toEqual(['users', 'orders']);
    expect(await page.textContent('#services')).toContain(users.url);
    expect(await page.textContent('#routes')).toContain('rateLimit');
    await page.waitForSelector('.route-plots[data-route="orders"]');
    expect(await page.$('.route-plots[data-route="users"]')).toBeNull();

    const before = await page.$eval('.route-plots[data-route="orders"] polyline[data-name="requests"]', (l) => l.getAttribute('points'));
    await send(`${gw.url}/users/1`, 6);
    await send(`${gw.url}/orders/2`, 4);
    // The page refreshes itself every 2 s.
    await page.waitForFunction(() => document.querySelector('.route-plots[data-route="users"]')?.getAttribute('data-requests') === '6');
    await page.waitForFunction(() => document.querySelector('.route-plots[data-route="orders"]')?.getAttribute('data-requests') === '5');
    const after = await page.$eval('.route-plots[data-route="orders"] polyline[data-name="requests"]', (l) => l.getAttribute('points'));
    expect(after).not.toBe(before);
    const latency = await page.$eval('.route-plots[data-route="users"] polyline[data-name="p99"]', (l) => l.getAttribute('points'));
    expect(latency).not.toBe('');
    expect(failures).toEqual([]);
  });
});
