/**
 * What the access log costs per request in one process: `AccessLog.finish`
 * on a typical request (route, service, instance, attempts, breaker, a
 * traceparent, two logged headers, a query), its line written through
 * pino's asynchronous destination to /dev/null. Reported: ns per request,
 * the minimum CPU time over batches. `--root DIR` loads
 * `lib/observe/access-log.ts` from another checkout (a `git worktree` of
 * the commit before), for an A/B in alternating runs.
 *
 *   node --import ./bin/loader/register.mjs bench/access-log-line.ts [--root DIR] [--batches 30] [--requests 20000]
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';

const { values } = parseArgs({ options: { root: { type: 'string' }, requests: { type: 'string' }, batches: { type: 'string' } } });
const N = Number(values.requests ?? 20_000);
const BATCHES = Number(values.batches ?? 30);
const root = values.root ?? join(import.meta.dirname, '..');
const { AccessLog } = await import(pathToFileURL(join(root, 'lib/observe/access-log.ts')).href) as typeof import('../lib/observe/access-log.ts');

const logger = pino({ name: 'rxgate', level: 'info', base: { pid: process.pid } }, pino.destination({ dest: '/dev/null', sync: false }));
const log = AccessLog.create({ logger, headers: ['user-agent', 'referer'], redact: ['token'], query: true })!;
const req = {
  id: '6f5b181eaba5f13b-1', method: 'GET', normalizedPath: '/api/users/7', query: 'page=2&token=abc',
  receivedAt: performance.now(), remoteAddress: '127.0.0.1', clientAddress: undefined,
  headers: { 'user-agent': 'curl/8.5.0', referer: 'https://example.com/', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  locals: { route: 'users', service: 'users', instance: 'http://10.0.0.1:8080', attempts: 1, breaker: 'pass' as const, upstreamAt: performance.now() },
} as unknown as Parameters<typeof log.finish>[0];

const batch = (): number => {
  const start = process.cpuUsage();
  for (let i = 0; i < N; i++) log.finish(req, 200, 12, 1068, 0);
  log.flush();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / N;
};
for (let i = 0; i < 5; i++) batch(); // warm-up
const ns: number[] = [];
for (let i = 0; i < BATCHES; i++) {
  ns.push(batch());
  await new Promise((r) => setImmediate(r)); // let the destination write
}
ns.sort((a, b) => a - b);
console.log(`${values.root === undefined ? 'this tree' : root}: min ${ns[0]!.toFixed(0)} ns, median ${ns[BATCHES >> 1]!.toFixed(0)} ns per line (${BATCHES} batches of ${N})`);
