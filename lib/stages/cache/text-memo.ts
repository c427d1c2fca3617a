/** Of a run of mismatches, every 8th is kept (so a store whose entries' headers all differ pays the copy once in 8). */
const KEEP_EVERY = 8;

/**
 * The strings of the last entry `packInto` encoded (headers, vary names,
 * status text) and their UTF-8 bytes. An upstream sends the same header
 * values from one response to the next (the forward path hands them over as
 * the same strings, lib/upstream/response-head.ts; the names are undici's
 * constants), so most stored misses compare ~12 strings, mostly by
 * reference, and copy ~200 bytes instead of joining them into a new string,
 * measuring it and encoding it (docs/cache-memory.md, ninth round). Equal
 * strings give equal bytes: the record is the same either way.
 */
export class TextMemo {
  private strings: string[] = [];
  private headerCount = -1;
  private varyCount = -1;
  private statusText: string | undefined = undefined;
  private bytes = Buffer.allocUnsafeSlow(0);
  /** `bytes[0, length)`, made when kept: `set` copies a whole view, where `copy` of a part makes one per call (Node 20's `_copyActual`). */
  private text = new Uint8Array(0);
  /** Mismatches since the last match. */
  private misses = 0;
  /** Bytes of the text kept. */
  length = 0;

  matches(headers: readonly string[], vary: readonly string[], statusText: string | undefined): boolean {
    if (headers.length !== this.headerCount || vary.length !== this.varyCount || statusText !== this.statusText) return this.missed();
    const strings = this.strings;
    for (let i = 0; i < headers.length; i++) if (headers[i] !== strings[i]) return this.missed();
    for (let i = 0; i < vary.length; i++) if (vary[i] !== strings[headers.length + i]) return this.missed();
    this.misses = 0;
    return true;
  }

  private missed(): false {
    this.misses++;
    return false;
  }

  copyTo(buf: Buffer, at: number): void {
    buf.set(this.text, at);
  }

  /**
   * Keeps the strings just encoded as `buf[at, at + n)`: the first list, the
   * first after a match (a `date` that moved on a second), then every
   * `KEEP_EVERY`th of a run of mismatches.
   */
  keep(headers: readonly string[], vary: readonly string[], statusText: string | undefined, buf: Buffer, at: number, n: number): void {
    if (this.headerCount >= 0 && this.misses !== 1 && this.misses % KEEP_EVERY !== 0) return;
    const strings = this.strings;
    strings.length = 0;
    for (const h of headers) strings.push(h);
    for (const v of vary) strings.push(v);
    if (this.bytes.length < n) this.bytes = Buffer.allocUnsafeSlow(Math.max(n, 2 * this.bytes.length));
    buf.copy(this.bytes, 0, at, at + n);
    this.text = this.bytes.subarray(0, n);
    this.length = n;
    this.headerCount = headers.length;
    this.varyCount = vary.length;
    this.statusText = statusText;
  }
}
