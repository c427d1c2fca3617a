import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * maxPending with several instances (review RR3, session 9): a request the
 * balancer picks for an instance whose queue is full goes to another with
 * room; 503 UPSTREAM_OVERLOADED only when every instance is full.
 */

let holding: TestUpstream;
let answering: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
const held: ServerResponse[] = [];
let holdingSeen = 0;

beforeAll(async () => {
  holding = await startUpstream((req, res) => {
    req.resume();
    holdingSeen++;
    held.push(res);
  });
  answering = await startUpstream((req, res) => {
    req.resume();
    res.end('B');
  });
  gw = await startGatewayFromYaml(`
services:
  up:
    upstreams: ["${holding.url}", "${answering.url}"]
    balancer: round-robin
    connections: 1
    maxPending: 0
    retry: false
routes: [ { path: /*, service: up } ]
`);
}, 30_000);

afterAll(async () => {
  for (const res of held) res.end();
  await gw?.close();
  await holding?.close();
  await answering?.close();
});

describe('an instance whose queue is full', () => {
  it('is passed over for one with room (one instance full alone is 503 at once: blackbox-pools)', async () => {
    // Round-robin's first pick is the holding instance: its one connection is then busy for good.
    const first = request(`${gw.url}/hold`);
    while (holdingSeen === 0) await new Promise((r) => setTimeout(r, 10));
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(`${gw.url}/x${i}`);
      answers.push(`${res.statusCode} ${await res.body.text()}`);
    }
    expect(answers).toEqual(['200 B', '200 B', '200 B', '200 B']);
    expect(holdingSeen).toBe(1);
    held.shift()!.end('A');
    expect((await (await first).body.text())).toBe('A');
  });
});
