import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { parseExposition, type Family } from '../support/prom-text.ts';
import { freePort, rxgateRuns } from '../support/rxgate-process.ts';

/**
 * Under `--workers N` the event loop, heap and GC metrics were the idle main
 * thread's (audit A16, F4): the threads that serve were not shown. Each
 * worker now sends its own, labelled `worker` by its slot, and the main
 * thread adds its own as `worker="main"`: N + 1 series, never a sum; the
 * process's CPU, RSS and fds stay one series, from the main thread. The lag
 * statistics of a window with no sample (prom-client's NaN mean and
 * 9223372036.85 s min) are left out.
 */

const runs = rxgateRuns();
afterAll(() => runs.remove());

const P = 'rxgate_process_';
const workersOf = (f: Family | undefined): string[] => [...new Set((f?.samples ?? []).map((s) => s.labels['worker'] ?? '(none)'))].sort();

describe('runtime metrics with --workers 2', { timeout: 60_000 }, () => {
  it('has each thread\'s event loop, heap and GC series by worker, and the process\'s once', async () => {
    const file = runs.file('admin: { host: 127.0.0.1, port: 0 }\nservices: { s: { upstreams: ["http://127.0.0.1:9"] } }\nroutes: [{ path: /*, service: s }]\n');
    const gw = runs.start(['--config', file, '--host', '127.0.0.1', '--port', String(await freePort()), '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
    try {
      const [admin] = await Promise.all([gw.logged('rxgate admin listening'), gw.logged('rxgate listening', 2)]);
      const scrape = async (): Promise<Map<string, Family>> => {
        const res = await request(`http://127.0.0.1:${String(admin['port'])}/metrics`);
        return parseExposition(await res.body.text());
      };
      // The first scrape (prom-client's lag histogram may have no sample yet), then one more.
      for (const families of [await scrape(), await scrape()]) {
        for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_heap_space_size_used_bytes', 'nodejs_active_handles']) {
          expect([name, workersOf(families.get(P + name))]).toEqual([name, ['0', '1', 'main']]);
        }
        // Every GC series is one thread's.
        expect(workersOf(families.get(P + 'nodejs_gc_duration_seconds')).filter((w) => !['0', '1', 'main'].includes(w))).toEqual([]);
        for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_open_fds']) {
          expect([name, families.get(P + name)?.samples.map((s) => s.labels)]).toEqual([name, [{}]]);
        }
        const lag = [...families.values()].filter((f) => f.name.startsWith(`${P}nodejs_eventloop_lag_`)).flatMap((f) => f.samples);
        expect(lag.filter((s) => !Number.isFinite(s.value) || s.value > 1e6)).toEqual([]);
        expect(lag.every((s) => s.labels['worker'] !== undefined)).toBe(true);
      }
    } finally {
      gw.proc.kill('SIGKILL');
      await gw.exited;
    }
  });
});
