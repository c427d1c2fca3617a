/** The states of a `StoreTee` (tee.ts), bits of its one `flags` field. */

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
