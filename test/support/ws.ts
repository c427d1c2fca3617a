import type { IncomingMessage } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';
import { startUpstream, type TestUpstream } from './servers.ts';

/** An upstream WebSocket server (ws) on an http server that answers plain requests "plain". */
export interface WsUpstream extends TestUpstream {
  wss: WebSocketServer;
  /** Handshake requests it accepted, in order. */
  handshakes: IncomingMessage[];
  /** Upgrade attempts it saw (accepted or not). */
  attempts: number;
}

export async function startWsUpstream(
  onConnection: (ws: WebSocket, req: IncomingMessage) => void,
  options: { refuse?: number; handleProtocols?: (protocols: Set<string>) => string | false } = {},
): Promise<WsUpstream> {
  const up = await startUpstream((req, res) => {
    req.resume();
    res.end('plain');
  });
  const wss = new WebSocketServer({
    noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024,
    ...(options.handleProtocols !== undefined ? { handleProtocols: options.handleProtocols } : {}),
  });
  const out: WsUpstream = Object.assign(up, { wss, handshakes: [] as IncomingMessage[], attempts: 0 });
  up.server.on('upgrade', (req, socket, head) => {
    out.attempts++;
    if (options.refuse !== undefined) {
      socket.end(`HTTP/1.1 ${options.refuse} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      out.handshakes.push(req);
      onConnection(ws, req);
    });
  });
  const close = up.close;
  out.close = async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await close();
  };
  return out;
}

/** An echo server: every message back as it came (text or binary). */
export function echo(ws: WebSocket): void {
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
}

/** Opens a client WebSocket; resolves once open, rejects with the status of a refused handshake. */
export function connect(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => reject(Object.assign(new Error(`refused with ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

/** Resolves with the close code and reason `ws` reports. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

export const wsUrl = (httpUrl: string): string => httpUrl.replace(/^http/, 'ws');
