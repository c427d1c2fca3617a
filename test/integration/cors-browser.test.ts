import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, skipWithoutChromium } from '../support/browser.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * A page on another origin calls the gateway with fetch, as a browser does:
 * preflight, then the request. /api/users/:id takes [GET, OPTIONS] and
 * answers the preflight; a PUT or DELETE falls through to /api/*. The
 * preflight must not advertise only GET, HEAD (68e3f13 did: Chromium failed
 * the fetch while the PUT itself is 200).
 */

let page: Server;
let origin: string;
let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
let browser: Browser;

describe.skipIf(skipWithoutChromium('CORS browser test'))('a browser calling through a preflight answered by a more specific route', () => {
  beforeAll(async () => {
    page = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><html><body>page</body></html>');
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    up = await startUpstream((req, res) => {
      req.resume();
      res.end(`${req.method} ok`);
    });
    gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /api/users/:id, service: api, methods: [GET, OPTIONS], cors: { origins: ["${origin}"] } }
  - { path: /api/*, service: api, methods: [PUT, POST, DELETE, OPTIONS], cors: { origins: ["${origin}"] } }
`);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await up?.close();
    await new Promise((resolve) => page?.close(resolve));
  });

  it('lets fetch PUT and DELETE reach the route that answers them', async () => {
    const tab = await browser.newPage();
    await tab.goto(`${origin}/`);
    const results = await tab.evaluate(async (base) => {
      const out: string[] = [];
      for (const method of ['PUT', 'DELETE', 'GET']) {
        try {
          const res = await fetch(`${base}/api/users/5`, { method });
          out.push(`${method} ${res.status} ${await res.text()}`);
        } catch (err) {
          out.push(`${method} failed: ${(err as Error).message}`);
        }
      }
      return out;
    }, gw.url);
    expect(results).toEqual(['PUT 200 PUT ok', 'DELETE 200 DELETE ok', 'GET 200 GET ok']);
  });
});
