import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { defineBalancer } from '../../lib/upstream/balancer.ts';
import { Service } from '../../lib/upstream/service.ts';

function problems(yaml: string): readonly string[] {
  try {
    parseConfig(yaml, 't.yaml', {});
    return [];
  } catch (err) {
    return (err as ConfigError).problems ?? [String(err)];
  }
}

describe('balancer settings in YAML', () => {
  it('refuses an unknown balancer, naming the known ones', () => {
    const p = problems(`
services:
  s: { upstreams: ["http://a:1", "http://b:1"], balancer: round-robbin }
routes: [{ path: /*, service: s }]
`);
    expect(p.join('\n')).toMatch(/services\.s\.balancer: unknown balancer "round-robbin" \(known: .*p2c-ewma/);
  });

  it('takes weights, hash options and maxEjectionPercent, and refuses a bad weight', () => {
    expect(problems(`
services:
  s:
    upstreams: ["http://a:1", { url: "http://b:1", weight: 3 }]
    balancer: hash
    hash: { cookie: session, loadFactor: 1.5 }
    maxEjectionPercent: 30
    health: { path: /h, timeout: 1s, expectedStatuses: [200, 204] }
routes: [{ path: /*, service: s }]
`)).toEqual([]);
    expect(problems(`
services:
  s: { upstreams: [{ url: "http://b:1", weight: 0 }] }
routes: [{ path: /*, service: s }]
`).join('\n')).toMatch(/services\.s\.upstreams\[0\]/);
  });

  it('uses a balancer registered in code by name', async () => {
    defineBalancer('always-last', () => ({ pick: (candidates) => candidates[candidates.length - 1]! }));
    const s = new Service('s', { upstreams: ['http://a:1', 'http://b:1'], balancer: 'always-last' });
    expect(s.pick()!.origin).toBe('http://b:1');
    expect(s.pick(['http://b:1'])!.origin).toBe('http://a:1');
    await s.close();
  });

  it('defaults to p2c-ewma with several instances and round-robin with one', async () => {
    const many = new Service('m', { upstreams: ['http://a:1', 'http://b:1'] });
    const one = new Service('o', { upstreams: ['http://a:1'] });
    expect([many.balancerName, one.balancerName]).toEqual(['p2c-ewma', 'round-robin']);
    await Promise.all([many.close(), one.close()]);
  });
});
