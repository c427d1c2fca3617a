import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HealthReport } from '../../lib/upstream/health-view.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

type Record = { type: 'A'; ip: string; ttl: number } | { type: 'SRV'; target: string; port: number; weight: number; ttl: number };

/** A tiny authoritative DNS server on loopback UDP: answers A and SRV questions from `zone`. */
async function dnsServer(zone: Map<string, Record[]>): Promise<{ address: string }> {
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    let at = 12;
    const labels: string[] = [];
    while (msg[at]! !== 0) {
      labels.push(msg.subarray(at + 1, at + 1 + msg[at]!).toString());
      at += msg[at]! + 1;
    }
    const qtype = msg.readUInt16BE(at + 1);
    const question = msg.subarray(12, at + 5);
    const name = labels.join('.').toLowerCase();
    const records = (zone.get(name) ?? []).filter((r) => (r.type === 'A' ? 1 : 33) === qtype);
    const answers = records.map((r) => {
      let rdata: Buffer;
      if (r.type === 'A') rdata = Buffer.from(r.ip.split('.').map(Number));
      else {
        const target = Buffer.concat([...r.target.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
        const head = Buffer.alloc(6);
        head.writeUInt16BE(0, 0);
        head.writeUInt16BE(r.weight, 2);
        head.writeUInt16BE(r.port, 4);
        rdata = Buffer.concat([head, target]);
      }
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(r.type === 'A' ? 1 : 33, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(r.ttl, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    header.writeUInt16BE(records.length > 0 || zone.has(name) ? 0x8580 : 0x8583, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  open.push({ close: () => new Promise((resolve) => socket.close(() => resolve())) });
  return { address: `127.0.0.1:${socket.address().port}` };
}

/** An http server answering its name, on `host:port` (port 0: any). */
async function named(name: string, host = '127.0.0.1', port = 0, delayMs = 0): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    setTimeout(() => res.end(name), delayMs);
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  open.push({ close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }) });
  return { port: (server.address() as { port: number }).port, server };
}

async function text(url: string): Promise<string> {
  return (await request(url)).body.text();
}

describe('service discovery', () => {
  it('DNS A records: re-resolved on their TTL; an added address gets traffic, a removed one finishes its request in flight', async () => {
    const a = await named('a');
    await named('b', '127.0.0.2', a.port);
    const slow = await named('slow-a', '127.0.0.1', 0, 400);
    const zone = new Map<string, Record[]>([['api.test', [{ type: 'A', ip: '127.0.0.1', ttl: 1 }]]]);
    const dns = await dnsServer(zone);
    const gw = await startGatewayFromYaml(`
services:
  api:
    discovery: { dns: { name: api.test, port: ${a.port}, servers: ["${dns.address}"], minInterval: 50ms } }
    balancer: round-robin
  slow:
    discovery: { dns: { name: slow.test, port: ${slow.port}, servers: ["${dns.address}"], minInterval: 50ms } }
    upstreams: ["http://127.0.0.1:${slow.port}"]
routes:
  - { path: /slow, service: slow }
  - { path: /*, service: api }
`);
    open.push(gw);
    expect(await text(`${gw.url}/x`)).toBe('a');
    zone.set('api.test', [{ type: 'A', ip: '127.0.0.1', ttl: 1 }, { type: 'A', ip: '127.0.0.2', ttl: 1 }]);
    await vi.waitFor(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await text(`${gw.url}/x`));
      expect(seen).toEqual(new Set(['a', 'b']));
    }, { timeout: 5_000, interval: 50 });

    // A request in flight on the instance that goes away still completes.
    zone.set('slow.test', [{ type: 'A', ip: '127.0.0.1', ttl: 0 }]);
    const inFlight = request(`${gw.url}/slow`);
    zone.set('slow.test', [{ type: 'A', ip: '127.0.0.2', ttl: 0 }]);
    zone.set('api.test', [{ type: 'A', ip: '127.0.0.2', ttl: 1 }]);
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('slow-a');
    await vi.waitFor(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add(await text(`${gw.url}/x`));
      expect(seen).toEqual(new Set(['b']));
    }, { timeout: 5_000, interval: 50 });
  });

  it('DNS SRV records: targets, ports and weights', async () => {
    const a = await named('a');
    const b = await named('b');
    const zone = new Map<string, Record[]>([
      ['_http._tcp.api.test', [{ type: 'SRV', target: 'a.test', port: a.port, weight: 1, ttl: 5 }, { type: 'SRV', target: 'b.test', port: b.port, weight: 3, ttl: 5 }]],
      ['a.test', [{ type: 'A', ip: '127.0.0.1', ttl: 5 }]],
      ['b.test', [{ type: 'A', ip: '127.0.0.1', ttl: 5 }]],
    ]);
    const dns = await dnsServer(zone);
    const gw = await startGatewayFromYaml(`
services:
  api:
    discovery: { dns: { name: _http._tcp.api.test, type: SRV, servers: ["${dns.address}"] } }
    balancer: round-robin
routes:
  - { path: /*, service: api }
`);
    open.push(gw);
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) seen.push(await text(`${gw.url}/x`));
    expect(seen.filter((s) => s === 'a')).toHaveLength(2);
    expect(seen.filter((s) => s === 'b')).toHaveLength(6);
    const report = await (await request(`${gw.url}/__rxgate/health`)).body.json() as HealthReport;
    expect(report.services.api!.instances.map((i) => [i.url, i.weight])).toEqual([[`http://127.0.0.1:${a.port}`, 1], [`http://127.0.0.1:${b.port}`, 3]]);
  });

  it('a watched file: instances follow its content', async () => {
    const a = await named('a');
    const b = await named('b');
    const dir = mkdtempSync(join(tmpdir(), 'rxgate-discovery-'));
    const file = join(dir, 'api.txt');
    writeFileSync(file, `http://127.0.0.1:${a.port}\n`);
    const gw = await startGatewayFromYaml(`
services:
  api:
    discovery: { file: { path: "${file}", interval: 30ms } }
    balancer: round-robin
routes:
  - { path: /*, service: api }
`);
    open.push(gw);
    expect(await text(`${gw.url}/x`)).toBe('a');
    writeFileSync(file, `# two now\nhttp://127.0.0.1:${a.port}\nhttp://127.0.0.1:${b.port} 2\n`);
    await vi.waitFor(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add(await text(`${gw.url}/x`));
      expect(seen).toEqual(new Set(['a', 'b']));
    }, { timeout: 5_000, interval: 50 });
    writeFileSync(file, JSON.stringify([`http://127.0.0.1:${b.port}`]));
    await vi.waitFor(async () => expect(await text(`${gw.url}/x`)).toBe('b'), { timeout: 5_000, interval: 50 });
  });
});

describe('DNS discovery options', () => {
  it('refuses minInterval: 0 with its key path, as a health or file interval of 0 is refused (a TTL-0 name would be asked on every loop turn)', async () => {
    const { parseConfig, ConfigError } = await import('../../lib/config/load.ts');
    const yaml = (min: string): string => `
services:
  api: { discovery: { dns: { name: api.test, minInterval: ${min} } } }
routes:
  - { path: /*, service: api }
`;
    let problems: readonly string[] = [];
    try {
      parseConfig(yaml('0'), 'gw.yaml', {}, []);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as InstanceType<typeof ConfigError>).problems;
    }
    expect(problems).toEqual([expect.stringMatching(/^services\.api\.discovery\.dns\.minInterval: .*must be more than 0/)]);
    expect(parseConfig(yaml('1ms'), 'gw.yaml', {}, []).services['api']!.discovery!.dns!.minInterval).toBe('1ms');
    // In code, past the schema: refused when the service is built.
    const { dnsDiscovery } = await import('../../lib/upstream/dns-discovery.ts');
    expect(() => dnsDiscovery({ service: 'api', options: { name: 'api.test', minInterval: 0 } } as unknown as Parameters<typeof dnsDiscovery>[0]))
      .toThrow(new TypeError('service api discovery.dns.minInterval: must be more than 0'));
  });
});
