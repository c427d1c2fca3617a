import { BufferedBody } from '../../body.ts';
import type { HeadBytes } from '../../server/head-bytes.ts';
import type { CacheRecord } from './entry.ts';
import type { Slabs } from './slabs.ts';
import type { TextMemo } from './text-memo.ts';

export { TextMemo } from './text-memo.ts';

/**
 * A record packed into one Buffer for the memory store: a fixed binary head,
 * the strings (headers, vary names, status text), then the body. One Buffer
 * per entry, its bytes off the V8 heap, in place of an entry object, a
 * header array, one string per header and a body wrapper: a stored entry
 * holds ~330 bytes of V8 heap instead of ~640 (bench/memory/cache-gc.ts).
 * GC time under a full-miss load hardly changes with it: that is spent on
 * each request's own garbage (see docs/performance.md).
 *
 * Layout (little-endian):
 *   u8  kind          0 entry, 1 vary record
 *   vary record:  f64 since (NaN: none), f64 until (NaN: none), u32 text bytes, text
 *   entry:        u16 status, u8 flags (1 body, 2 statusText),
 *                 f64 storedAt, f64 initialAge, f64 freshUntil, f64 swr, f64 sie,
 *                 u32 header strings, u32 vary names, u32 text bytes, text, [body]
 * where text is the headers, the vary names and the status text joined by
 * '\n' in UTF-8: one encode and one decode per record, and '\n' cannot occur
 * in any of them (the edge and undici refuse CR, LF and NUL in a head).
 */
const ENTRY = 0;
const VARY = 1;
const HAS_BODY = 1;
const HAS_STATUS_TEXT = 2;
const SEP = '\n';
/** kind, two f64, u32. */
const VARY_HEAD = 1 + 2 * 8 + 4;
/** kind, status, flags, five f64, three u32. */
const ENTRY_HEAD = 1 + 2 + 1 + 5 * 8 + 4 * 3;

const NO_CHUNKS: readonly Uint8Array[] = [];

/** The record as one Buffer of exactly the bytes it needs. */
export function pack(record: CacheRecord): Buffer {
  let out: Buffer | undefined;
  packInto(record, (n) => (out = Buffer.allocUnsafe(n)));
  return out!;
}

/**
 * Where `packInto` writes: `reserve(n)` returns the Buffer that takes the
 * record's `n` bytes from `offset` (read after the call). The memory store
 * hands out its log's slab at the record's place, so a record is packed
 * where it stays: no scratch Buffer, no second copy.
 */
export interface PackTarget {
  reserve(n: number): Buffer;
  readonly offset: number;
}

/**
 * Packs `record` into the Buffer `target` gives (a function: at least `n`
 * bytes, written from 0; a `PackTarget`: from its `offset`), and returns `n`.
 */
export function packInto(record: CacheRecord, target: ((n: number) => Buffer) | PackTarget, memo?: TextMemo): number {
  if (record.kind === 'vary') {
    const text = record.names.join(SEP);
    const n = Buffer.byteLength(text);
    const [buf, o] = placed(target, VARY_HEAD + n);
    buf[o] = VARY;
    buf.writeDoubleLE(record.since ?? NaN, o + 1);
    buf.writeDoubleLE(record.until ?? NaN, o + 9);
    buf.writeUInt32LE(n, o + 17);
    buf.write(text, o + VARY_HEAD, 'utf8');
    return VARY_HEAD + n;
  }
  const body = record.body;
  const statusText = record.statusText;
  // The same strings as the last entry packed (an upstream repeats its headers): their bytes again, without a join and an encode.
  const same = memo !== undefined && memo.matches(record.headers, record.vary, statusText);
  const text = same ? '' : joined(record.headers, record.vary, statusText);
  const n = same ? memo.length : Buffer.byteLength(text);
  const size = ENTRY_HEAD + n + (body === null ? 0 : body.length);
  let buf: Buffer;
  let o = 0;
  if (typeof target === 'function') buf = target(size);
  else {
    buf = target.reserve(size);
    o = target.offset;
  }
  buf[o] = ENTRY;
  buf.writeUInt16LE(record.status, o + 1);
  buf[o + 3] = (body === null ? 0 : HAS_BODY) | (statusText === undefined ? 0 : HAS_STATUS_TEXT);
  buf.writeDoubleLE(record.storedAt, o + 4);
  buf.writeDoubleLE(record.initialAge, o + 12);
  buf.writeDoubleLE(record.freshUntil, o + 20);
  buf.writeDoubleLE(record.staleWhileRevalidate, o + 28);
  buf.writeDoubleLE(record.staleIfError, o + 36);
  buf.writeUInt32LE(record.headers.length, o + 44);
  buf.writeUInt32LE(record.vary.length, o + 48);
  buf.writeUInt32LE(n, o + 52);
  if (same) memo.copyTo(buf, o + ENTRY_HEAD);
  else {
    buf.write(text, o + ENTRY_HEAD, 'utf8');
    memo?.keep(record.headers, record.vary, statusText, buf, o + ENTRY_HEAD, n);
  }
  let offset = o + ENTRY_HEAD + n;
  const chunks = body === null ? NO_CHUNKS : body.chunks;
  for (let i = 0; i < chunks.length; i++) {
    buf.set(chunks[i]!, offset);
    offset += chunks[i]!.byteLength;
  }
  return size;
}

function placed(target: ((n: number) => Buffer) | PackTarget, n: number): [Buffer, number] {
  if (typeof target === 'function') return [target(n), 0];
  const buf = target.reserve(n);
  return [buf, target.offset];
}

/** The headers, the vary names and the status text joined by '\n'. */
function joined(headers: readonly string[], vary: readonly string[], statusText: string | undefined): string {
  let text = headers.join(SEP);
  if (vary.length > 0) text = headers.length > 0 ? `${text}${SEP}${vary.join(SEP)}` : vary.join(SEP);
  if (statusText !== undefined) text = headers.length + vary.length > 0 ? `${text}${SEP}${statusText}` : statusText;
  return text;
}

/**
 * The record `pack` made; the body is a view into `buf`, not a copy. With
 * `head`, an entry comes with the `HeadBytes` it makes of its headers (the
 * memory store: replay.ts's `hitHead`), whose lines the writer makes once
 * for the hits of a record the store keeps decoded.
 */
export function unpack(buf: Buffer, head?: (headers: readonly string[]) => HeadBytes): CacheRecord {
  if (buf[0] === VARY) {
    const since = buf.readDoubleLE(1);
    const until = buf.readDoubleLE(9);
    const n = buf.readUInt32LE(17);
    return {
      kind: 'vary', names: n === 0 ? [] : buf.toString('utf8', VARY_HEAD, VARY_HEAD + n).split(SEP),
      since: Number.isNaN(since) ? undefined : since, until: Number.isNaN(until) ? undefined : until,
    };
  }
  const flags = buf[3]!;
  const headerCount = buf.readUInt32LE(44);
  const varyCount = buf.readUInt32LE(48);
  const n = buf.readUInt32LE(52);
  const hasText = (flags & HAS_STATUS_TEXT) !== 0;
  const strings = headerCount + varyCount > 0 || hasText ? decodeLines(buf, ENTRY_HEAD, ENTRY_HEAD + n, headerCount) : [];
  let headers = strings;
  let vary: string[] = [];
  if (varyCount > 0 || hasText) {
    headers = strings.slice(0, headerCount);
    vary = strings.slice(headerCount, headerCount + varyCount);
  }
  const offset = ENTRY_HEAD + n;
  return {
    kind: 'entry',
    status: buf.readUInt16LE(1),
    statusText: hasText ? strings[headerCount + varyCount] : undefined,
    headers,
    body: (flags & HAS_BODY) !== 0 ? new BufferedBody([buf.subarray(offset)]) : null,
    vary,
    storedAt: buf.readDoubleLE(4),
    initialAge: buf.readDoubleLE(12),
    freshUntil: buf.readDoubleLE(20),
    staleWhileRevalidate: buf.readDoubleLE(28),
    staleIfError: buf.readDoubleLE(36),
    head: head?.(headers),
  };
}

/** A `HeadBytes`, its list, its Buffer object and `x-cache: HIT` (estimated). */
const HEAD_OBJECTS = 240;

/**
 * What a decoded entry's header lines made once add (head-bytes.ts), at
 * most: the objects, the text's bytes, and per string ': ' or CRLF and its
 * slot in the list. The memory store counts it with the record it keeps.
 */
export function headBytesOf(buf: Buffer): number {
  return buf[0] === ENTRY ? HEAD_OBJECTS + buf.readUInt32LE(52) + 10 * buf.readUInt32LE(44) : 0;
}

type Utf8Sliceable = Buffer & { utf8Slice(start: number, end: number): string };

/**
 * The '\n'-separated strings of `buf[start, end)`, each decoded on its own
 * (a UTF-8 sequence never holds the byte 0x0a), and the header names among
 * the first `headers` internalised. `split` of one decoded text gave sliced
 * strings (V8 makes a substring of 13 characters or more a view into its
 * parent), and every comparison of one in the writer's maps and sets
 * (name → line start, the names it skips) took V8's runtime path: ~1,400
 * instructions per hit of the bench's entry (docs/cache-hit.md). Done once
 * per decoded record; its hits reuse the strings.
 */
function decodeLines(buf: Buffer, start: number, end: number, headers: number): string[] {
  const out: string[] = [];
  const text = buf.subarray(start, end) as Utf8Sliceable;
  const n = end - start;
  for (let from = 0; ; ) {
    let to = text.indexOf(NEWLINE, from);
    if (to < 0) to = n;
    const s = text.utf8Slice(from, to);
    out.push(out.length < headers && out.length % 2 === 0 ? internalised(s) : s);
    if (to === n) return out;
    from = to + 1;
  }
}

const NEWLINE = 0x0a;

/** `s` as V8's one copy of it (a property name is internalised): equal names then compare by reference. */
function internalised(s: string): string {
  return Object.keys({ [s]: 0 })[0]!;
}

/** The `storedAt` of the record packed at `at` in `slabs` (the kind byte, 0 for an entry, then storedAt at 4); NaN for a vary record. */
export function storedAtIn(slabs: Slabs, at: number): number {
  const head = Buffer.allocUnsafe(12);
  slabs.read(at, 12, head, 0);
  return head[0] === 0 ? head.readDoubleLE(4) : NaN;
}
