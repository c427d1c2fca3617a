import type { SchedulerAction, SchedulerLike, Subscription } from 'rxjs';

/** The longest delay setTimeout takes (2^31 - 1 ms). */
const MAX_DELAY = 2_147_483_647;

/** A member of a `Deadlines` list: the links and the deadline are its own fields. */
export interface Deadline {
  deadline: number;
  prevDeadline: Deadline | null;
  nextDeadline: Deadline | null;
  /** The deadline passed: called once, the entry already off the list. */
  expire(): void;
}

/**
 * The deadlines of one limit of one timeout stage (or of one service's
 * upstream timeout, lib/upstream/exchange.ts), with one timer between
 * them rather than one per request (as Envoy and Node's own timer lists do).
 * Every entry gets the same `ms`, so on a monotonic clock deadlines arrive in
 * the order entries join: the list is a FIFO, the timer is due at its head's
 * deadline, and taking any entry off costs no timer work. When the timer
 * finds an entry that left (its head came in time), it re-arms for the head
 * now. With nothing left on the list the timer is cancelled, so an idle
 * gateway keeps no timer pending — unless `lapse`: then it is left to fire
 * once, find nothing and not arm again (no timer work per request when
 * requests come one at a time).
 */
export class Deadlines {
  private head: Deadline | null = null;
  private tail: Deadline | null = null;
  private timer: Subscription | null = null;
  private firing = false;

  /**
   * @param scheduler where the one timer runs
   * @param now the clock deadlines are read on (the scheduler's own, or the runtime's)
   * @param ms every entry's limit
   * @param lapse leave the timer pending when the list empties, to lapse on its own (see above)
   */
  constructor(private readonly scheduler: SchedulerLike, private readonly now: () => number, readonly ms: number, private readonly lapse = false) {}

  add(entry: Deadline): void {
    entry.deadline = this.now() + this.ms;
    const tail = this.tail;
    entry.prevDeadline = tail;
    entry.nextDeadline = null;
    if (tail === null) this.head = entry;
    else tail.nextDeadline = entry;
    this.tail = entry;
    if (this.timer === null && !this.firing) this.arm(this.head!.deadline);
  }

  /** Takes `entry` off the list (nothing when it is not on it). */
  remove(entry: Deadline): void {
    if (entry.prevDeadline === null && this.head !== entry) return;
    this.unlink(entry);
    if (this.head === null && this.timer !== null && !this.lapse) {
      this.timer.unsubscribe();
      this.timer = null;
    }
  }

  /** Cancels the timer and empties the list without expiring anything (the owner is closing). */
  clear(): void {
    while (this.head !== null) this.unlink(this.head);
    this.timer?.unsubscribe();
    this.timer = null;
  }

  /** Entries on the list (for tests). */
  get size(): number {
    let n = 0;
    for (let e = this.head; e !== null; e = e.nextDeadline) n++;
    return n;
  }

  /** The timer fired: expire every entry now due, then re-arm for the next one. */
  fire(): void {
    this.timer = null;
    this.firing = true;
    try {
      const now = this.now();
      let entry: Deadline | null;
      // An expiry may add entries (a retry's next attempt) or remove others (the request they served).
      while ((entry = this.head) !== null && entry.deadline <= now) {
        this.unlink(entry);
        entry.expire();
      }
    } finally {
      this.firing = false;
      if (this.head !== null && this.timer === null) this.arm(this.head.deadline);
    }
  }

  private arm(deadline: number): void {
    // Capped at setTimeout's limit (2^31 - 1 ms, ~24.8 days): a longer delay
    // would fire after 1 ms, over and over; `fire` arms again for what is left.
    const delay = Math.min(deadline - this.now(), MAX_DELAY);
    this.timer = this.scheduler.schedule(fireDeadlines, delay > 0 ? delay : 0, this);
  }

  private unlink(entry: Deadline): void {
    const prev = entry.prevDeadline;
    const next = entry.nextDeadline;
    if (prev === null) this.head = next;
    else prev.nextDeadline = next;
    if (next === null) this.tail = prev;
    else next.prevDeadline = prev;
    entry.prevDeadline = null;
    entry.nextDeadline = null;
  }
}

function fireDeadlines(this: SchedulerAction<Deadlines>, list?: Deadlines): void {
  list!.fire();
  this.unsubscribe();
}
