import type { Browser } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { launchChromium, skipWithoutChromium } from '../support/browser.ts';
import { startGatewayFromYaml } from '../support/servers.ts';
import { startWsUpstream, type WsUpstream } from '../support/ws.ts';

/**
 * A real browser (Debian's headless Chromium, driven by playwright-core)
 * loads a page through the gateway; the page opens an EventSource and a
 * WebSocket through it and shows what it received.
 */

const PAGE = `<!doctype html>
<html><body><pre id="out"></pre><script>
  const out = document.getElementById('out');
  const show = (line) => { out.textContent += line + '\\n'; };
  const es = new EventSource('/app/events');
  es.onmessage = (e) => { show('sse: ' + e.data); if (e.data === 'two') es.close(); };
  const ws = new WebSocket('ws://' + location.host + '/app/socket', ['chat.v1', 'chat.v2']);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { show('ws protocol: ' + ws.protocol); ws.send('hello'); ws.send(new Uint8Array([1, 2, 3])); };
  ws.onmessage = (e) => show(typeof e.data === 'string' ? 'ws text: ' + e.data : 'ws binary: ' + Array.from(new Uint8Array(e.data)).join(','));
  ws.onclose = (e) => show('ws closed: ' + e.code + ' ' + e.reason);
</script></body></html>`;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function appUpstream(): Promise<WsUpstream> {
  const up = await startWsUpstream((ws) => {
    let n = 0;
    ws.on('message', (data, isBinary) => {
      ws.send(isBinary ? data as Buffer : `echo ${(data as Buffer).toString()}`, { binary: isBinary });
      if (++n === 2) ws.close(4000, 'done');
    });
  }, { handleProtocols: (p) => (p.has('chat.v2') ? 'chat.v2' : false) });
  // Replace the plain handler: the page, and an event stream.
  up.server.removeAllListeners('request');
  up.server.on('request', (req, res) => {
    req.resume();
    if (req.url === '/app/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      setTimeout(() => res.write(': heartbeat\n\ndata: two\n\n'), 50);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(PAGE);
  });
  cleanups.push(() => up.close());
  return up;
}

describe.skipIf(skipWithoutChromium('browser test'))('a browser through the gateway', () => {
  it('receives Server-Sent Events and WebSocket messages on a page the gateway served', async () => {
    const up = await appUpstream();
    const gw = await startGatewayFromYaml(`
services:
  app: { upstreams: ["${up.url}"], timeout: 1s }
routes:
  - { path: /app/*, service: app, websocket: true }
`);
    cleanups.push(() => gw.close());
    const browser: Browser = await launchChromium();
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`${gw.url}/app/index.html`);
    await page.waitForFunction(() => {
      const text = document.getElementById('out')?.textContent ?? '';
      return text.includes('sse: two') && text.includes('ws closed');
    }, undefined, { timeout: 15_000 });
    const text = await page.textContent('#out');
    expect(text!.split('\n').filter((l) => l !== '').sort()).toEqual([
      'sse: one',
      'sse: two',
      'ws binary: 1,2,3',
      'ws closed: 4000 done',
      'ws protocol: chat.v2',
      'ws text: echo hello',
    ]);
  }, 30_000);
});
