import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRawUpstream, type RawUpstream, type SeenRequest } from '../support/raw-http.ts';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * A black-box audit of HTTP/1.1 conformance (RFC 9110, 9112) as h1spec or
 * http-garden style suites probe a reverse proxy: the CLI on a YAML file,
 * exact bytes over raw sockets, and an upstream on node:net that records
 * the bytes it receives and answers with exact bytes (what node:http would
 * not send). One gateway process for every case.
 *
 * Several cases pin what uWebSockets.js 20.30 decides before rxgate sees a
 * request (docs/http.md, "HTTP/1.1 conformance"): rxgate cannot change
 * those, but nothing it holds or closes may reach the upstream.
 */

/** Raw answers by path; anything else gets a JSON echo of what the upstream received. */
const RAW: Record<string, string> = {
  '/r/204-with-body': 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello',
  '/r/304-with-body': 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello',
  '/r/cl-and-te': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  '/r/two-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
  '/r/obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 2\r\n\r\nok',
  '/r/bare-lf': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
  '/r/space-colon': 'HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok',
  '/r/nul': 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok',
  '/r/mid-head': 'HTTP/1.1 200 OK\r\nX-A: a',
  '/r/connection-names': 'HTTP/1.1 200 OK\r\nConnection: close, x-hop\r\nX-Hop: 1\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok',
  '/r/date-server': 'HTTP/1.1 200 OK\r\nServer: upstream/1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok',
  '/r/early-hints': 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  '/r/chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
};
/** Answers the upstream closes after (a head cut short). */
const THEN_CLOSE = new Set(['/r/mid-head']);

let up: RawUpstream;
let runs: RxgateRuns;
let proc: RxgateProcess;
let port = 0;

beforeAll(async () => {
  up = await startRawUpstream((socket, req) => {
    const raw = RAW[req.target];
    if (req.target === '/hold') return; // never answered: keeps a drain going
    if (raw !== undefined) {
      if (THEN_CLOSE.has(req.target)) socket.end(raw);
      else socket.write(raw);
      return;
    }
    const body = JSON.stringify({ method: req.method, target: req.target });
    socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  });
  runs = rxgateRuns();
  // retry off: each probe reaches the upstream at most once, so what it saw is what one request did.
  proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services: { up: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false } }
routes:
  - { path: /p/*, service: up, rewrite: { stripPrefix: /p } }
  - { path: /r/*, service: up }
`)], { RXGATE_LOG_LEVEL: 'info' });
  port = Number((await proc.logged('rxgate listening'))['port']);
});

afterAll(async () => {
  runs.remove();
  await up.close();
});

interface Outcome {
  /** Everything the gateway sent, latin1. */
  text: string;
  /** The gateway closed the connection. */
  closed: boolean;
}

/**
 * Sends `bytes` on a new connection; resolves when the gateway closes it,
 * when `done(text)` holds (after a short grace for a close that follows),
 * or after `holdMs` of waiting (a held connection).
 */
function send(bytes: string | Buffer, done: (text: string) => boolean = () => false, holdMs = 1500): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(cap);
      socket.destroy();
      resolve({ text, closed });
    };
    const cap = setTimeout(() => finish(false), holdMs);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (done(text)) setTimeout(() => finish(false), 150);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

/** Statuses of the response heads in `text`, in order. */
const statuses = (text: string): number[] => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

/** The requests the upstream received while `probe` ran. */
async function upstreamSaw(probe: () => Promise<unknown>): Promise<SeenRequest[]> {
  const before = up.requests.length;
  await probe();
  // A request still on its way upstream would be recorded within this.
  await new Promise((r) => setTimeout(r, 100));
  return up.requests.slice(before);
}

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: gw.test\r\n${extra}\r\n`;
const endsJson = (t: string): boolean => t.endsWith('}');

describe('Connection: close from the client (RFC 9112 §9.6)', () => {
  it('answers with Connection: close and closes, whether the answer is the gateway\'s own or the upstream\'s', async () => {
    for (const path of ['/nowhere', '/p/close']) {
      const out = await send(GET(path, 'Connection: close\r\n'));
      expect(out.closed, path).toBe(true);
      expect(out.text, path).toMatch(/\r\nconnection: close\r\n/i);
    }
  });

  it('never forwards a request pipelined behind one that asked to close, not even after an answer the gateway gives at once', async () => {
    // The first is answered at once (404, no upstream) or proxied; the POST behind it must never reach the upstream.
    for (const first of [GET('/nowhere', 'Connection: close\r\n'), GET('/p/first', 'Connection: close\r\n'), GET('/nowhere', 'Connection: keep-alive, close\r\n')]) {
      const seen = await upstreamSaw(() => send(`${first}POST /p/behind-close HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\n\r\nx`));
      expect(seen.map((r) => r.target), first).not.toContain('/behind-close');
    }
  });

  it('answers requests pipelined behind answers given at once, in order, and keeps the connection', async () => {
    const out = await send(`${GET('/n1')}${GET('/n2')}${GET('/p/third')}`, (t) => t.includes('"/third"'));
    expect(statuses(out.text)).toEqual([404, 404, 200]);
    expect(out.closed).toBe(false);
  });
});

describe('request lines and heads uWS 20.30 never hands over (held or closed, nothing forwarded)', () => {
  const HELD: Array<[string, string]> = [
    ['HTTP/1.0', 'GET /p/v10 HTTP/1.0\r\nHost: gw.test\r\n\r\n'],
    ['HTTP/1.0 without Host', 'GET /p/v10 HTTP/1.0\r\n\r\n'],
    ['HTTP/1.2', 'GET /p/v12 HTTP/1.2\r\nHost: gw.test\r\n\r\n'],
    ['HTTP/2.0', 'GET /p/v20 HTTP/2.0\r\nHost: gw.test\r\n\r\n'],
    ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['a lower-case version', 'GET /p/lower http/1.1\r\nHost: gw.test\r\n\r\n'],
    ['asterisk form with OPTIONS', 'OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n'],
    ['asterisk form with GET', 'GET * HTTP/1.1\r\nHost: gw.test\r\n\r\n'],
    ['absolute form', 'GET http://gw.test/p/abs HTTP/1.1\r\nHost: gw.test\r\n\r\n'],
    ['a lower-case method', 'get /p/lower-method HTTP/1.1\r\nHost: gw.test\r\n\r\n'],
    ['a 54-byte method', `${'GET'.repeat(18)} /p/long-method HTTP/1.1\r\nHost: gw.test\r\n\r\n`],
    ['a space in the target', 'GET /p/a b HTTP/1.1\r\nHost: gw.test\r\n\r\n'],
    ['a header name with "("', 'GET /p/paren HTTP/1.1\r\nHost: gw.test\r\nX(A): v\r\n\r\n'],
    ['a chunk extension', 'POST /p/ext HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size with 0x', 'POST /p/0x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size past 64 bits', 'POST /p/big HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff5\r\nhello\r\n0\r\n\r\n'],
    ['Content-Length: 5, 5', 'POST /p/cl-list HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 5\r\n\r\nhello'],
    ['Transfer-Encoding: identity with Content-Length', 'POST /p/identity HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello'],
  ];

  it(`answers none of ${HELD.length} heads (HTTP/1.0, HTTP/2.0, absolute and asterisk forms, chunk extensions…) and forwards none of them`, async () => {
    // All at once, each on its own connection: a held one costs its wait once.
    const outs = await Promise.all(HELD.map(([, bytes]) => send(bytes, () => false, 1000)));
    await new Promise((r) => setTimeout(r, 100));
    for (const [i, [name]] of HELD.entries()) expect(outs[i]!.text, name).toBe('');
    const targets = new Set(up.requests.map((r) => r.target));
    for (const [name, bytes] of HELD) expect(targets.has(bytes.split(' ')[1]!.replace(/^(http:\/\/gw\.test)?\/p/, '')), name).toBe(false);
  });

  it('refuses Transfer-Encoding with a coding before chunked with 400 and a close', async () => {
    const seen = await upstreamSaw(async () => {
      const out = await send('POST /p/gzip-chunked HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', endsJson);
      expect(statuses(out.text)).toEqual([400]);
      expect(out.closed).toBe(true);
    });
    expect(seen).toEqual([]);
  });
});

describe('request bodies and framing', () => {
  it('forwards a body on GET, DELETE and HEAD with its Content-Length', async () => {
    const seen = await upstreamSaw(() => Promise.all(['GET', 'DELETE', 'HEAD'].map((m) =>
      send(`${m} /p/body-${m} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello`, (t) => t.includes('\r\n\r\n')))));
    expect(seen.map((r) => [r.method, r.body, r.headers.find(([n]) => n === 'content-length')?.[1]]).sort()).toEqual([
      ['DELETE', 'hello', '5'], ['GET', 'hello', '5'], ['HEAD', 'hello', '5'],
    ]);
  });

  it('takes chunk sizes with leading zeros and drops request trailers, forwarding the body', async () => {
    const seen = await upstreamSaw(() => Promise.all([
      send('POST /p/zeros HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n', endsJson),
      send('POST /p/trailers HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n', endsJson),
    ]));
    expect(seen.map((r) => [r.target, r.body]).sort()).toEqual([['/trailers', 'hello'], ['/zeros', 'hello']]);
    const head = up.heads[up.requests.findIndex((r) => r.target === '/trailers')]!.toString('latin1');
    expect(head).not.toMatch(/\r\n(trailer|x-t):/i);
  });
});

describe('request bodies cut short by the client', () => {
  it('never forwards a body cut before its Content-Length or its last chunk as complete, after a FIN or a reset', async () => {
    const cut = (target: string, framing: string, part: string, reset: boolean): Promise<void> => new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`POST /p/${target} HTTP/1.1\r\nHost: gw.test\r\n${framing}\r\n\r\n${part}`);
      setTimeout(() => { if (reset) socket.destroy(); else socket.end(); setTimeout(resolve, 400); }, 200);
    });
    const before = up.bytes();
    await Promise.all([
      cut('cut-cl-fin', 'Content-Length: 10', '12345', false), cut('cut-cl-rst', 'Content-Length: 10', '12345', true),
      cut('cut-chunked-fin', 'Transfer-Encoding: chunked', '5\r\n12345\r\n', false), cut('cut-chunked-rst', 'Transfer-Encoding: chunked', '5\r\n12345\r\n', true),
    ]);
    // The heads (and the first bytes) did reach the upstream: the request was streaming when it was cut.
    expect(up.bytes()).toBeGreaterThan(before);
    expect(up.requests.map((r) => r.target).filter((t) => t.startsWith('/cut-'))).toEqual([]);
  });
});

describe('request headers toward the upstream (RFC 9110 §7.6)', () => {
  it('drops Connection, the headers it names, Keep-Alive, Proxy-Connection, TE and Upgrade; passes Via and Max-Forwards as sent and adds no Via', async () => {
    await send(GET('/p/hop', 'Connection: keep-alive, x-hop, TE\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nVia: 1.1 edge\r\nMax-Forwards: 0\r\n'), endsJson);
    const head = up.heads[up.requests.findIndex((r) => r.target === '/hop')]!.toString('latin1').toLowerCase();
    for (const gone of ['x-hop', 'keep-alive', 'proxy-connection', 'te', 'upgrade']) expect(head, gone).not.toMatch(new RegExp(`\r\n${gone}:`));
    expect(head).toMatch(/\r\nvia: 1\.1 edge\r\n/);
    expect(head).toMatch(/\r\nmax-forwards: 0\r\n/);
  });
});

describe('Upgrade: h2c (curl --http2 on http://)', () => {
  it('answers over HTTP/1.1 as if no upgrade were asked (RFC 9113 §3.1), a POST\'s body forwarded, HTTP2-Settings dropped', async () => {
    const upgrade = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
    const outs = await Promise.all([
      send(GET('/p/h2c-get', upgrade), endsJson),
      send(`POST /p/h2c-post HTTP/1.1\r\nHost: gw.test\r\n${upgrade}Content-Length: 5\r\n\r\nhello`, endsJson),
    ]);
    expect(outs.map((o) => statuses(o.text))).toEqual([[200], [200]]);
    const post = up.requests.find((r) => r.target === '/h2c-post')!;
    expect(post.body).toBe('hello');
    expect(post.headers.map(([n]) => n)).not.toContain('http2-settings');
  });
});

describe('upstream answers (RFC 9110 §6.4.1, §7.6.1; RFC 9112 §6)', () => {
  it('sends 204 and 304 without the body the upstream sent after them, and the connection still serves', async () => {
    for (const path of ['/r/204-with-body', '/r/304-with-body']) {
      const out = await send(`${GET(path)}`, (t) => t.includes('\r\n\r\n'));
      expect(statuses(out.text), path).toEqual([path.includes('204') ? 204 : 304]);
      expect(out.text.slice(out.text.indexOf('\r\n\r\n') + 4), path).toBe('');
    }
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    socket.write(GET('/r/204-with-body'));
    await new Promise((r) => setTimeout(r, 300));
    socket.write(GET('/p/after-204'));
    await new Promise<void>((resolve) => { const check = (): void => { if (text.includes('"/after-204"')) resolve(); else setTimeout(check, 20); }; check(); });
    socket.destroy();
    expect(statuses(text)).toEqual([204, 200]);
  });

  it.each(['/r/cl-and-te', '/r/two-cl', '/r/obs-fold', '/r/bare-lf', '/r/space-colon', '/r/nul', '/r/mid-head'])('answers 502 to %s, never passing on a head two parsers could read differently', async (path) => {
    const out = await send(GET(path), endsJson);
    expect(statuses(out.text)).toEqual([502]);
    expect(out.text).toMatch(/"code":"BAD_GATEWAY"/);
  });

  it('removes the headers the upstream\'s Connection names, and keeps the client connection open despite its close', async () => {
    const out = await send(GET('/r/connection-names'), (t) => t.endsWith('ok'));
    expect(out.text).not.toMatch(/\r\nx-hop:/i);
    expect(out.text).toMatch(/\r\nx-kept: 1\r\n/i);
    expect(out.text).not.toMatch(/\r\nconnection: close/i);
    expect(out.closed).toBe(false);
  });

  it('sends one Date, its own, as nginx does (proxy_hide_header Date), and passes the upstream\'s Server', async () => {
    const out = await send(GET('/r/date-server'), (t) => t.endsWith('ok'));
    const dates = [...out.text.matchAll(/\r\ndate: ([^\r]*)/gi)].map((m) => m[1]);
    expect(dates).toHaveLength(1);
    expect(dates[0]).not.toBe('Sun, 06 Nov 1994 08:49:37 GMT');
    expect(out.text).toMatch(/\r\nserver: upstream\/1\r\n/i);
  });

  it('drops a 103 Early Hints and relays the final answer', async () => {
    const out = await send(GET('/r/early-hints'), (t) => t.endsWith('ok'));
    expect(statuses(out.text)).toEqual([200]);
  });

  it('keeps a HEAD answer\'s Content-Length and sends no body', async () => {
    const out = await send('HEAD /p/head HTTP/1.1\r\nHost: gw.test\r\n\r\n', (t) => t.includes('\r\n\r\n'));
    // The length of the upstream's JSON for a GET, {"method":"HEAD","target":"/head"}.
    expect(out.text).toMatch(new RegExp(`\r\ncontent-length: ${JSON.stringify({ method: 'HEAD', target: '/head' }).length}\r\n`, 'i'));
    expect(out.text.endsWith('\r\n\r\n')).toBe(true);
  });
});


describe('during a drain (RFC 9112 §9.6: nothing after an answer that says close)', () => {
  it('never forwards a request pipelined behind one answered at once on an open keep-alive connection', async () => {
    const drainRuns = rxgateRuns();
    try {
      const gw = drainRuns.start(['--config', drainRuns.file(`
listen: { host: 127.0.0.1, port: 0 }
drain: { timeout: 20s }
services: { up: { upstreams: ["${up.url}"], retry: false } }
routes:
  - { path: /p/*, service: up, rewrite: { stripPrefix: /p } }
`)], { RXGATE_LOG_LEVEL: 'info' });
      const gwPort = Number((await gw.logged('rxgate listening'))['port']);
      const open = (): { socket: ReturnType<typeof connect>; text: () => string; closed: Promise<void> } => {
        const socket = connect(gwPort, '127.0.0.1');
        let text = '';
        socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
        socket.on('error', () => undefined);
        return { socket, text: () => text, closed: new Promise((r) => socket.on('close', () => r())) };
      };
      const keepAlive = open();
      keepAlive.socket.write(GET('/p/before-drain'));
      await until(() => keepAlive.text().endsWith('}'));
      const held = open();
      held.socket.write(GET('/p/hold'));
      await until(() => up.requests.some((r) => r.target === '/hold'));
      gw.proc.kill('SIGTERM');
      await gw.logged('rxgate draining: not ready, no new connections, requests in flight finish');
      const before = up.requests.length;
      // The first is answered at once (no route): uWS would parse the second in the same read and hand it over.
      keepAlive.socket.write(`${GET('/nowhere')}${GET('/p/drain-2')}`);
      await keepAlive.closed;
      await new Promise((r) => setTimeout(r, 100));
      expect(up.requests.slice(before).map((r) => r.target)).toEqual([]);
      expect(statuses(keepAlive.text())).toEqual([200]);
      held.socket.destroy();
    } finally {
      drainRuns.remove();
    }
  });
});

