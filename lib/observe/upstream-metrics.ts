import { inRotation } from '../upstream/health-view.ts';
import type { Service, Upstream } from '../upstream/service.ts';
import { bucketOf, histogramSamples, type Sample } from './scraped.ts';

/** `rxgate_upstream_duration_seconds` buckets, in seconds. */
export const UPSTREAM_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The status classes `rxgate_upstream_responses_total` counts (index: the status's hundreds). */
const CODE_CLASSES = ['', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** One instance's time to the response head, as plain numbers. */
class InstanceStats {
  readonly buckets = new Float64Array(UPSTREAM_BUCKETS.length + 1);
  sum = 0;
  failures = 0;
  constructor(readonly upstream: Upstream, readonly labels: { service: string; instance: string }) {}
}

/**
 * Upstream latency by service and instance, and requests in flight: each
 * service reports an answer through its `latencyObserver` (a few number
 * increments into the instance's slot, found by its id), and the registry
 * reads the numbers and the instances' `inFlight` at scrape time.
 */
export class UpstreamMetrics {
  private services = new Set<Service>();
  /** Every instance ever seen, by service name then id (counters never go back). */
  private readonly stats = new Map<string, InstanceStats[]>();
  /** Upstream response heads by service, then status class (index 2: 2xx…); interim 1xx heads are not final answers and not counted. */
  private readonly classes = new Map<string, Float64Array>();

  /** Watches `services` from now on (a reload passes the new set). */
  watch(services: Iterable<Service>): void {
    this.services = new Set(services);
    for (const service of this.services) {
      let slots = this.stats.get(service.name);
      if (slots === undefined) this.stats.set(service.name, slots = []);
      const list = slots;
      const name = service.name;
      let counts = this.classes.get(name);
      if (counts === undefined) this.classes.set(name, counts = new Float64Array(CODE_CLASSES.length));
      const byClass = counts;
      // One increment per upstream head (Envoy's upstream_rq_2xx/4xx/5xx per cluster); the registry reads it at scrape time.
      service.statusObserver = (_upstream, status) => { byClass[(status / 100) | 0]!++; };
      service.latencyObserver = (upstream, ms, ok) => {
        let s = list[upstream.id];
        if (s === undefined || s.upstream !== upstream) {
          s = new InstanceStats(upstream, { service: name, instance: upstream.url });
          list[upstream.id] = s;
        }
        const seconds = ms / 1000;
        s.buckets[bucketOf(UPSTREAM_BUCKETS, seconds)]!++;
        s.sum += seconds;
        if (!ok) s.failures++;
      };
    }
  }

  collectDuration(out: Sample[]): void {
    for (const list of this.stats.values()) {
      for (const s of list) {
        if (s !== undefined) histogramSamples(out, 'rxgate_upstream_duration_seconds', s.labels, UPSTREAM_BUCKETS, s.buckets, s.sum);
      }
    }
  }

  collectResponses(out: Sample[]): void {
    for (const [service, counts] of this.classes) {
      for (let c = 2; c < CODE_CLASSES.length; c++) if (counts[c]! > 0) out.push({ labels: { service, code_class: CODE_CLASSES[c]! }, value: counts[c]! });
    }
  }

  collectFailures(out: Sample[]): void {
    for (const list of this.stats.values()) {
      for (const s of list) if (s !== undefined) out.push({ labels: s.labels, value: s.failures });
    }
  }

  /** 1 for an instance in rotation, 0 for one out (failing its checks or ejected); an instance discovery removed has no line. */
  collectHealthy(out: Sample[]): void {
    for (const service of this.services) {
      const now = service.runtime.now();
      for (const u of service.upstreams) out.push({ labels: { service: service.name, instance: u.url }, value: inRotation(u, now) ? 1 : 0 });
    }
  }

  collectInFlight(out: Sample[]): void {
    for (const service of this.services) {
      for (const u of service.upstreams) out.push({ labels: { service: service.name, instance: u.url }, value: u.inFlight });
    }
  }
}
