/**
 * CPU per request of this process (the uWS gateway and an undici client;
 * the upstream runs in a child process) for an expired entry of <bytes>
 * answered by a revalidation (the upstream's 304) vs a refetch (a path
 * whose upstream ignores If-None-Match: its 200, stored again). The
 * gateway's wall clock is skewed 61 s per request so every request finds
 * the entry expired. Median of 30 interleaved batches of 100. Loopback only.
 *
 *   node --import ./bin/loader/register.mjs bench/cache-revalidate-e2e.ts [bytes, default 65536]
 */
import { spawn } from 'node:child_process';
import { request } from 'undici';
import { systemRuntime, type Runtime } from '../lib/runtime.ts';
import { buildGateway } from '../lib/config/build.ts';
import { parseConfig } from '../lib/config/load.ts';
import { silentLogger } from '../lib/observe/log.ts';
import { GatewayMetrics } from '../lib/observe/metrics.ts';
import { defaultPipeline } from '../pipeline.ts';
const SIZE = Number(process.argv[2] ?? 65536);
const child = spawn(process.execPath, ['-e', `
const body = Buffer.alloc(${SIZE}, 0x20);
require('node:http').createServer((req, res) => {
  req.resume();
  if (req.url.startsWith('/reval') && req.headers['if-none-match'] === '"e1"') { res.writeHead(304, { etag: '"e1"', 'cache-control': 'max-age=60' }).end(); return; }
  res.writeHead(200, { etag: '"e1"', 'cache-control': 'max-age=60', 'content-type': 'application/json', 'content-length': body.length }).end(body);
}).listen(0, '127.0.0.1', function () { console.log(this.address().port); });
`], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((r) => child.stdout!.once('data', (d) => r(Number(String(d).trim()))));
const skew = { ms: 0 };
const runtime: Runtime = { ...systemRuntime, wallNow: () => Date.now() + skew.ms };
const gw = buildGateway(parseConfig(`
services:
  api: { upstreams: ["http://127.0.0.1:${port}"] }
routes:
  - { path: /*, service: api, cache: { maxEntrySize: 2097152 } }
`, 'bench.yaml', process.env), defaultPipeline, { logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, runtime });
const url = `http://127.0.0.1:${await gw.listen()}`;
async function one(path: string): Promise<string> {
  skew.ms += 61_000;
  const res = await request(`${url}${path}`);
  await res.body.arrayBuffer();
  return String(res.headers['x-cache']);
}
const cases = [['/reval/x', 'revalidated (304)'], ['/full/x', 'refetched (200)']] as const;
for (const [p] of cases) for (let i = 0; i < 200; i++) await one(p);
const per: number[][] = cases.map(() => []);
const seen: string[] = [];
for (let b = 0; b < 30; b++) {
  for (let c = 0; c < cases.length; c++) {
    const u0 = process.cpuUsage();
    for (let i = 0; i < 100; i++) seen[c] = await one(cases[c]![0]);
    const u = process.cpuUsage(u0);
    per[c]!.push((u.user + u.system) / 100);
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
cases.forEach(([, name], c) => console.log(`${SIZE} B ${name} [x-cache ${seen[c]}]: ${med(per[c]!).toFixed(1)} us CPU/request (median of 30 batches of 100; min ${Math.min(...per[c]!).toFixed(1)})`));
await gw.close();
child.kill();
process.exit(0);
