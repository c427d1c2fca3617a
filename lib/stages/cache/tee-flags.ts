import type { CacheEntry } from './entry.ts';

/** What a `StoreTee` (tee.ts) shares: its owner's interface, and its states, bits of its one `flags` field. */

/** Who hears how a tee's copy ended: whole (an entry to store) or given up; and when the client has the whole body. */
export interface TeeOwner {
  stored(entry: CacheEntry): void;
  dropped(): void;
  /** The client went away while the copy may still be stored: true to read on for others (waiters), false to stop. */
  readOn?(): boolean;
}

/** The client's sink said wait (false from `write`), until it resumes the body. */
export const WAITING = 1;
/** The upstream was told to wait (past `limit`: backpressure as before). */
export const PAUSED = 2;
/** The upstream body ended; the client's sink ends once the queue is written. */
export const ENDED = 4;
/** The client's sink has ended. */
export const DELIVERED = 8;
/** The client went away and the upstream is read on for the owner's waiters (`readsOn`). */
export const ORPHANED = 16;
/** The upstream body failed; the client's exchange errors once the queue is written. */
export const FAILED = 32;
