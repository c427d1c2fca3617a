import { Observable, type Subscription } from 'rxjs';
import { BufferedBody, tapBody } from '../../body.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import type { BodySink, GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

export interface MirrorOptions {
  /** Sends the copy: usually `forward(shadowService)`. */
  to: Handler;
  /** Share of requests mirrored, in percent. @default 100 */
  percent?: number;
  /** Mirrored requests in flight at most; past that, copies are dropped. @default 100 */
  maxInFlight?: number;
  /** Request bodies up to this many bytes are mirrored; a request with a larger body is not. @default 65536 */
  maxBodyBytes?: number;
  /** Sampling. @default systemRuntime */
  runtime?: Runtime;
  /** Hears of each copy: sent, dropped (sampling aside: limit or body size), failed. */
  onMirror?: (outcome: 'sent' | 'dropped' | 'failed') => void;
}

const defaults = { percent: 100, maxInFlight: 100, maxBodyBytes: 64 * 1024, runtime: systemRuntime, onMirror: () => undefined };

/** Reads a response body to its end and throws it away. */
const DISCARD: BodySink = { write: () => true, end: () => undefined };

/**
 * Request mirroring (shadow traffic): a share of the requests is also sent
 * to `to`, whose response is read and discarded. The real request never
 * waits for the copy and never sees its errors: a copy without a body goes
 * as the real one starts; one with a body goes once the real request's body
 * has streamed through (kept up to `maxBodyBytes`, else the copy is
 * dropped). The copy lives on its own: the client leaving does not cancel
 * it (the shadow service's timeout bounds it).
 */
export function mirror(options: MirrorOptions): MirrorPolicy {
  const o = { ...defaults, ...options };
  if (!(o.percent >= 0 && o.percent <= 100)) throw new TypeError(`mirror.percent: expected 0 to 100, got ${o.percent}`);
  if (o.percent === 0) return Object.assign((next: Handler) => next, { close: () => undefined });
  const { to, runtime, onMirror, maxInFlight, maxBodyBytes } = o;
  const share = o.percent / 100;
  let inFlight = 0;
  const copies = new Set<Subscription>();

  const send = (req: GatewayRequest, body: BufferedBody | null): void => {
    if (inFlight >= maxInFlight) return onMirror('dropped');
    inFlight++;
    onMirror('sent');
    let done = false;
    let sub: Subscription | null = null;
    const finish = (failed: boolean): void => {
      if (done) return;
      done = true;
      inFlight--;
      if (sub !== null) copies.delete(sub);
      if (failed) onMirror('failed');
    };
    const copy: GatewayRequest = { ...req, headers: { ...req.headers }, body, locals: req.locals.forwarding === undefined ? {} : { forwarding: req.locals.forwarding }, attempt: { number: 1, tried: [], instance: null } };
    try {
      const s = to(copy).subscribe({
        next: (res: GatewayResponse) => res.body?.pipe(DISCARD),
        error: () => finish(true),
        complete: () => finish(false),
      });
      if (!done) {
        sub = s;
        copies.add(s);
      }
    } catch {
      finish(true);
    }
  };

  const policy: Policy = (next) => function mirrored(req: GatewayRequest): Observable<GatewayResponse> {
    if (share < 1 && runtime.random() >= share) return next(req);
    const body = req.body;
    if (body === null || body instanceof BufferedBody) {
      if (body !== null && body.length > maxBodyBytes) {
        onMirror('dropped');
        return next(req);
      }
      return new Observable<GatewayResponse>((subscriber) => {
        const sub = next(req).subscribe(subscriber);
        send(req, body === null ? null : new BufferedBody(body.chunks));
        return sub;
      });
    }
    if (body.length !== null && body.length > maxBodyBytes) {
      onMirror('dropped');
      return next(req);
    }
    // A streamed body: keep a copy as it goes to the real upstream.
    const chunks: Uint8Array[] = [];
    let size = 0;
    const tapped = tapBody(body, (chunk) => {
      size += chunk.byteLength;
      if (size <= maxBodyBytes) chunks.push(chunk);
    }, () => {
      if (size <= maxBodyBytes) send(req, new BufferedBody(chunks));
      else onMirror('dropped');
    });
    return next({ ...req, body: tapped });
  };
  return Object.assign(policy, {
    close(): void {
      for (const c of copies) c.unsubscribe();
      copies.clear();
    },
  });
}

/** The mirror Policy, and `close` to abort the copies in flight (the gateway closing). */
export type MirrorPolicy = Policy & { close(): void };
