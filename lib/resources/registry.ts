/**
 * Objects a gateway shares between routes, by key: services and their
 * pools, breakers, limiter and cache stores, Redis clients. A route table is
 * built against a registry; a later rebuild of the table (hot reload) takes
 * the same registry and gets back what it already made for the same key,
 * so state carries over. Keys name what the object was made from
 * (`service:users:<its config>`), so a changed config makes a new one.
 */
export class Resources {
  private readonly items = new Map<string, Entry>();
  private readonly starters: Array<() => Promise<void>> = [];
  private closers = 0;

  /** The object made for `key`, made now by `make` if there is none. `close` runs when the registry closes. */
  get<T>(key: string, make: () => T, close?: (value: T) => Promise<void> | void): T {
    const found = this.items.get(key);
    if (found !== undefined) return found.value as T;
    const value = make();
    this.items.set(key, { value, close: close === undefined ? null : () => close(value) });
    return value;
  }

  /** Whether something was made for `key`. */
  has(key: string): boolean {
    return this.items.has(key);
  }

  /** Work to await before the gateway listens (connecting to Redis…). */
  beforeListen(fn: () => Promise<void>): void {
    this.starters.push(fn);
  }

  /** Registers cleanup with no object behind it. */
  onClose(fn: () => Promise<void> | void): void {
    this.items.set(`close:${this.closers++}`, { value: null, close: fn });
  }

  async ready(): Promise<void> {
    const starters = this.starters.splice(0);
    await Promise.all(starters.map((fn) => fn()));
  }

  /** Closes everything, newest first (a store before the client it uses). */
  async close(): Promise<void> {
    const entries = [...this.items.values()].reverse();
    this.items.clear();
    for (const e of entries) {
      try {
        await e.close?.();
      } catch {
        // Closing is best effort: one failing close must not keep the others open.
      }
    }
  }
}

interface Entry {
  value: unknown;
  close: (() => Promise<void> | void) | null;
}
