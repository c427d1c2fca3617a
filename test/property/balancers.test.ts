import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemRuntime, type Runtime } from '../../lib/runtime.ts';
import { hashBalancer } from '../../lib/upstream/hash-balancer.ts';
import { leastRequest, p2cEwma, roundRobin, weightedRandom } from '../../lib/upstream/balancers.ts';
import { Service } from '../../lib/upstream/service.ts';
import type { GatewayRequest } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

function seeded(seed: number): () => number {
  let s = seed % 2147483647 || 1;
  return () => {
    s = (s * 16807) % 2147483647;
    return (s - 1) / 2147483646;
  };
}

function runtimeAt(clock: { t: number }, seed = 1): Runtime {
  return { ...systemRuntime, now: () => clock.t, random: seeded(seed) };
}

const weightsArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 5 });

function service(weights: number[], balancer: string, runtime: Runtime, extra: object = {}): Service {
  return new Service('p', { upstreams: weights.map((weight, i) => ({ url: `http://10.0.0.${i + 1}:80`, weight })), balancer, runtime, ...extra });
}

function req(headers: Record<string, string>): GatewayRequest {
  return gatewayRequest({ id: '1', headers, remoteAddress: '10.1.1.1' });
}

describe('balancers', () => {
  it('round-robin gives each instance exactly its weight in every cycle of total weight', () => {
    fc.assert(fc.property(weightsArb, fc.integer({ min: 1, max: 4 }), (weights, cycles) => {
      const s = service(weights, 'round-robin', runtimeAt({ t: 0 }));
      const total = weights.reduce((a, b) => a + b, 0);
      const counts = new Map<string, number>();
      for (let i = 0; i < total * cycles; i++) {
        const u = s.pick()!;
        counts.set(u.origin, (counts.get(u.origin) ?? 0) + 1);
      }
      s.upstreams.forEach((u) => expect(counts.get(u.origin)).toBe(u.weight * cycles));
    }), { numRuns: 200 });
  });

  it('random converges on the weights (within 3 points over 20,000 picks)', () => {
    fc.assert(fc.property(weightsArb, fc.integer({ min: 1, max: 1e6 }), (weights, seed) => {
      const s = service(weights, 'random', runtimeAt({ t: 0 }, seed));
      const total = weights.reduce((a, b) => a + b, 0);
      const counts = new Map<string, number>();
      const n = 20_000;
      for (let i = 0; i < n; i++) {
        const u = s.pick()!;
        counts.set(u.origin, (counts.get(u.origin) ?? 0) + 1);
      }
      s.upstreams.forEach((u) => expect(Math.abs((counts.get(u.origin) ?? 0) / n - u.weight / total)).toBeLessThan(0.03));
    }), { numRuns: 20 });
  });

  it('least-request always picks an instance with the fewest requests in flight per weight', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 2, maxLength: 5 }), (loads) => {
      const s = service(loads.map(() => 1), 'least-request', runtimeAt({ t: 0 }));
      s.upstreams.forEach((u, i) => { u.inFlight = loads[i]!; });
      expect(s.pick()!.inFlight).toBe(Math.min(...loads));
    }));
  });

  it('p2c-ewma never picks the costlier of its two choices, so never the single worst of several', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 2, maxLength: 5 }), fc.integer({ min: 1, max: 1e6 }), (lat, seed) => {
      const clock = { t: 1000 };
      const s = service(lat.map(() => 1), 'p2c-ewma', runtimeAt(clock, seed));
      s.upstreams.forEach((u, i) => u.observe(lat[i]!, clock.t));
      const worst = Math.max(...lat);
      const unique = lat.filter((l) => l === worst).length === 1;
      for (let i = 0; i < 20; i++) {
        const u = s.pick()!;
        if (unique) expect(u.latency(clock.t)).toBeLessThan(worst);
      }
    }));
  });

  it('hash sends a key to the same instance while the candidates stay, and never over the load bound', () => {
    fc.assert(fc.property(fc.array(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 30 }), (keys) => {
      const s = service([1, 1, 1, 1], 'hash', runtimeAt({ t: 0 }), { hash: { header: 'x-k' } });
      for (const k of keys) expect(s.pick(undefined, req({ 'x-k': k }))).toBe(s.pick(undefined, req({ 'x-k': k })));
      // Requests held in flight: no instance takes more than ceil(1.25 × (total + 1) / n).
      for (const k of keys) {
        const u = s.pick(undefined, req({ 'x-k': k }))!;
        const total = s.upstreams.reduce((a, x) => a + x.inFlight, 0);
        expect(u.inFlight + 1).toBeLessThanOrEqual(Math.ceil(1.25 * (total + 1) / 4));
        u.inFlight++;
      }
    }));
  });

  it('a retry of a hashed key goes to another instance (the next on the ring), through the balancer', () => {
    const s = service([1, 1, 1], 'hash', runtimeAt({ t: 0 }), { hash: { cookie: 'session' } });
    const first = s.pick(undefined, req({ cookie: 'a=1; session=abc' }))!;
    const again = s.pick([first.origin], req({ cookie: 'a=1; session=abc' }))!;
    expect(again).not.toBe(first);
    expect(s.pick([first.origin], req({ cookie: 'session=abc' }))).toBe(again);
  });

  it('a balancer is a few lines: anything with pick', () => {
    const candidates = [1, 2, 3].map((i) => ({ id: i, weight: 1, inFlight: 0, latency: () => 0 })) as never[];
    for (const b of [roundRobin(), weightedRandom(runtimeAt({ t: 0 })), leastRequest(), p2cEwma(runtimeAt({ t: 0 })), hashBalancer({ service: 's', runtime: runtimeAt({ t: 0 }), options: {} })]) {
      expect(candidates).toContain(b.pick(candidates, null));
    }
  });
});
