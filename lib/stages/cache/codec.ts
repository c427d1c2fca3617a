import { BufferedBody } from '../../body.ts';
import type { CacheRecord } from './entry.ts';

/**
 * A record as one Buffer, for stores that keep bytes (Redis): a version
 * byte, a 4-byte big-endian length, a JSON head, then the raw body. Head and
 * body travel together, so a reader never sees one without the other.
 */
const VERSION = 1;

interface EntryHead {
  k: 'e';
  s: number;
  t?: string;
  h: readonly string[];
  v: readonly string[];
  a: number;
  i: number;
  f: number;
  w: number;
  x: number;
  /** The upstream sent no body at all (as opposed to an empty one). */
  n: boolean;
}

interface VaryHead {
  k: 'v';
  v: readonly string[];
  /** `since`, `until` (absent in records from before they existed). */
  s?: number;
  u?: number;
}

export function encodeRecord(record: CacheRecord): Buffer {
  let head: EntryHead | VaryHead;
  let body: Buffer | null = null;
  if (record.kind === 'vary') {
    head = { k: 'v', v: record.names };
    if (record.since !== undefined) head.s = record.since;
    if (record.until !== undefined) head.u = record.until;
  } else {
    head = {
      k: 'e', s: record.status, h: record.headers, v: record.vary,
      a: record.storedAt, i: record.initialAge, f: record.freshUntil,
      w: record.staleWhileRevalidate, x: record.staleIfError, n: record.body === null,
    };
    if (record.statusText !== undefined) head.t = record.statusText;
    if (record.body !== null) body = Buffer.concat(record.body.chunks as Uint8Array[]);
  }
  const json = Buffer.from(JSON.stringify(head));
  const prefix = Buffer.allocUnsafe(5);
  prefix.writeUInt8(VERSION, 0);
  prefix.writeUInt32BE(json.length, 1);
  return body === null ? Buffer.concat([prefix, json]) : Buffer.concat([prefix, json, body]);
}

/** The record, or undefined for bytes this version does not understand (treated as a miss). */
export function decodeRecord(buf: Buffer): CacheRecord | undefined {
  if (buf.length < 5 || buf.readUInt8(0) !== VERSION) return undefined;
  const len = buf.readUInt32BE(1);
  if (5 + len > buf.length) return undefined;
  let head: EntryHead | VaryHead;
  try {
    head = JSON.parse(buf.toString('utf8', 5, 5 + len)) as EntryHead | VaryHead;
  } catch {
    return undefined;
  }
  if (head.k === 'v') return { kind: 'vary', names: head.v, since: head.s, until: head.u };
  if (head.k !== 'e') return undefined;
  return {
    kind: 'entry',
    status: head.s,
    statusText: head.t,
    headers: head.h,
    vary: head.v,
    storedAt: head.a,
    initialAge: head.i,
    freshUntil: head.f,
    staleWhileRevalidate: head.w,
    staleIfError: head.x,
    body: head.n ? null : new BufferedBody([buf.subarray(5 + len)]),
  };
}
