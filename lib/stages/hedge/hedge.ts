import { Observable, type Subscription } from 'rxjs';
import { BufferedBody } from '../../body.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { after, systemRuntime, type Runtime } from '../../runtime.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

export interface HedgeOptions {
  /**
   * Without a response head this long, send another attempt to another
   * instance; or a percentile like `'p95'` of the recent times to a head on
   * this route (the last 256; 50 ms until 32 are known).
   * @default '50ms'
   */
  after?: Duration | `p${number}`;
  /** Extra attempts at most (0 turns hedging off). @default 1 */
  max?: number;
  /** Only these methods are hedged: sending them twice must be harmless. @default ['GET', 'HEAD', 'OPTIONS'] */
  methods?: readonly string[];
  /** Where the hedge timer runs. @default systemRuntime */
  runtime?: Runtime;
  /** Hears of each hedged attempt: sent, then won (its head came first) or lost. */
  onHedge?: (outcome: 'sent' | 'won' | 'lost') => void;
}

const defaults = { after: '50ms', max: 1, methods: ['GET', 'HEAD', 'OPTIONS'], runtime: systemRuntime, onHedge: () => undefined } satisfies Required<HedgeOptions>;

/**
 * Hedged requests: a race of cold subscriptions. The first attempt starts
 * at once; if it has no response head after `after`, another starts on an
 * instance not yet tried (its `attempt.tried` lists the others'), up to
 * `max` more. The first head wins and the others are unsubscribed, which
 * aborts their upstream requests. An attempt that fails is left to the
 * others; when every attempt has failed, the last error goes downstream
 * (for retry, outside, to judge). Requests with a streamed body are never
 * hedged: only none, or one already buffered, can be sent twice.
 */
export function hedge(options: HedgeOptions = {}): Policy {
  const o = { ...defaults, ...options };
  const percentile = typeof o.after === 'string' ? /^p(\d{1,2}(?:\.\d+)?)$/.exec(o.after) : null;
  const delay = percentile === null ? fixedDelay(parseDuration(o.after, 'hedge.after')) : new LatencyQuantile(Number(percentile[1]) / 100);
  if (!Number.isInteger(o.max) || o.max < 0) throw new TypeError(`hedge.max: expected a whole number, got ${o.max}`);
  if (o.max === 0) return (next) => next;
  const methods = new Set(o.methods.map((m) => m.toUpperCase()));
  const { runtime, onHedge, max } = o;

  return (next) => function hedged(req: GatewayRequest): Observable<GatewayResponse> {
    if (!methods.has(req.method) || (req.body !== null && !(req.body instanceof BufferedBody))) return next(req);
    return new Observable<GatewayResponse>((subscriber) => {
      const requests: GatewayRequest[] = [];
      const attempts: Subscription[] = [];
      let winner = -1;
      let failed = 0;
      let timer: Subscription | null = null;
      const start = runtime.now();

      const launch = (): void => {
        const i = requests.length;
        const r = i === 0 ? req : copy(req, requests);
        requests.push(r);
        if (i > 0) onHedge('sent');
        if (i < max) timer = after(runtime, delay.ms(), launch);
        attempts[i] = next(r).subscribe({
          next: (res) => {
            if (winner === -1) {
              winner = i;
              delay.record(runtime.now() - start);
              timer?.unsubscribe();
              for (let k = 0; k < attempts.length; k++) {
                if (k === i) continue;
                attempts[k]?.unsubscribe();
                if (k > 0) onHedge('lost');
              }
              if (i > 0) onHedge('won');
            }
            if (winner === i) subscriber.next(res);
          },
          error: (err: unknown) => {
            if (winner === i) return subscriber.error(err);
            if (winner !== -1) return;
            if (++failed === requests.length) {
              timer?.unsubscribe();
              subscriber.error(err);
            }
          },
          complete: () => {
            if (winner === i) subscriber.complete();
          },
        });
      };
      launch();
      return () => {
        timer?.unsubscribe();
        for (const a of attempts) a?.unsubscribe();
      };
    });
  };
}

interface Delay {
  ms(): number;
  record(ms: number): void;
}

function fixedDelay(ms: number): Delay {
  return { ms: () => ms, record: () => undefined };
}

const SAMPLES = 256;
const MIN_SAMPLES = 32;
const UNKNOWN_MS = 50;

/** A percentile of the last 256 times to a head, recomputed every 32 samples. */
class LatencyQuantile implements Delay {
  private readonly samples = new Float64Array(SAMPLES);
  private count = 0;
  private current = UNKNOWN_MS;

  constructor(private readonly q: number) {
    if (!(q > 0 && q < 1)) throw new TypeError(`hedge.after: expected a percentile between p1 and p99, got p${q * 100}`);
  }

  ms(): number {
    return this.current;
  }

  record(ms: number): void {
    this.samples[this.count % SAMPLES] = ms;
    this.count++;
    if (this.count >= MIN_SAMPLES && this.count % MIN_SAMPLES === 0) {
      const sorted = this.samples.slice(0, Math.min(this.count, SAMPLES)).sort();
      this.current = Math.max(1, sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * this.q))]!);
    }
  }
}

/** Another attempt of `req` that avoids every instance the earlier ones went to. */
function copy(req: GatewayRequest, earlier: readonly GatewayRequest[]): GatewayRequest {
  const tried = [...req.attempt.tried];
  for (const e of earlier) if (e.attempt.instance !== null) tried.push(e.attempt.instance);
  const body = req.body instanceof BufferedBody ? new BufferedBody(req.body.chunks) : req.body;
  const or = req.attempt.elsewhereOr; // after a head timeout, as retry asked (see Attempt.elsewhereOr)
  return { ...req, body, attempt: or === undefined ? { number: req.attempt.number, tried, instance: null } : { number: req.attempt.number, tried, instance: null, elsewhereOr: or } };
}
