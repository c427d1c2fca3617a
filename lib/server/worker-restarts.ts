/** A worker up this long has not crashed "soon": its slot's restart delay starts again from none. */
const STABLE_MS = 30_000; // 30s
/** The first delay before replacing a worker that crashed soon after it listened; it doubles up to the max. */
const RESTART_MIN_MS = 1000; // 1s
const RESTART_MAX_MS = 30_000; // 30s

/**
 * How long a crashed worker's replacement waits, per slot of the pool. The
 * first crash of a slot is replaced at once, as nginx's master respawns a
 * worker; a replacement that crashes again within 30 s of listening (or
 * before it listened) waits 1 s, then 2, 4… up to 30 s, so a bug that
 * crashes on every request does not loop worker starts; a worker that stayed
 * up 30 s resets its slot. nginx respawns at once, always; PM2's
 * exp_backoff_restart_delay grows ×1.5 up to 15 s and resets after 30 s up.
 */
export class RestartBackoff {
  /** Each slot's delay for its next crash soon after listening, ms; absent: the slot has not crashed soon yet. */
  private readonly delays = new Map<number, number>();

  constructor(private readonly now: () => number) {}

  /** The delay for the replacement of slot `slot`'s worker, which crashed now and listened at `since` (undefined: never). */
  next(slot: number, since: number | undefined): number {
    if (since !== undefined && this.now() - since >= STABLE_MS) {
      this.delays.delete(slot);
      return 0;
    }
    const delay = this.delays.get(slot) ?? 0;
    this.delays.set(slot, Math.min(Math.max(delay * 2, RESTART_MIN_MS), RESTART_MAX_MS));
    return delay;
  }
}
