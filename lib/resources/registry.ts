/**
 * Objects a gateway shares between routes, by key: services and their
 * pools, breakers, limiter and cache stores, Redis clients. A route table is
 * built against a registry; a later rebuild of the table (hot reload) takes
 * the same registry and gets back what it already made for the same key,
 * so state carries over. Keys name what the object was made from
 * (`service:users:<its config>`), so a changed config makes a new one.
 *
 * A rebuild is bracketed: `track()` before it, then `retire()` once its
 * table serves (what the new table no longer uses leaves the registry and
 * is handed back to close once the old table's requests are done), or
 * `abandon()` if it failed (what it made is closed, the rest stays).
 */
export class Resources {
  private readonly items = new Map<string, Entry>();
  private starters: Array<() => Promise<void>> = [];
  private closers = 0;
  /** Keys the build under way has asked for, and those it made; null when no build is tracked. */
  private tracking: { used: Set<string>; made: Set<string>; starters: number } | null = null;

  /** Keys asked for while a `make` runs (innermost last): what the object being made depends on. */
  private readonly making: Array<Set<string>> = [];

  /**
   * The object made for `key`, made now by `make` if there is none. `close`
   * runs when the registry closes. What `make` asks for in turn (a store's
   * Redis client) is its dependency: a rebuild that finds `key` uses those
   * too, so they are not retired (closed) under it.
   */
  get<T>(key: string, make: () => T, close?: (value: T) => Promise<void> | void): T {
    this.making.at(-1)?.add(key);
    const found = this.items.get(key);
    if (found !== undefined) {
      this.use(key);
      return found.value as T;
    }
    this.tracking?.used.add(key);
    const deps = new Set<string>();
    this.making.push(deps);
    let value: T;
    try {
      value = make();
    } finally {
      this.making.pop();
    }
    this.items.set(key, { value, close: close === undefined ? null : () => close(value), deps });
    this.tracking?.made.add(key);
    return value;
  }

  /** Marks `key` and what it depends on as used by the tracked rebuild. */
  private use(key: string): void {
    const used = this.tracking?.used;
    if (used === undefined || used.has(key)) return;
    used.add(key);
    for (const dep of this.items.get(key)?.deps ?? []) this.use(dep);
  }

  /** Whether something was made for `key`. */
  has(key: string): boolean {
    return this.items.has(key);
  }

  /** What is kept for `key` now, without marking it used by a tracked rebuild. */
  peek(key: string): unknown {
    return this.items.get(key)?.value;
  }

  /** Work to await before the gateway listens (connecting to Redis…). */
  beforeListen(fn: () => Promise<void>): void {
    this.starters.push(fn);
  }

  /** Registers cleanup with no object behind it (it belongs to the build that registered it). */
  onClose(fn: () => Promise<void> | void): void {
    const key = `close:${this.closers++}`;
    this.items.set(key, { value: null, close: fn, deps: null });
    this.tracking?.used.add(key);
    this.tracking?.made.add(key);
  }

  async ready(): Promise<void> {
    const starters = this.starters.splice(0);
    await Promise.all(starters.map((fn) => fn()));
  }

  /** Starts recording what a rebuild uses. */
  track(): void {
    this.tracking = { used: new Set(), made: new Set(), starters: this.starters.length };
  }

  /**
   * Ends a rebuild that now serves: what it did not use leaves the registry
   * (a later rebuild makes it anew) and the returned function closes it,
   * newest first. Call that once requests on the old table are done.
   */
  retire(): () => Promise<void> {
    const used = this.tracking?.used;
    this.tracking = null;
    if (used === undefined) return async () => {};
    const retired: Entry[] = [];
    for (const [key, entry] of this.items) {
      if (used.has(key)) continue;
      retired.push(entry);
      this.items.delete(key);
    }
    return () => closeAll(retired.reverse());
  }

  /** Ends a rebuild that failed: closes what it made; what it found stays as it was. */
  async abandon(): Promise<void> {
    const tracking = this.tracking;
    this.tracking = null;
    if (tracking === null) return;
    this.starters.splice(tracking.starters);
    const made: Entry[] = [];
    for (const key of tracking.made) {
      const entry = this.items.get(key);
      if (entry !== undefined) made.push(entry);
      this.items.delete(key);
    }
    await closeAll(made.reverse());
  }

  /** Closes everything, newest first (a store before the client it uses). */
  async close(): Promise<void> {
    const entries = [...this.items.values()].reverse();
    this.items.clear();
    await closeAll(entries);
  }
}

async function closeAll(entries: readonly Entry[]): Promise<void> {
  for (const e of entries) {
    try {
      await e.close?.();
    } catch {
      // Closing is best effort: one failing close must not keep the others open.
    }
  }
}

interface Entry {
  value: unknown;
  close: (() => Promise<void> | void) | null;
  /** Keys `make` asked for (null for an `onClose` hook). */
  deps: ReadonlySet<string> | null;
}
