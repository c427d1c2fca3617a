import { Observable, type Observer, type Subscriber, type Unsubscribable } from 'rxjs';
import { RequestTimeoutError, TooManyInFlightError, type GatewayError } from '../errors.ts';
import type { GatewayRequest, GatewayResponse } from '../types.ts';
import type { Exchange } from './connection.ts';
import type { EdgeHooks } from './edge.ts';
import type { EdgeLimits } from './limits.ts';
import { RequestBody } from './request-body.ts';

/**
 * The pipeline's response to subscribe for `req`, or the refusal of a limit:
 * 414 or 431 for the head, 429 over `maxRequestsPerClient`, each through
 * the refusal policy of the route the request would reach (its cors:
 * `EdgeLimits.refused`). With a body and
 * `bodyIdleTimeout`, or a per-client limit, the pipeline runs inside an
 * `Admitted`, which stops watching the body and frees the slot when it
 * ends; with neither, null: the exchange runs the pipeline itself
 * (`Exchange.run`, nothing added).
 */
export function admit(hooks: EdgeHooks, req: GatewayRequest, exchange: Exchange, headRefusal?: GatewayError | null): Observable<GatewayResponse> | null {
  const limits = hooks.limits;
  if (limits === undefined) return null;
  // Judged by the caller when the request is dispatched on a later turn (edge.ts: `closing`).
  const refused = headRefusal !== undefined ? headRefusal : limits.refusal(req);
  if (refused !== null) return limits.refused(req, refused);
  const body = limits.sweep !== null && req.body instanceof RequestBody ? req.body : null;
  if (body === null && limits.slots === null) return null;
  return new Observable<GatewayResponse>(function admitted(subscriber) {
    const client = limits.slots === null ? null : limits.clientOf(req);
    if (client !== null && !limits.slots!.acquire(client)) {
      return limits.refused(req, new TooManyInFlightError(`this client already has ${limits.slots!.max} requests in flight`)).subscribe(subscriber);
    }
    const running = new Admitted(limits, exchange, body, client, subscriber);
    try {
      running.start(hooks, req);
    } catch (err) {
      // A handler that throws instead of returning an Observable: RxJS hands the
      // subscriber the error, but no teardown was returned, so give back the slot and the watch here.
      running.unsubscribe();
      throw err;
    }
    return running;
  });
}

/**
 * One admitted request while its pipeline runs: the pipeline's observer
 * (passing everything on), the owner of its watched body, and the teardown
 * that gives the watch and the client's slot back. One object, so the
 * wrapper costs no closures per request.
 */
class Admitted implements Observer<GatewayResponse> {
  private answered = false;
  private inner: Unsubscribable | null = null;

  constructor(
    private readonly limits: EdgeLimits, private readonly exchange: Exchange, private readonly body: RequestBody | null,
    private readonly client: string | null, private readonly subscriber: Subscriber<GatewayResponse>,
  ) {}

  /** Runs the pipeline with this as its observer: through `hooks.start` where the gateway has it (no route Observable built), else subscribed. */
  start(hooks: EdgeHooks, req: GatewayRequest): void {
    if (this.body !== null) {
      this.body.owner = this;
      this.limits.watch(this.body);
    }
    const start = hooks.start;
    this.inner = start !== undefined ? start(req, this) : hooks.dispatch(req).subscribe(this);
  }

  next(response: GatewayResponse): void {
    this.answered = true;
    this.subscriber.next(response);
  }

  error(err: unknown): void {
    this.subscriber.error(err);
  }

  complete(): void {
    this.subscriber.complete();
  }

  /** The body has had no chunk for `bodyIdleTimeout` while the pipeline read it. */
  idle(): void {
    const error = new RequestTimeoutError(`no request body received for ${this.limits.bodyIdleTimeout} ms`);
    // Not answered yet: 408 and close (the rest of the body is never read). Answered: the connection drops.
    if (!this.answered) this.exchange.rejectAndClose(error);
    this.subscriber.error(error);
  }

  /** Teardown: stops the pipeline, the watch and the slot. */
  unsubscribe(): void {
    this.inner?.unsubscribe();
    const body = this.body;
    if (body !== null) {
      body.owner = null;
      this.limits.unwatch(body);
    }
    if (this.client !== null) this.limits.slots!.release(this.client);
  }
}
