import { Observable, type Subscription } from 'rxjs';
import { BufferedBody } from '../../body.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { after, systemRuntime, type Runtime } from '../../runtime.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

export interface HedgeOptions {
  /** Without a response head this long, send another attempt to another instance. @default '50ms' */
  after?: Duration;
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
  const afterMs = parseDuration(o.after, 'hedge.after');
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

      const launch = (): void => {
        const i = requests.length;
        const r = i === 0 ? req : copy(req, requests);
        requests.push(r);
        if (i > 0) onHedge('sent');
        if (i < max) timer = after(runtime, afterMs, launch);
        attempts[i] = next(r).subscribe({
          next: (res) => {
            if (winner === -1) {
              winner = i;
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

/** Another attempt of `req` that avoids every instance the earlier ones went to. */
function copy(req: GatewayRequest, earlier: readonly GatewayRequest[]): GatewayRequest {
  const tried = [...req.attempt.tried];
  for (const e of earlier) if (e.attempt.instance !== null) tried.push(e.attempt.instance);
  const body = req.body instanceof BufferedBody ? new BufferedBody(req.body.chunks) : req.body;
  return { ...req, body, attempt: { number: req.attempt.number, tried, instance: null } };
}
