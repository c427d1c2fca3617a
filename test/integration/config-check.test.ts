import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateProcess } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * `rxgate --check` builds what a start builds (lib/config/check.ts): each
 * config below passed the schema, so `--check` said OK, and the start then
 * stopped on it. Both now refuse it with the same key path.
 */

const runs = rxgateRuns();
afterAll(() => runs.remove());

const SERVICE = 'services:\n  users: { upstreams: ["http://127.0.0.1:1"] }\n';

/**
 * Refused only while built (a stage's, a service's or the router's own
 * check): `--check` said OK on each. One config, so also one answer listing
 * them all (a spawn costs seconds on a loaded machine).
 */
const BUILT_ONLY = `services:
  users: { upstreams: ["http://127.0.0.1:1"] }
  other: { upstreams: ["http://127.0.0.1:2"] }
  mtls: { upstreams: ["https://127.0.0.1:3"], tls: { ca: /nonexistent.pem }, tlsCa: /nonexistent.pem }
routes:
  - { path: /a, service: users, methods: [GET], cors: { origins: ["https://app.example"] } }
  - { path: /b, service: users }
  - { path: /c, service: users, compression: { types: ["nope"] } }
  - { path: /d, backends: [{ service: users, weight: 0 }, { service: other, weight: 0 }] }
  - { path: /e, service: mtls }
`;
const BUILT_ONLY_PROBLEMS = [
  'routes[0].cors: cors needs OPTIONS in its methods (preflights are OPTIONS requests), or no methods list',
  'routes[2].compression.types: "nope" is not a media type, type/* or *+suffix',
  'routes[3].backends: weights must add up to more than 0',
  'services.mtls: set tls.ca or tlsCa, not both',
];

/** Refused by the router or a service at start, now by the schema (with the rest of its round). */
const NOW_SCHEMA = `services:
  users: { upstreams: ["http://127.0.0.1:1"] }
  found: { discovery: { dns: { name: users.internal, servers: ["dns.internal"] } } }
routes:
  - { path: /a, service: users, match: { headers: { x-v: { regex: "(" } } } }
  - { path: /b, service: users, rewrite: { pattern: "(", replacement: "" } }
  - { path: /c, service: found }
`;
const NOW_SCHEMA_PROBLEMS = [
  'services.found.discovery.dns.servers[0]: expected an IP address, with :port if not 53 ([::1]:5353 for IPv6)',
  'routes[0].match.headers.x-v.regex: Invalid regular expression: /(/: Unterminated group',
  'routes[1].rewrite.pattern: Invalid regular expression: /(/: Unterminated group',
];

function stderrOf(p: RxgateProcess): () => string {
  let err = '';
  p.proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  return () => err;
}

async function refusal(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const p = runs.start(args, { RXGATE_LOG_LEVEL: 'warn' });
  const stderr = stderrOf(p);
  const code = await p.exited;
  return { code, stderr: stderr(), stdout: p.stdout() };
}

describe.concurrent('rxgate --check builds the config as a start does', () => {
  it.each([['built', BUILT_ONLY, BUILT_ONLY_PROBLEMS], ['schema', NOW_SCHEMA, NOW_SCHEMA_PROBLEMS]] as const)(
    'refuses what a start refused (%s) with every key path, as the start does', async (_round, yaml, problems) => {
      const file = runs.file(yaml);
      const [check, start] = await Promise.all([
        refusal(['--config', file, '--check']),
        refusal(['--config', file, '--port', '0', '--host', '127.0.0.1']),
      ]);
      const said = `rxgate: invalid config ${file}:\n${problems.map((p) => `  - ${p}\n`).join('')}`;
      expect(check.stdout).not.toContain('OK');
      expect(check).toMatchObject({ code: 2, stderr: said });
      expect(start).toMatchObject({ code: 2, stderr: said });
    }, 120_000);

  it('builds Redis stores, probed services and DNS discovery without connecting to Redis, probing or resolving', async () => {
    let redis = 0;
    let probes = 0;
    let dns = 0;
    const tcp = createTcpServer((s) => { redis++; s.destroy(); });
    const http = createHttpServer((req, res) => { if (req.url === '/healthz') probes++; res.end('ok'); });
    const udp = createSocket('udp4');
    udp.on('message', () => { dns++; });
    await Promise.all([
      new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => http.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => udp.bind(0, '127.0.0.1', r)),
    ]);
    try {
      const file = runs.file(`redis: { url: "redis://127.0.0.1:${(tcp.address() as AddressInfo).port}" }
services:
  users: { upstreams: ["http://127.0.0.1:${(http.address() as AddressInfo).port}"], health: { path: /healthz, interval: 1s } }
  found: { discovery: { dns: { name: users.internal, servers: ["127.0.0.1:${udp.address().port}"] } } }
routes:
  - { path: /a, service: users, rateLimit: { limit: 10, window: 1s, store: redis }, cache: { ttl: 5s, store: redis } }
  - { path: /b, service: found }
`);
      const check = await refusal(['--config', file, '--check']);
      expect(check).toMatchObject({ code: 0, stderr: '' });
      expect(check.stdout).toContain(`${file}: OK (2 services, 2 routes)`);
      expect([redis, probes, dns]).toEqual([0, 0, 0]);
      // The start does each of them: what the counters would have seen.
      const started = runs.start(['--config', file, '--port', '0', '--host', '127.0.0.1'], { RXGATE_LOG_LEVEL: 'warn' });
      await until(() => redis > 0 && probes > 0 && dns > 0, { timeout: 60_000 });
      started.proc.kill('SIGKILL');
      await started.exited;
    } finally {
      tcp.close();
      http.close();
      udp.close();
    }
  }, 120_000);
});
