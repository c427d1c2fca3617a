import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * Raw HTTP/1.1 over node:net for hostile-input tests: a client that sends
 * exact bytes and reports what came back, and an upstream that records
 * every byte it receives and every request it could frame.
 */

export interface RawResponse { status: number; head: string; body: string }

export interface RawOutcome {
  /** Complete `Content-Length`-framed responses, in order. */
  responses: RawResponse[];
  /** The gateway closed the connection. */
  closed: boolean;
  /** Nothing more came for `holdMs` after the last byte sent, and the connection stayed open. */
  held: boolean;
}

/** Splits `buf` into complete `Content-Length`-framed responses (all the gateway and the raw upstream send). */
export function parseResponses(buf: string): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', pos);
    if (end === -1) break;
    const head = buf.slice(pos, end);
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    const n = m === null ? 0 : Number(m[1]);
    if (buf.length < end + 4 + n) break;
    out.push({ status: Number(head.split(' ')[1]), head, body: buf.slice(end + 4, end + 4 + n) });
    pos = end + 4 + n;
  }
  return out;
}

export interface RawSendOptions {
  /** Responses to wait for. @default 1 */
  expected?: number;
  /** After them, wait (up to `holdMs`) for the gateway to close. @default false */
  awaitClose?: boolean;
  /** Pause between pieces, ms. @default 0 (all in one write) */
  gapMs?: number;
  /** Silence after the last byte sent that counts as a hang, ms. @default 1000 */
  holdMs?: number;
}

/** Sends `pieces` on a new connection and reports the answer, the close, or the hang. */
export function rawSend(port: number, pieces: ReadonlyArray<string | Buffer>, options: RawSendOptions = {}): Promise<RawOutcome> {
  const { expected = 1, awaitClose = false, gapMs = 0, holdMs = 1000 } = options;
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let buf = '';
    let settled = false;
    let hang: NodeJS.Timeout | null = null;
    let sending = true;
    const finish = (closed: boolean, held: boolean): void => {
      if (settled) return;
      settled = true;
      if (hang !== null) clearTimeout(hang);
      socket.destroy();
      resolve({ responses: parseResponses(buf), closed, held });
    };
    const arm = (): void => {
      if (hang !== null) clearTimeout(hang);
      hang = setTimeout(() => finish(false, parseResponses(buf).length < expected), holdMs);
    };
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!sending && parseResponses(buf).length >= expected && !awaitClose) finish(false, false);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true, false));
    void (async () => {
      for (let i = 0; i < pieces.length && !settled; i++) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!settled && !socket.destroyed) socket.write(pieces[i]!);
      }
      sending = false;
      if (parseResponses(buf).length >= expected && !awaitClose) finish(false, false);
      else arm();
    })();
  });
}

/** Cuts `text` into `n` pieces of near-equal length. */
export function split(text: string, n: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / n));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

export interface SeenRequest { method: string; target: string; headers: Array<[string, string]>; body: string }

/**
 * An upstream on node:net that records every byte and every request it can
 * frame, and answers each `200 ok`, or with `answer`'s own bytes: for what
 * node:http would not send or accept (raw non-ASCII, garbage instead of HTTP).
 */
export interface RawUpstream {
  port: number;
  url: string;
  /** Bytes received so far, over all connections. */
  bytes(): number;
  /** Complete requests received, in order. */
  requests: SeenRequest[];
  /** Their heads as received (request line and headers, the blank line included), in order. */
  heads: Buffer[];
  close(): Promise<void>;
}

/** Writes the answer to a framed request on its connection. */
export type RawAnswer = (socket: Socket, request: SeenRequest) => void;

const answerOk: RawAnswer = (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');

export async function startRawUpstream(answer: RawAnswer = answerOk): Promise<RawUpstream> {
  let total = 0;
  const requests: SeenRequest[] = [];
  const heads: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      total += d.length;
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const framed = frameRequest(buf);
        if (framed === null) return;
        heads.push(Buffer.from(buf.subarray(0, buf.indexOf('\r\n\r\n') + 4)));
        buf = buf.subarray(framed.used);
        requests.push(framed.request);
        answer(socket, framed.request);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port, url: `http://127.0.0.1:${port}`, requests, heads,
    bytes: () => total,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** One complete request at the start of `buf` (undici frames with Content-Length or chunked), or null. */
function frameRequest(buf: Buffer): { request: SeenRequest; used: number } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const [method = '', target = ''] = lines[0]!.split(' ');
  const headers = lines.slice(1).map((l): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon).toLowerCase(), l.slice(colon + 1).trim()];
  });
  const get = (name: string): string | undefined => headers.find(([n]) => n === name)?.[1];
  let pos = end + 4;
  let body = '';
  const cl = get('content-length');
  if (get('transfer-encoding')?.toLowerCase() === 'chunked') {
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd === -1) return null;
      const size = Number.parseInt(buf.subarray(pos, lineEnd).toString('latin1'), 16);
      if (size === 0) {
        // `0\r\n`, trailers if any, the blank line.
        const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
        if (trailerEnd === -1) return null;
        pos = trailerEnd + 4;
        break;
      }
      if (buf.length < lineEnd + 2 + size + 2) return null;
      body += buf.subarray(lineEnd + 2, lineEnd + 2 + size).toString('latin1');
      pos = lineEnd + 2 + size + 2;
    }
  } else if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < pos + n) return null;
    body = buf.subarray(pos, pos + n).toString('latin1');
    pos += n;
  }
  return { request: { method, target, headers, body }, used: pos };
}
