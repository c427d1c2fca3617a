import type { Readable } from 'node:stream';
import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { errors } from 'undici';
import { Deadlines, type Deadline } from '../stages/timeout/deadlines.ts';

/**
 * The real clock, with timers that do not keep the process alive: undici's
 * own timeouts ran on it (unref'd) whatever the gateway's runtime, so a
 * gateway on virtual time does not see its service timeouts fire when its
 * scheduler is flushed, and a drained gateway exits at once.
 */
const realClock: SchedulerLike = {
  now: () => performance.now(),
  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    const action = new Subscription(() => clearTimeout(timer));
    const timer = setTimeout(() => {
      if (!action.closed) work.call(action as unknown as SchedulerAction<T>, state);
    }, delay);
    timer.unref();
    return action;
  },
};

/**
 * A service's deadline list for its `timeout` of `ms` (null for 0: none),
 * one timer for all its requests, left to lapse when the list empties (so
 * one request at a time costs no timer work either).
 */
export function serviceDeadlines(ms: number): Deadlines | null {
  return ms > 0 ? new Deadlines(realClock, realClock.now, ms, true) : null;
}

/**
 * The service's timeout on one upstream exchange, as undici's
 * `headersTimeout` and `bodyTimeout` bounded it before forward turned those
 * off (undici made a timer object per request for them, promoted into old
 * space under load; docs/upstream-timers.md). The exchange is itself the
 * entry in its service's deadline list (`Service.deadlines`, one timer for
 * all): on the list from the request reaching a socket until its head, then
 * moved to the list's end at every body chunk, off it while the client holds
 * the body back. A deadline passing aborts the request with undici's own
 * timeout error, through undici's abort, which destroys the connection.
 */
export abstract class ExchangeDeadline implements Deadline {
  deadline = 0;
  prevDeadline: Deadline | null = null;
  nextDeadline: Deadline | null = null;
  /** The response head arrived. */
  protected headed = false;
  /** undici's abort for this request, from `onConnect`. */
  protected abort: ((err: Error) => void) | null = null;
  /** A streamed request body undici is still writing (its head wait then starts again when it is sent). */
  upload: Readable | null = null;

  /** @param timed the service's deadline list while its timeout bounds this request; null once it does not */
  constructor(protected timed: Deadlines | null) {}

  /** The service's timeout starts (again) from now. */
  protected wait(): void {
    const list = this.timed;
    if (list === null) return;
    list.remove(this);
    list.add(this);
  }

  /** The service's timeout no longer applies. */
  protected untime(): void {
    this.timed?.remove(this);
    this.timed = null;
  }

  /** undici wrote the whole request: after a streamed body, the head wait starts again, as undici's did. */
  onRequestSent(): void {
    if (this.upload === null) return;
    this.upload = null;
    if (!this.headed) this.wait();
  }

  /** The service's timeout passed with no head, or with no body chunk. */
  expire(): void {
    if (this.headed) {
      this.abort?.(new errors.BodyTimeoutError());
      return;
    }
    // undici let a request still being uploaded wait, unless the instance
    // stopped reading it (the upload paused): `onRequestSent` re-adds it.
    if (this.upload !== null && !this.upload.isPaused()) return;
    this.abort?.(new errors.HeadersTimeoutError());
  }
}
