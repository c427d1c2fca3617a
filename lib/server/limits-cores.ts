/**
 * The synchronous cores of the edge limits (limits.ts): the body idle sweep
 * and the per-client count. No clock and no timer here: the edge drives
 * `IdleSweep.sweep` from one interval, tests call it directly.
 */

/** Sweeps per `bodyIdleTimeout`: a stalled body is answered between 1 and 1.25 timeouts after its last byte. */
export const ROUNDS = 4;

/** A request body the idle sweep watches (`RequestBody`). */
export interface IdleWatched {
  /** A chunk passed since the last sweep. */
  stirred: boolean;
  /** The pipeline is reading it: piped, not held back by its sink, not ended. */
  reading: boolean;
  /** Sweeps in a row that found it reading and not stirred. */
  idleRounds: number;
  /** Told when the body has gone idle (the request it belongs to). */
  owner: { idle(): void } | null;
}

/**
 * The synchronous core of `bodyIdleTimeout`: bodies are marked when a chunk
 * passes, and a sweep every `timeout / rounds` counts the sweeps each one
 * spent reading without a chunk. No timer per request; the caller drives
 * `sweep` (a real interval in the edge, directly in tests).
 */
export class IdleSweep {
  private readonly watched = new Set<IdleWatched>();

  constructor(private readonly rounds: number = ROUNDS) {}

  get size(): number {
    return this.watched.size;
  }

  add(body: IdleWatched): void {
    body.stirred = false;
    body.idleRounds = 0;
    this.watched.add(body);
  }

  delete(body: IdleWatched): void {
    this.watched.delete(body);
  }

  /** One round: tells the owner of each body idle for `rounds` sweeps (once), and stops watching it. */
  sweep(): void {
    for (const body of this.watched) {
      if (body.stirred || !body.reading) {
        body.stirred = false;
        body.idleRounds = 0;
      } else if (++body.idleRounds >= this.rounds) {
        this.watched.delete(body);
        body.owner?.idle();
      }
    }
  }
}

/** Requests in flight by client address; a client's entry goes when its last request ends. */
export class ClientSlots {
  private readonly counts = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Takes a slot for `client`, or returns false when it has `max` already. */
  acquire(client: string): boolean {
    const n = this.counts.get(client) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(client, n + 1);
    return true;
  }

  release(client: string): void {
    const n = this.counts.get(client);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(client);
    else this.counts.set(client, n - 1);
  }

  inFlight(client: string): number {
    return this.counts.get(client) ?? 0;
  }
}
