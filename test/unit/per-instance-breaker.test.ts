import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { GatewayEvents } from '../../lib/observe/events.ts';
import { Resources } from '../../lib/resources/registry.ts';
import { systemRuntime } from '../../lib/runtime.ts';
import { serviceFor } from '../../lib/upstream/service-for.ts';
import type { Service } from '../../lib/upstream/service.ts';

/** `circuitBreaker.perInstance` is the service's outlier ejection (issue 11): one mechanism, configured two ways. */
const services: Service[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
});

function problemsOf(text: string): readonly string[] {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be refused');
}

function ejectionOf(serviceYaml: string): { ejectAfter: number; ejectMs: number; maxEjectMs: number; strikes: number[] } {
  const config = parseConfig(`services:\n  api:\n${serviceYaml}\nroutes:\n  - { path: /*, service: api }\n`, 'test.yaml', {});
  const service = serviceFor('api', config.services['api']!, new Resources(), systemRuntime, new GatewayEvents());
  services.push(service);
  const { outlierConfig, strikeStatus } = service as unknown as { outlierConfig: { ejectAfter: number; ejectMs: number; maxEjectMs: number }; strikeStatus: ArrayLike<number> };
  const strikes: number[] = [];
  for (let s = 100; s < 600; s++) if (strikeStatus[s] === 1) strikes.push(s);
  return { ...outlierConfig, strikes };
}

describe('circuitBreaker.perInstance', () => {
  it('sets the service\'s ejection from the breaker\'s keys', () => {
    expect(ejectionOf(`    upstreams: ["http://127.0.0.1:1"]
    circuitBreaker: { perInstance: true, consecutiveFailures: 3, resetTimeout: 20s, maxResetTimeout: 2m, failureStatuses: [503] }`))
      .toEqual({ ejectAfter: 3, ejectMs: 20_000, maxEjectMs: 120_000, strikes: [503] });
  });

  it('takes the breaker\'s defaults (5 failures, 30 s, up to 5 m) where the breaker sets nothing', () => {
    expect(ejectionOf(`    upstreams: ["http://127.0.0.1:1"]
    circuitBreaker: { perInstance: true }`)).toEqual({ ejectAfter: 5, ejectMs: 30_000, maxEjectMs: 300_000, strikes: [] });
  });

  it('lets the service\'s own ejection keys win', () => {
    expect(ejectionOf(`    upstreams: ["http://127.0.0.1:1"]
    ejectAfter: 2
    ejectFor: 1s
    circuitBreaker: { perInstance: true, consecutiveFailures: 9, resetTimeout: 1m }`)).toMatchObject({ ejectAfter: 2, ejectMs: 1_000 });
  });

  it('leaves ejection at its defaults without perInstance', () => {
    expect(ejectionOf(`    upstreams: ["http://127.0.0.1:1"]
    circuitBreaker: { consecutiveFailures: 9 }`)).toMatchObject({ ejectAfter: 1, ejectMs: 10_000 });
  });

  it('refuses keys ejection does not have, with the key path', () => {
    expect(problemsOf(`services:
  api:
    upstreams: ["http://127.0.0.1:1"]
    circuitBreaker: { perInstance: true, failureRate: 0.5, fallback: { status: 200 } }
routes:
  - { path: /*, service: api }
`)).toEqual([
      expect.stringMatching(/^services\.api\.circuitBreaker\.failureRate: does not apply with perInstance: true/),
      expect.stringMatching(/^services\.api\.circuitBreaker\.fallback: does not apply with perInstance: true/),
    ]);
  });

  it('belongs to the service: a route may not set it, nor tune a per-instance breaker', () => {
    expect(problemsOf(`services:
  api: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /*, service: api, circuitBreaker: { perInstance: true } }
`)).toEqual([expect.stringMatching(/^routes\[0\]\.circuitBreaker\.perInstance: per-instance breaking is the service's outlier ejection/)]);
    expect(problemsOf(`services:
  api: { upstreams: ["http://127.0.0.1:1"], circuitBreaker: { perInstance: true } }
routes:
  - { path: /*, service: api, circuitBreaker: { consecutiveFailures: 2 } }
`)).toEqual([expect.stringMatching(/^routes\[0\]\.circuitBreaker: service api breaks per instance/)]);
    // Turning it off is fine.
    expect(() => parseConfig(`services:
  api: { upstreams: ["http://127.0.0.1:1"], circuitBreaker: { perInstance: true } }
routes:
  - { path: /*, service: api, circuitBreaker: false }
`, 'test.yaml', {})).not.toThrow();
  });
});
