import { Readable } from 'node:stream';
import { createHash, type Hash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';

/**
 * Raw HTTP/1.1 helpers for tests that must see exact bytes on the wire:
 * repeated header lines, reason phrases, chunked framing, a body cut short.
 */

/** A response as parsed from raw bytes. */
export interface RawResponse {
  /** Everything received, as latin1. */
  raw: string;
  statusLine: string;
  status: number;
  reason: string;
  /** Header lines in order, as `[name, value]`, names lower-cased. */
  headerLines: Array<[string, string]>;
  /** The body bytes received (de-chunked when chunked and complete). */
  body: Buffer;
  /** The body framing was complete (content-length reached or the zero chunk seen). */
  complete: boolean;
  /** The raw body as received (chunk framing included when chunked). */
  rawBody: Buffer;
  chunked: boolean;
}

/** All values of a header, in order. */
export function headerValues(res: RawResponse, name: string): string[] {
  return res.headerLines.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);
}

/** The first value of a header, or undefined. */
export function header(res: RawResponse, name: string): string | undefined {
  return headerValues(res, name)[0];
}

function parseHead(buf: Buffer): { statusLine: string; headerLines: Array<[string, string]>; headEnd: number } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines.shift()!;
  const headerLines = lines.map((l): [string, string] => {
    const i = l.indexOf(':');
    return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
  });
  return { statusLine, headerLines, headEnd: end + 4 };
}

/** Parses chunked framing; returns the payload and whether the zero chunk was seen. */
export function dechunk(raw: Buffer): { body: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', pos);
    if (lineEnd === -1) return { body: Buffer.concat(parts), complete: false };
    const size = parseInt(raw.subarray(pos, lineEnd).toString('latin1').split(';')[0]!, 16);
    if (Number.isNaN(size)) return { body: Buffer.concat(parts), complete: false };
    const start = lineEnd + 2;
    if (size === 0) {
      // Zero chunk, optional trailers, then CRLF.
      const done = raw.indexOf('\r\n', start) !== -1;
      return { body: Buffer.concat(parts), complete: done };
    }
    if (raw.length < start + size + 2) {
      parts.push(raw.subarray(start, Math.min(raw.length, start + size)));
      return { body: Buffer.concat(parts), complete: false };
    }
    parts.push(raw.subarray(start, start + size));
    pos = start + size + 2;
  }
}

/**
 * Tries to parse one complete response from `buf`. `noBody` for HEAD
 * requests (and 1xx/204/304, detected from the status).
 */
export function parseResponse(buf: Buffer, noBody = false, closed = false): RawResponse | null {
  const head = parseHead(buf);
  if (head === null) return null;
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(head.statusLine);
  if (m === null) throw new Error(`bad status line ${JSON.stringify(head.statusLine)}`);
  const status = Number(m[1]);
  const get = (n: string): string | undefined => head.headerLines.find(([k]) => k === n)?.[1];
  const rawBody = buf.subarray(head.headEnd);
  const base = { raw: buf.toString('latin1'), statusLine: head.statusLine, status, reason: m[2] ?? '', headerLines: head.headerLines, rawBody };
  if (noBody || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { ...base, body: Buffer.alloc(0), complete: true, chunked: false };
  }
  const te = get('transfer-encoding');
  if (te !== undefined && /chunked/i.test(te)) {
    const { body, complete } = dechunk(rawBody);
    if (!complete && !closed) return null;
    return { ...base, body, complete, chunked: true };
  }
  const cl = get('content-length');
  if (cl !== undefined) {
    const n = Number(cl);
    if (rawBody.length < n && !closed) return null;
    return { ...base, body: rawBody.subarray(0, n), complete: rawBody.length >= n, chunked: false };
  }
  // No framing: the body runs to the end of the connection.
  if (!closed) return null;
  return { ...base, body: rawBody, complete: true, chunked: false };
}

export interface RawRequestOptions {
  /** The response has no body whatever its headers say (HEAD). */
  noBody?: boolean;
}

/**
 * Sends `request` bytes as they are and resolves with the first complete
 * response (or whatever arrived when the server closed the connection).
 * The socket is destroyed afterwards.
 */
export function rawRequest(url: string, request: string | Buffer, options: RawRequestOptions = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      let res: RawResponse | null;
      try {
        res = parseResponse(buf, options.noBody ?? false, closed);
      } catch (err) {
        done = true;
        socket.destroy();
        reject(err as Error);
        return;
      }
      if (res === null) {
        if (closed) {
          done = true;
          reject(new Error(`connection closed before a response head: ${JSON.stringify(buf.toString('latin1'))}`));
        }
        return;
      }
      done = true;
      socket.destroy();
      resolve(res);
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      finish(false);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.write(request);
  });
}

/** Opens a raw connection to the gateway. */
export function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with everything received once the peer closes the connection. */
export function readUntilClose(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(parts)));
  });
}

/** Resolves once `socket` has received bytes containing `marker`; returns everything received so far. */
export function readUntil(socket: Socket, marker: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.includes(marker)) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(buf);
      }
    };
    const onClose = (): void => reject(new Error(`closed before ${JSON.stringify(marker)}; got ${JSON.stringify(buf.toString('latin1'))}`));
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

const baseChunks = new Map<number, Buffer[]>();

function xorshiftChunk(seed: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let j = 0; j + 4 <= size; j += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, j);
  }
  for (let j = size - (size % 4); j < size; j++) buf[j] = j & 0xff;
  return buf;
}

/**
 * Deterministic pseudo-random bytes, generated chunk by chunk: chunk `i` of a
 * stream is the same whoever generates it, so sender and receiver can hash
 * without holding the whole body. Chunks cycle through 16 random bases and
 * carry their index in the first 4 bytes, so a lost, repeated or reordered
 * chunk changes the hash.
 */
export function patternChunk(i: number, size: number): Buffer {
  let bases = baseChunks.get(size);
  if (bases === undefined) {
    bases = Array.from({ length: 16 }, (_, k) => xorshiftChunk(k, size));
    baseChunks.set(size, bases);
  }
  const chunk = Buffer.from(bases[i % 16]!);
  if (size >= 4) chunk.writeUInt32LE(i >>> 0, 0);
  return chunk;
}

/** SHA-256 and length of `total` bytes of `patternChunk`s of `chunkSize` (a multiple of 4). */
export function patternDigest(total: number, chunkSize: number): { sha256: string; length: number } {
  const hash = createHash('sha256');
  for (let i = 0, sent = 0; sent < total; i++, sent += chunkSize) {
    const c = patternChunk(i, chunkSize);
    hash.update(c.subarray(0, Math.min(chunkSize, total - sent)));
  }
  return { sha256: hash.digest('hex'), length: total };
}

/** Hashes a stream (an upstream's `req`, undici's body) as it flows. */
export async function digestStream(stream: AsyncIterable<Uint8Array>): Promise<{ sha256: string; length: number }> {
  const hash: Hash = createHash('sha256');
  let length = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    length += chunk.byteLength;
  }
  return { sha256: hash.digest('hex'), length };
}

/** Resolves with an upstream request's body as a string. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString();
}

/**
 * One keep-alive connection to send requests on in turn and read their
 * responses exactly: bytes after one response stay for the next, so a body
 * sent where none belongs (HEAD, 204) breaks the next response's parse.
 */
export class RawConnection {
  private buf = Buffer.alloc(0);
  private closed = false;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static async open(url: string): Promise<RawConnection> {
    return new RawConnection(await openSocket(url));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Bytes received and not yet consumed by a parsed response. */
  get pending(): Buffer {
    return this.buf;
  }

  /** Waits until the received bytes contain `marker`; consumes up to and including it. */
  async readUntil(marker: string): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf(marker);
      if (i !== -1) {
        const out = this.buf.subarray(0, i + marker.length).toString('latin1');
        this.buf = this.buf.subarray(i + marker.length);
        return out;
      }
      if (this.closed) throw new Error(`closed before ${JSON.stringify(marker)}; got ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  /** Reads the next complete response; consumes exactly its bytes. */
  async response(options: RawRequestOptions = {}): Promise<RawResponse> {
    for (;;) {
      const res = parseResponse(this.buf, options.noBody ?? false, this.closed);
      if (res !== null) {
        const used = res.raw.length - res.rawBody.length + (res.chunked ? chunkedLength(res.rawBody) : res.body.length);
        this.buf = this.buf.subarray(used);
        return res;
      }
      if (this.closed) throw new Error(`connection closed; got ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  /** Sends a request and reads its response. */
  async request(bytes: string | Buffer, options: RawRequestOptions = {}): Promise<RawResponse> {
    this.write(bytes);
    return this.response(options);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Bytes taken by a complete chunked body (framing included, trailers assumed absent). */
function chunkedLength(raw: Buffer): number {
  let pos = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', pos);
    if (lineEnd === -1) return raw.length;
    const size = parseInt(raw.subarray(pos, lineEnd).toString('latin1'), 16);
    if (size === 0) return lineEnd + 4;
    pos = lineEnd + 2 + size + 2;
  }
}

/** `total` bytes of pattern chunks, produced only as fast as they are read. */
export function patternStream(total: number, chunkSize = 64 * 1024): Readable {
  let i = 0;
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, total - sent);
      this.push(patternChunk(i++, chunkSize).subarray(0, n));
      sent += n;
    },
  });
}
