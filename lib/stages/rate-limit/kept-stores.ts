import { KeyBudget, type MemoryRateLimitStore } from './memory-store.ts';

interface Kept {
  readonly store: MemoryRateLimitStore;
  /** Route tables built with it and not yet retired. */
  users: number;
}

/**
 * A gateway's memory stores, one per bucket id, in one budget of keys, kept
 * across reloads by id. A reload that drops a route's limit keeps its store,
 * keys and all, so a later reload that brings the id back (or a `--workers`
 * reload reverted after a worker refused it) finds its clients' counters as
 * they were, as the one store for every id kept them before session 13. A
 * store no table uses is let go once its keys have all refilled (looked at
 * whenever a table lets a store go) or the budget has taken them, and with
 * the rest when no memory limit is left.
 */
export class KeptStores {
  readonly budget: KeyBudget;
  private readonly byId = new Map<string, Kept>();

  constructor(maxKeys: number) {
    this.budget = new KeyBudget(maxKeys);
  }

  /** The store of bucket id `id`, made by `make` (in this budget) if none is kept; pair with `leave`. */
  take(id: string, make: (budget: KeyBudget) => MemoryRateLimitStore): MemoryRateLimitStore {
    let kept = this.byId.get(id);
    if (kept === undefined) {
      kept = { store: make(this.budget), users: 0 };
      this.byId.set(id, kept);
    }
    kept.users++;
    return kept.store;
  }

  /** A table built with `take(id)` is retired: the stores no table uses lose their refilled keys, the empty ones go. */
  leave(id: string): void {
    const kept = this.byId.get(id);
    if (kept !== undefined) kept.users--;
    for (const [key, k] of this.byId) {
      if (k.users > 0) continue;
      k.store.forgetRefilled();
      if (k.store.size > 0) continue;
      k.store.close();
      this.byId.delete(key);
    }
  }

  /** Stores kept with no table using them (for tests and the docs' claims). */
  get idle(): number {
    let n = 0;
    for (const k of this.byId.values()) if (k.users === 0) n++;
    return n;
  }

  close(): void {
    for (const k of this.byId.values()) k.store.close();
    this.byId.clear();
  }
}
