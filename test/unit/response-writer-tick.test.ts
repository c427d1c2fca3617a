import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/observe/log.ts';
import { Exchange } from '../../lib/server/connection.ts';
import type { EdgeHooks } from '../../lib/server/edge.ts';
import { InFlight } from '../../lib/server/in-flight.ts';
import { elapsed } from '../../lib/server/response-writer.ts';
import type { Body, BodySink } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/** A uWS response that records the lines written to it, per cork. */
class RecordingResponse {
  readonly calls: string[] = [];
  onAborted(): this { return this; }
  cork(cb: () => void): this { this.calls.push('cork'); cb(); return this; }
  writeStatus(s: string | Uint8Array): this { this.calls.push(`status ${Buffer.from(s).toString('latin1')}`); return this; }
  writeHeader(k: string | Uint8Array, v: string | Uint8Array): this {
    this.calls.push(...`${Buffer.from(k).toString('latin1')}: ${Buffer.from(v).toString('latin1')}`.split('\r\n'));
    return this;
  }
}

/** A body that never sends a chunk: its head waits for the end of the tick. */
class SilentBody implements Body {
  readonly length = null;
  pipe(_sink: BodySink): void {}
  resume(): void {}
  destroy(): void {}
}

const hooks: EdgeHooks = { dispatch: () => { throw new Error('not used'); }, logger: silentLogger };

function waitingExchange(id: string): RecordingResponse {
  const res = new RecordingResponse();
  const exchange = new Exchange(res as unknown as HttpResponse, gatewayRequest({ id, receivedAt: performance.now() }), hooks, new InFlight());
  exchange.next({ status: 200, headers: ['content-type', 'text/plain'], body: new SilentBody() });
  return res;
}

describe('response writer: per-response work done once', () => {
  it('gives the response time the text the integer pieces give, under and over one second and for a clock that went back', () => {
    const reference = (tenths: number): string => `${Math.floor(tenths / 10)}.${tenths - Math.floor(tenths / 10) * 10}ms`;
    for (let tenths = -25; tenths <= 12_000; tenths++) {
      const req = gatewayRequest({ receivedAt: 5_000 });
      // Twice: the second read comes from the texts made on first use.
      expect(elapsed(req, 5_000 + tenths / 10)).toBe(reference(tenths));
      expect(elapsed(req, 5_000 + tenths / 10)).toBe(reference(tenths));
    }
    expect(elapsed(gatewayRequest({ receivedAt: 100.004 }), 101.46)).toBe('1.5ms');
    expect(elapsed(gatewayRequest({ receivedAt: 0 }), 3_600_000.04)).toBe('3600000.0ms');
  });

  it('writes every head still waiting for its body at the end of the tick, not before', async () => {
    const a = waitingExchange('a');
    const b = waitingExchange('b');
    expect(a.calls).toEqual([]);
    expect(b.calls).toEqual([]);
    await Promise.resolve();
    for (const [res, id] of [[a, 'a'], [b, 'b']] as const) {
      expect(res.calls).toEqual(['cork', 'status 200 OK', 'content-type: text/plain', expect.stringMatching(/^x-gateway-response-time: \d+\.\dms$/), `x-request-id: ${id}`]);
    }
  });

  it('leaves an exception thrown while writing a waiting head uncaught, as queueMicrotask did, rather than a rejected promise', () => {
    // In a child process: the test runner treats an uncaught exception in its own process as a failure.
    const child = `
      const { Exchange } = await import(${JSON.stringify(new URL('../../lib/server/connection.ts', import.meta.url).href)});
      const { InFlight } = await import(${JSON.stringify(new URL('../../lib/server/in-flight.ts', import.meta.url).href)});
      process.on('uncaughtException', (err) => { console.log('uncaught: ' + err.message); });
      process.on('unhandledRejection', (err) => { console.log('rejection: ' + err.message); });
      const res = { onAborted() {}, cork(cb) { cb(); }, writeStatus() { throw new Error('refused'); } };
      const req = { id: 'x', method: 'GET', receivedAt: performance.now(), headers: {}, locals: {} };
      const exchange = new Exchange(res, req, { logger: { warn() {}, error() {} } }, new InFlight());
      exchange.next({ status: 200, headers: [], body: { length: null, pipe() {}, resume() {}, destroy() {} } });
      setTimeout(() => {}, 20);
    `;
    const loader = fileURLToPath(new URL('../../bin/loader/register.mjs', import.meta.url));
    const out = spawnSync(process.execPath, ['--import', loader, '--input-type=module', '-e', child], { encoding: 'utf8', timeout: 20_000 });
    expect(out.stderr).toBe('');
    expect(out.stdout.trim()).toBe('uncaught: refused');
  });
});
