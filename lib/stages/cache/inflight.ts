/**
 * Request coalescing bookkeeping: the first miss for a key leads (goes
 * upstream); later misses for that key join and are called back once with
 * what the leader settled on (an entry, or null when there was nothing to
 * share and each joiner must go upstream itself).
 */
export class Inflight<T> {
  private readonly waiting = new Map<string, Array<(v: T | null) => void>>();

  has(key: string): boolean {
    return this.waiting.has(key);
  }

  /** Registers a leader; the returned function settles the key once (later calls do nothing). */
  lead(key: string): (v: T | null) => void {
    const list: Array<(v: T | null) => void> = [];
    this.waiting.set(key, list);
    let done = false;
    return (v) => {
      if (done) return;
      done = true;
      if (this.waiting.get(key) === list) this.waiting.delete(key);
      // a callback may leave (splice itself out) while we iterate: iterate a copy
      for (const cb of list.splice(0)) cb(v);
    };
  }

  /** Waits on a led key; returns a function that stops waiting. */
  join(key: string, cb: (v: T | null) => void): () => void {
    const list = this.waiting.get(key);
    if (list === undefined) throw new Error(`no leader for ${key}`);
    list.push(cb);
    return () => {
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    };
  }
}
