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
 *
 * One check per instance at a time: a round skips an instance whose check
 * is still running (Envoy arms its interval timer only after the response
 * or the timeout), and `timeout` bounds a check's whole life, connecting
 * and TLS included. Past it the check fails and its connection is dropped
 * (Envoy closes it too). Until session 10 a round sent a check every
 * `interval` regardless, so with a slow `/health` and `timeout` over
 * `interval` they queued on the checks' one connection without bound.
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
  const timers = new Subscription();
  /** Instances whose check is running, each with its check's token (a late answer of a timed-out one settles nothing). */
  const running = new Map<Upstream, object>();
  let stopped = false;
  timers.add(() => { stopped = true; });
  const check = (u: Upstream): void => {
    if (running.has(u) || stopped) return;
    const token = {};
    running.set(u, token);
    let headed = false;
    const done = (ok: boolean, status: number | null, error?: string): void => {
      if (running.get(u) !== token) return; // settled already (timed out)
      running.delete(u);
      timers.remove(deadline);
      deadline.unsubscribe();
      if (stopped) return;
      u.lastCheck = error === undefined ? { ok, status, at: runtime.wallNow() } : { ok, status, at: runtime.wallNow(), error };
      if (u.health.record(ok)) changed(u);
    };
    const deadline = after(runtime, timeoutMs, function checkTimedOut() {
      // Named after the phase it stopped in: undici's codes once the request is out, as its own timeouts said before.
      const error = headed ? 'UND_ERR_BODY_TIMEOUT' : u.checksConnected() ? 'UND_ERR_HEADERS_TIMEOUT' : CONNECT_PHASE_TIMEOUT;
      done(false, null, error);
      u.dropChecks();
    });
    timers.add(deadline);
    // undici's own head and body timeouts stay, in real time, for a runtime on virtual time.
    u.checks().request({ path: u.basePath + path, method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      .then(async (res) => {
        headed = true;
        await res.body.dump();
        done(passes(res.statusCode), res.statusCode);
      }, (err: Error) => done(false, null, (err as { code?: string }).code ?? err.message));
  };
  const probe = (): void => {
    for (const u of instances()) if (!u.draining) check(u);
  };
  probe();
  timers.add(after(runtime, runtime.random() * intervalMs, () => {
    probe();
    timers.add(every(runtime, intervalMs, probe));
  }));
  return Object.assign(timers, { check });
}

/** `lastCheck.error` of a check that had no connection (TCP or TLS not done) at `health.timeout`. */
export const CONNECT_PHASE_TIMEOUT = 'HEALTH_CHECK_TIMEOUT';

/** The running checks: unsubscribe stops them; `check(u)` probes one instance now, unless its check is running. */
export type Probes = Subscription & { check(u: Upstream): void };
