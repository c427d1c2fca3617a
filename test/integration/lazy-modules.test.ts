import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { rxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream } from '../support/servers.ts';
import { connect, echo, startWsUpstream, wsUrl } from '../support/ws.ts';

// ioredis and ws are loaded on first use (lib/resources/redis-client.ts,
// lib/server/ws-connect.ts): a gateway whose config needs neither keeps
// ~1 MiB less V8 heap, which every mark-compact walks (docs/gc-promotion.md,
// "Tenth round"). A module preloaded into the CLI's process writes, as the
// process exits, which of the two node's CommonJS loader has loaded.

const runs = rxgateRuns();
const probe = join(runs.dir, 'loaded-probe.mjs');
writeFileSync(probe, `import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
const req = createRequire(import.meta.url);
process.on('exit', () => {
  const files = Object.keys(req.cache);
  const has = (name) => files.some((f) => f.includes('/node_modules/' + name + '/'));
  writeFileSync(process.env.LOADED_OUT, JSON.stringify({ ioredis: has('ioredis'), ws: has('ws') }));
});
`);
let runsDone = 0;
afterAll(() => runs.remove());

/** Starts the CLI with `yaml`, runs `traffic` against its port, stops it, and returns what it had loaded. */
async function loadedBy(yaml: string, traffic: (port: number) => Promise<void>): Promise<{ ioredis: boolean; ws: boolean }> {
  const out = join(runs.dir, `loaded-${runsDone++}.json`);
  const gateway = runs.start(['--config', runs.file(yaml), '--port', '0', '--host', '127.0.0.1'],
    { RXGATE_LOG_LEVEL: 'info', LOADED_OUT: out }, ['--import', probe]);
  const port = Number((await gateway.logged('rxgate listening'))['port']);
  await traffic(port);
  gateway.proc.kill('SIGTERM');
  await gateway.exited;
  return JSON.parse(readFileSync(out, 'utf8')) as { ioredis: boolean; ws: boolean };
}

async function get(port: number, path: string): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}${path}`);
  await res.body.dump();
  return res.statusCode;
}

// Each case has a gateway and an upstream of its own: they run side by side.
describe.concurrent('modules a config does not use are not loaded', { timeout: 60_000 }, () => {
  it('a gateway with a cache in memory and no WebSocket route loads neither ioredis nor ws', async ({ onTestFinished }) => {
    const upstream = await startUpstream((_req, res) => res.end('ok'));
    onTestFinished(() => upstream.close());
    const loaded = await loadedBy(`services:\n  up: { upstreams: ["${upstream.url}"] }\nroutes:\n  - { path: /*, service: up, cache: { ttl: 60s } }\n`, async (port) => {
      expect(await get(port, '/a')).toBe(200);
      expect(await get(port, '/a')).toBe(200);
    });
    expect(loaded).toEqual({ ioredis: false, ws: false });
  });

  it('a cache stored in Redis loads ioredis (Redis down: the gateway starts anyway)', async ({ onTestFinished }) => {
    const upstream = await startUpstream((_req, res) => res.end('ok'));
    onTestFinished(() => upstream.close());
    const loaded = await loadedBy(`redis: { url: "redis://127.0.0.1:1" }\nservices:\n  up: { upstreams: ["${upstream.url}"] }\nroutes:\n  - { path: /*, service: up, cache: { ttl: 60s, store: redis } }\n`, async (port) => {
      expect(await get(port, '/a')).toBe(200);
    });
    expect(loaded).toEqual({ ioredis: true, ws: false });
  });

  it('a WebSocket upgraded through a websocket route loads ws', async ({ onTestFinished }) => {
    const wsUp = await startWsUpstream(echo);
    onTestFinished(() => wsUp.close());
    const loaded = await loadedBy(`services:\n  chat: { upstreams: ["${wsUp.url}"] }\nroutes:\n  - { path: /chat/*, service: chat, websocket: true }\n`, async (port) => {
      const ws = await connect(`${wsUrl(`http://127.0.0.1:${port}`)}/chat/x`);
      ws.terminate();
    });
    expect(loaded).toEqual({ ioredis: false, ws: true });
  });
});
