/**
 * A header list's lines as the writer sends them (`writeHead`,
 * response-head.ts), made once and reused: a cache entry's stored headers,
 * the same bytes for every hit of it (docs/cache-hit.md, eighth round,
 * part 2). The writer makes them on the second response that starts with
 * these headers (an entry decoded for one hit only never pays for them),
 * and uses them only for a response whose list still starts with exactly
 * these entries, in this order: a stage that replaced, removed or inserted
 * one of them before the writer gets the lines written one by one, as
 * before. The headers after them (`x-cache`, `age`, a rate limit's…) are
 * written after the block as before, so the bytes sent are the same.
 */
export class HeadBytes {
  /** The entries the bytes stand for; never changed in place (a cache entry's list is read-only). */
  readonly headers: readonly string[];
  /** Responses written with these headers before the bytes were made; -1 when these entries cannot go as one block. */
  seen = 0;
  /** The first line's name, as `writeHead` hands it to uWS; null when every entry is one it skips. */
  first: Buffer | string | null = null;
  /** The first line's value, then `\r\nname: value` for the others; null until made. */
  bytes: Buffer | null = null;
  /** The last `content-length` among the entries. */
  contentLength: string | undefined = undefined;
  /** Whether one of the entries is `x-request-id`. */
  hasRequestId = false;

  constructor(headers: readonly string[]) {
    this.headers = headers;
  }

  /** Keeps `scratch`'s first `at` bytes (-1: these entries cannot go as one block) and what `writeHead` read from them. */
  keep(scratch: Buffer, at: number, first: Buffer | string | null, contentLength: string | undefined, hasRequestId: boolean): void {
    if (at < 0) {
      this.seen = -1;
      return;
    }
    this.bytes = Buffer.from(scratch.subarray(0, at));
    this.first = first;
    this.contentLength = contentLength;
    this.hasRequestId = hasRequestId;
  }

  /** Whether `list` starts with this block's entries (the same strings in the same places). */
  prefixOf(list: readonly string[]): boolean {
    const own = this.headers;
    const n = own.length;
    if (list === own) return true;
    if (list.length < n) return false;
    for (let i = 0; i < n; i++) if (list[i] !== own[i]) return false;
    return true;
  }
}
