/**
 * An exchange whose pipeline is running: a node of `InFlight`'s list. Like
 * the RxJS `Subscription` the edge kept before, it can be unsubscribed
 * (the edge is closing) and given finalisers (run when it leaves the list,
 * at once when it already has).
 */
export interface InFlightEntry {
  prevInFlight: InFlightEntry | null;
  nextInFlight: InFlightEntry | null;
  unsubscribe(): void;
  add(finalizer: () => void): void;
}

/**
 * The exchanges whose pipelines are running, for draining and
 * `Edge.close()`: an intrusive doubly linked list (the links are fields of
 * each exchange), so joining and leaving it per request costs no allocation
 * and no hashing, where a `Set` of subscriptions hashed a new object per
 * request. Iterable, with `size` and `clear()`, as that `Set` was.
 */
export class InFlight implements Iterable<InFlightEntry> {
  private head: InFlightEntry | null = null;
  size = 0;
  /**
   * The edge stopped listening (a drain): answers from here say
   * `Connection: close` and end their connection, as nginx does while it
   * exits and Envoy's drain does, so a keep-alive client opens its next
   * request elsewhere instead of losing it when the drain ends.
   */
  draining = false;

  add(entry: InFlightEntry): void {
    if (this.has(entry)) return;
    const head = this.head;
    entry.prevInFlight = null;
    entry.nextInFlight = head;
    if (head !== null) head.prevInFlight = entry;
    this.head = entry;
    this.size++;
  }

  /** Takes `entry` off the list; false when it was not on it. */
  delete(entry: InFlightEntry): boolean {
    if (!this.has(entry)) return false;
    const { prevInFlight: prev, nextInFlight: next } = entry;
    if (prev === null) this.head = next;
    else prev.nextInFlight = next;
    if (next !== null) next.prevInFlight = prev;
    entry.prevInFlight = null;
    entry.nextInFlight = null;
    this.size--;
    return true;
  }

  has(entry: InFlightEntry): boolean {
    return entry.prevInFlight !== null || this.head === entry;
  }

  clear(): void {
    while (this.head !== null) this.delete(this.head);
  }

  /** A snapshot: entries may leave the list while it is walked. */
  [Symbol.iterator](): Iterator<InFlightEntry> {
    const all: InFlightEntry[] = [];
    for (let e = this.head; e !== null; e = e.nextInFlight) all.push(e);
    return all[Symbol.iterator]();
  }
}
