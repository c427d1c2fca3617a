import { Subscription } from 'rxjs';
import { parseDuration } from '../duration.ts';
import { after, every, type Runtime } from '../runtime.ts';
import type { HealthOptions } from './health.ts';
import type { Upstream } from './upstream.ts';

const DEFAULT_INTERVAL = '5s';
const DEFAULT_TIMEOUT = '2s';

/**
 * Active health checks: `GET <path>` on every instance, once at start and
 * then every `interval` from a random phase within the first (so gateways
 * started together do not probe in lockstep), on the runtime's scheduler.
 * `instances` is read at each round, so instances discovery adds are probed
 * too. `changed` hears of each instance whose health flipped.
 */
export function startProbes(
  service: string,
  options: HealthOptions,
  runtime: Runtime,
  instances: () => readonly Upstream[],
  changed: (u: Upstream) => void,
): Probes {
  const intervalMs = parseDuration(options.interval ?? DEFAULT_INTERVAL, `service ${service} health.interval`);
  if (intervalMs <= 0) throw new TypeError(`service ${service} health.interval: expected a positive duration`);
  const timeoutMs = parseDuration(options.timeout ?? DEFAULT_TIMEOUT, `service ${service} health.timeout`);
  if (timeoutMs <= 0) throw new TypeError(`service ${service} health.timeout: expected a positive duration`);
  const expected = options.expectedStatuses;
  const passes = (status: number): boolean => expected === undefined ? status >= 200 && status < 400 : expected.includes(status);
  const path = options.path!;
  const record = (u: Upstream, ok: boolean, status: number | null, error?: string): void => {
    u.lastCheck = error === undefined ? { ok, status, at: runtime.wallNow() } : { ok, status, at: runtime.wallNow(), error };
    if (u.health.record(ok)) changed(u);
  };
  const check = (u: Upstream): void => {
    u.checks().request({ path: u.basePath + path, method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      .then(async (res) => {
        await res.body.dump();
        record(u, passes(res.statusCode), res.statusCode);
      }, (err: Error) => record(u, false, null, (err as { code?: string }).code ?? err.message));
  };
  const probe = (): void => {
    for (const u of instances()) if (!u.draining) check(u);
  };
  probe();
  const timers = new Subscription();
  timers.add(after(runtime, runtime.random() * intervalMs, () => {
    probe();
    timers.add(every(runtime, intervalMs, probe));
  }));
  return Object.assign(timers, { check });
}

/** The running checks: unsubscribe stops them; `check(u)` probes one instance now (one discovery added). */
export type Probes = Subscription & { check(u: Upstream): void };
