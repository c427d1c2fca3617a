/**
 * Scenario `slow-instance`: three upstream instances, one with 50 ms of
 * extra latency; the same closed-loop load through rxgate with round-robin,
 * p2c-ewma, and p2c-ewma plus hedging; p50/p99 and errors per variant, in
 * one run, as a markdown table.
 *
 *   node --import ./bin/loader/register.mjs bench/slow-instance.ts [--duration 5] [--connections 16]
 *   (npm run bench -- --scenario slow-instance, once bench/cli.ts routes it here)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { buildGateway } from '../lib/config/build.ts';
import { parseConfig } from '../lib/config/load.ts';
import { silentLogger } from '../lib/observe/log.ts';
import { GatewayMetrics } from '../lib/observe/metrics.ts';
import { argValue } from './args.ts';

const EXTRA_MS = 50;

async function instance(delayMs: number): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    const answer = (): void => void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Result { variant: string; requests: number; errors: number; p50: number; p99: number; slowShare: number }

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function run(variant: string, service: string, urls: string[], durationMs: number, connections: number): Promise<Result> {
  const yaml = `
services:
  svc:
    upstreams: [${urls.map((u) => `"${u}"`).join(', ')}]
${service}
routes:
  - { path: /*, service: svc }
`;
  const gw = buildGateway(parseConfig(yaml, `${variant}.yaml`, {}), null, {
    logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0,
  });
  const port = await gw.listen();
  const client = new Pool(`http://127.0.0.1:${port}`, { connections });
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        const res = await client.request({ path: '/x', method: 'GET' });
        await res.body.dump();
        if (res.statusCode >= 500) errors++;
        else latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const health = gw.health();
  await client.close();
  await gw.close();
  latencies.sort((a, b) => a - b);
  void health;
  return { variant, requests: latencies.length + errors, errors, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), slowShare: NaN };
}

async function main(): Promise<void> {
  const durationMs = Number(argValue('duration') ?? '5') * 1000;
  const connections = Number(argValue('connections') ?? '16');
  const fast = [await instance(0), await instance(0)];
  let slowHits = 0;
  const slow = await instance(EXTRA_MS);
  slow.server.on('request', () => slowHits++);
  const urls = [fast[0]!.url, fast[1]!.url, slow.url];
  const variants: Array<[string, string]> = [
    ['round-robin', '    balancer: round-robin'],
    ['p2c-ewma', '    balancer: p2c-ewma'],
    ['p2c-ewma + hedge (after 10ms)', '    balancer: p2c-ewma\n    hedge: { after: 10ms, max: 1 }'],
  ];
  const results: Result[] = [];
  for (const [name, service] of variants) {
    slowHits = 0;
    const r = await run(name, service, urls, durationMs, connections);
    r.slowShare = slowHits / Math.max(1, r.requests);
    results.push(r);
  }
  for (const s of [...fast, slow]) {
    s.server.closeAllConnections();
    s.server.close();
  }
  const ms = (v: number): string => `${v.toFixed(2)} ms`;
  console.log(`\nslow-instance: 3 instances, one +${EXTRA_MS} ms; ${connections} connections, ${durationMs / 1000} s per variant\n`);
  console.log('| balancer | requests | p50 | p99 | errors | sent to the slow instance |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of results) console.log(`| ${r.variant} | ${r.requests} | ${ms(r.p50)} | ${ms(r.p99)} | ${r.errors} | ${(r.slowShare * 100).toFixed(1)}% |`);
}

await main();
