/**
 * The leading lines of the last head `writeHead` wrote line by line
 * (response-head.ts), kept as the bytes it put in its scratch buffer, so a
 * response that starts with the same entries gets them with one copy.
 * A forwarded response repeats most of its upstream's head from one
 * response to the next, and the upstream exchange hands over the same
 * string for the same value bytes (lib/upstream/response-head.ts,
 * `valueText`), so "the same" is one `===` per string: a name, and a value
 * unless the writer skips that name (`date`, `content-length`…, whose value
 * it never writes: those may differ). Only the entries before the first one
 * that differs are taken; the rest are written as before, so the bytes sent
 * are the same.
 */

/** What `writeHead` does with an entry. */
export const LINE = 0;
/** Not written (uWS writes it, or it must not be copied). */
export const SKIPPED = 1;
/** Not written; its value is the response's length. */
export const LENGTH = 2;
/** Written, and it is the response's own `x-request-id`. */
export const OWN_ID = 3;

/** Entries (name, value, …) kept at most: 16 headers. */
const MAX_ENTRIES = 32;
/** Kept bytes at most: longer lines are written each time (and their strings not pinned here). */
const MAX_BYTES = 1024;

export class LastHead {
  /** The entries the bytes stand for. */
  private readonly list: string[] = new Array<string>(MAX_ENTRIES).fill('');
  /** How many entries of `list` are kept (even). */
  private kept = 0;
  /** Each kept header's `LINE`, `SKIPPED`, `LENGTH` or `OWN_ID`. */
  private readonly kinds = new Uint8Array(MAX_ENTRIES >> 1);
  /** Where each kept header's bytes end (the scratch buffer's offset after it). */
  private readonly ends = new Int32Array(MAX_ENTRIES >> 1);
  /** The first written header's index in `list`, and its name as `writeHead` hands it to uWS. */
  private firstAt = MAX_ENTRIES;
  first: Buffer | string | null = null;
  private bytes: Uint8Array = new Uint8Array(0);
  /** Heads in a row that were not covered in full: renewed on the first two, then every 32nd. */
  private streak = 0;
  // What `match` found, for `writeHead`.
  at = 0;
  contentLength: string | undefined = undefined;
  hasRequestId = false;

  /**
   * How many entries at the start of `headers` are the kept ones (an even
   * number; 0 for none). Their bytes are copied to the start of `scratch`,
   * `at` is where they end, `contentLength` and `hasRequestId` what they
   * say; `first` is the first line's name when `hasFirst` says it is among them.
   */
  match(headers: readonly string[], scratch: Uint8Array): number {
    const list = this.list;
    const n = Math.min(this.kept, headers.length & ~1);
    let contentLength: string | undefined;
    let hasRequestId = false;
    let k = 0;
    for (; k < n; k += 2) {
      if (headers[k] !== list[k]) break;
      const kind = this.kinds[k >> 1]!;
      if (kind === SKIPPED) continue;
      if (kind === LENGTH) {
        contentLength = headers[k + 1];
        continue;
      }
      if (headers[k + 1] !== list[k + 1]) break;
      if (kind === OWN_ID) hasRequestId = true;
    }
    this.contentLength = contentLength;
    this.hasRequestId = hasRequestId;
    if (k === 0) {
      this.at = 0;
      return 0;
    }
    const at = this.ends[(k >> 1) - 1]!;
    this.at = at;
    if (at > 0) scratch.set(this.bytes, 0);
    return k;
  }

  /** Whether `first` belongs to the first `k` entries (`match`'s count). */
  hasFirst(k: number): boolean {
    return this.firstAt < k;
  }

  /**
   * After `writeHead` wrote `headers` with `matched` entries taken from
   * here: keeps its lines when it did not cover them all (on the first two
   * such heads in a row, then every 32nd, so a head that keeps changing is
   * not copied every time). `ends[j]`: where header j's bytes end in
   * `scratch` (for j at `matched` / 2 and after: the matched ones are kept
   * as they are); `kindOf` the writer's kind of a name.
   */
  renew(headers: readonly string[], matched: number, scratch: Uint8Array, ends: Int32Array, first: Buffer | string | null, kindOf: (name: string) => number): void {
    if (matched === headers.length) {
      this.streak = 0;
      return;
    }
    const streak = ++this.streak;
    if (streak > 2 && (streak & 31) !== 0) return;
    let n = matched;
    let firstAt = this.firstAt < matched ? this.firstAt : MAX_ENTRIES;
    const limit = Math.min(headers.length & ~1, MAX_ENTRIES);
    for (; n < limit; n += 2) {
      const end = ends[n >> 1]!;
      if (end > MAX_BYTES) break;
      const name = headers[n]!;
      const kind = kindOf(name);
      if (kind !== SKIPPED && kind !== LENGTH && firstAt === MAX_ENTRIES) firstAt = n;
      this.list[n] = name;
      this.list[n + 1] = headers[n + 1]!;
      this.kinds[n >> 1] = kind;
      this.ends[n >> 1] = end;
    }
    this.kept = n;
    this.firstAt = firstAt;
    this.first = firstAt < n ? first : null;
    // A copy (a Buffer's slice would be a view of the scratch buffer).
    const bytes = new Uint8Array(n > 0 ? this.ends[(n >> 1) - 1]! : 0);
    bytes.set(scratch.subarray(0, bytes.length));
    this.bytes = bytes;
    // Entries past the kept ones are not held on to.
    for (let i = n; i < MAX_ENTRIES; i++) this.list[i] = '';
  }
}
