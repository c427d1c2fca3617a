import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * `timeouts.*` past Node's timer limit (2^31-1 ms) are accepted, as before
 * 69ba347: they go through deadline lists (lib/stages/timeout/deadlines.ts),
 * which arm for at most the limit and again for what is left. So a 720h
 * limit waits for a slow upstream, with no TimeoutOverflowWarning (a
 * timer armed past the limit fires after 1 ms and warns).
 */

let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
const warnings: string[] = [];
const onWarning = (w: Error): void => void warnings.push(w.name);

beforeAll(async () => {
  process.on('warning', onWarning);
  up = await startUpstream((req, res) => {
    req.resume();
    // Answers on a later turn, so a limit that fired after 1 ms would have answered 504 first.
    setTimeout(() => res.end('slow'), 100);
  });
  gw = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${up.url}"], retry: { attempts: 2 } }
routes:
  - { path: /total, service: up, timeouts: { total: 720h } }
  - { path: /attempt, service: up, timeouts: { perAttempt: 720h } }
  - { path: /exchange, service: up, timeouts: { exchange: 9000h } }
`);
});

afterAll(async () => {
  process.off('warning', onWarning);
  await gw?.close();
  await up?.close();
});

describe('timeouts past 2^31-1 ms', () => {
  it.each(['/total', '/attempt', '/exchange'])('%s waits for the upstream and arms no overflowing timer', async (path) => {
    const res = await request(`${gw.url}${path}`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('slow');
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });
});
