import { writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../support/prom-text.ts';
import { rxgateRuns } from '../support/rxgate-process.ts';

/**
 * A refused reload left no state an alert could hold on to (A16-findings
 * F2): rxgate_reloads_total{outcome="refused"} went up once, and
 * `increase(...[5m]) > 0` resolved five minutes later while the file on
 * disk, which the next start or crash-restart reads, was still bad.
 * rxgate_config_last_reload_successful stays 0 until a reload is applied
 * (Prometheus's own prometheus_config_last_reload_successful), and
 * rxgate_config_last_reload_success_timestamp_seconds says when the config
 * serving was applied.
 */

const runs = rxgateRuns();
afterAll(() => runs.remove());

const LISTENERS = 'listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nreload: { watch: false }\n';
const GOOD = 'services: { up: { upstreams: ["http://127.0.0.1:1"] } }\nroutes: [{ path: /api/*, service: up }]\n';
const BAD = 'services: { up: { upstreams: ["http://127.0.0.1:1"] } }\nroutes: [{ path: /api/*, service: up, retry: { attempts: -1 } }]\n';

async function state(admin: string): Promise<[number, number]> {
  const res = await request(`${admin}/metrics`);
  const families = parseExposition(await res.body.text());
  const value = (name: string): number => families.get(name)!.samples[0]!.value;
  return [value('rxgate_config_last_reload_successful'), value('rxgate_config_last_reload_success_timestamp_seconds')];
}

async function reload(admin: string): Promise<number> {
  const res = await request(`${admin}/reload`, { method: 'POST' });
  await res.body.dump();
  return res.statusCode;
}

describe('rxgate_config_last_reload_successful', { timeout: 60_000 }, () => {
  for (const args of [[], ['--workers', '2']]) {
    it(`is 1 from the start, 0 from a refused reload until one is applied, with the applied config's time${args.length > 0 ? ' (--workers 2: the workers\' own, merged)' : ''}`, async () => {
      const file = runs.file(LISTENERS + GOOD);
      const before = Date.now() / 1000;
      const gw = runs.start(['--config', file, ...args], { RXGATE_LOG_LEVEL: 'info' });
      const admin = `http://127.0.0.1:${(await gw.logged('rxgate admin listening'))['port'] as number}`;
      await gw.logged('rxgate listening');
      try {
        const [ok, at] = await state(admin);
        expect(ok).toBe(1);
        expect(at).toBeGreaterThan(before - 1);

        writeFileSync(file, LISTENERS + BAD);
        expect(await reload(admin)).toBe(422);
        expect(await state(admin)).toEqual([0, at]);
        // Still 0 after another refusal, whatever its trigger.
        const refusals = gw.lines.filter((l) => l['msg'] === 'config reload refused; the old config keeps serving').length;
        gw.proc.kill('SIGHUP');
        await gw.logged('config reload refused; the old config keeps serving', refusals + 1);
        expect((await state(admin))[0]).toBe(0);

        writeFileSync(file, LISTENERS + GOOD);
        expect(await reload(admin)).toBe(200);
        const [again, appliedAt] = await state(admin);
        expect(again).toBe(1);
        expect(appliedAt).toBeGreaterThan(at); // seconds with a fraction: a later reload is later (review RH, L5)
      } finally {
        gw.proc.kill('SIGTERM');
        expect(await gw.exited).toBe(0);
      }
    });
  }
});
