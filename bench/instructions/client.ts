/**
 * The load for run.ts and kernel.ts: the request wrk sends in `npm run bench`
 * (`GET <path> HTTP/1.1`, `Host`, the bench's headers, nothing else), over
 * `concurrency` keep-alive connections, one request at a time on each.
 * undici and http.Agent would add `connection: keep-alive`, which the
 * gateway then parses as a Connection header (a split and a scan per
 * request that wrk's requests never cost).
 */
import { connect, type Socket } from 'node:net';

const HEAD_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i;

/** One keep-alive connection: `request` resolves with the status when the whole response (Content-Length framed) is in. */
class Connection {
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (status: number) => void; reject: (error: Error) => void } | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.parse();
    });
    const fail = (error: Error): void => {
      const w = this.waiting;
      this.waiting = null;
      w?.reject(error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  private parse(): void {
    const end = this.buffered.indexOf(HEAD_END);
    if (end < 0 || this.waiting === null) return;
    const head = this.buffered.subarray(0, end).toString('latin1');
    const length = Number(CONTENT_LENGTH.exec(head)?.[1] ?? 'NaN');
    if (!Number.isFinite(length)) {
      this.waiting.reject(new Error(`response without Content-Length: ${head.slice(0, 200)}`));
      this.waiting = null;
      return;
    }
    const total = end + 4 + length;
    if (this.buffered.length < total) return;
    this.buffered = this.buffered.subarray(total);
    const w = this.waiting;
    this.waiting = null;
    w.resolve(Number(head.slice(9, 12)));
  }

  request(text: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(text, 'latin1');
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export class WrkLikeClient {
  private constructor(private readonly connections: Connection[], private readonly hostLine: string, private readonly extra: string) {}

  static async open(port: number, concurrency: number, headers: Record<string, string>): Promise<WrkLikeClient> {
    const connections = await Promise.all(Array.from({ length: concurrency }, () => Connection.open(port)));
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    return new WrkLikeClient(connections, `Host: 127.0.0.1:${port}\r\n`, extra);
  }

  /** `count` GETs of `path(i)`, spread over the connections; the statuses counted into `statuses`. */
  async drive(path: (i: number) => string, count: number, statuses: Record<string, number>): Promise<void> {
    let next = 0;
    const loop = async (c: Connection): Promise<void> => {
      while (next < count) {
        const i = next++;
        const status = await c.request(`GET ${path(i)} HTTP/1.1\r\n${this.hostLine}${this.extra}\r\n`);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    };
    await Promise.all(this.connections.map(loop));
  }

  close(): void {
    for (const c of this.connections) c.close();
  }
}
