import type { HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/observe/log.ts';
import { Exchange } from '../../lib/server/connection.ts';
import type { EdgeHooks } from '../../lib/server/edge.ts';
import { InFlight } from '../../lib/server/in-flight.ts';
import type { Body, BodySink, GatewayResponse } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/**
 * While the edge drains, every answer says `Connection: close` once: uWS's
 * `end(…, true)` writes it (and closes) where the response ends in the
 * head's cork; otherwise the writer writes it with the head. Never twice,
 * and never when not draining.
 */

/** A uWS response that records header lines and how the response ended. */
class RecordingResponse {
  readonly calls: string[] = [];
  onAborted(): this { return this; }
  onWritable(): this { return this; }
  cork(cb: () => void): this { cb(); return this; }
  getWriteOffset(): number { return 0; }
  writeStatus(s: string | Uint8Array): this { this.calls.push(`status ${Buffer.from(s).toString('latin1')}`); return this; }
  writeHeader(k: string | Uint8Array, v: string | Uint8Array): this {
    this.calls.push(...`${Buffer.from(k).toString('latin1')}: ${Buffer.from(v).toString('latin1')}`.split('\r\n'));
    return this;
  }
  write(chunk: Uint8Array): boolean { this.calls.push(`write ${chunk.length}`); return true; }
  tryEnd(chunk: Uint8Array, total: number): [boolean, boolean] { this.calls.push(`tryEnd ${chunk.length}/${total}`); return [true, chunk.length === total]; }
  end(body?: string | Uint8Array, close?: boolean): this { this.calls.push(`end ${body === undefined ? 0 : body.length} close=${close === true}`); return this; }
  endWithoutBody(): this { this.calls.push('endWithoutBody'); return this; }
  connectionCloseLines(): number { return this.calls.filter((c) => c.toLowerCase() === 'connection: close').length; }
}

/** A body of `chunks`, sent when piped (a known length when `sized`), or held until `release()`. */
class ListBody implements Body {
  readonly length: number | null;
  private sink: BodySink | null = null;
  constructor(private readonly chunks: Uint8Array[], sized: boolean, private readonly held = false) {
    this.length = sized ? chunks.reduce((n, c) => n + c.length, 0) : null;
  }
  pipe(sink: BodySink): void {
    this.sink = sink;
    if (!this.held) this.release();
  }
  release(): void {
    for (const c of this.chunks) this.sink!.write(c);
    this.sink!.end();
  }
  resume(): void {}
  destroy(): void {}
}

const hooks: EdgeHooks = { dispatch: () => { throw new Error('not used'); }, logger: silentLogger };

function answer(response: GatewayResponse, draining: boolean, method = 'GET'): RecordingResponse {
  const res = new RecordingResponse();
  const inflight = new InFlight();
  inflight.draining = draining;
  const exchange = new Exchange(res as unknown as HttpResponse, gatewayRequest({ id: 'r', method, receivedAt: performance.now() }), hooks, inflight);
  exchange.next(response);
  exchange.complete();
  return res;
}

const bytes = (n: number): Uint8Array => new Uint8Array(n).fill(97);

describe('response writer while the edge drains', () => {
  it('ends a whole sized body with end(body, true), which writes Connection: close itself', () => {
    const res = answer({ status: 200, headers: ['content-type', 'text/plain'], body: new ListBody([bytes(5)], true) }, true);
    expect(res.calls).toContain('end 5 close=true');
    expect(res.connectionCloseLines()).toBe(0);
  });

  it('writes Connection: close with the head of a streamed body, once, and ends it normally', async () => {
    const body = new ListBody([bytes(3), bytes(4)], false, true);
    const res = answer({ status: 200, headers: ['content-type', 'text/plain'], body }, true);
    await Promise.resolve(); // the head goes alone at the end of the tick
    body.release();
    expect(res.connectionCloseLines()).toBe(1);
    expect(res.calls.slice(-3)).toEqual(['write 3', 'write 4', 'end 0 close=false']);
  });

  it('writes the header itself for a 204 and a HEAD, which uWS ends without closing', () => {
    const noContent = answer({ status: 204, headers: [], body: null }, true);
    expect(noContent.connectionCloseLines()).toBe(1);
    expect(noContent.calls.at(-1)).toBe('endWithoutBody');
    const head = answer({ status: 200, headers: ['content-length', '5'], body: new ListBody([bytes(5)], true) }, true, 'HEAD');
    expect(head.connectionCloseLines()).toBe(1);
    expect(head.calls.at(-1)).toBe('endWithoutBody');
  });

  it('closes an error answer with end(body, true), and answers a HEAD with the header and no body', () => {
    const failed = (method: string): RecordingResponse => {
      const res = new RecordingResponse();
      const inflight = new InFlight();
      inflight.draining = true;
      const exchange = new Exchange(res as unknown as HttpResponse, gatewayRequest({ id: 'r', method, receivedAt: performance.now() }), hooks, inflight);
      exchange.error(new Error('boom'));
      return res;
    };
    const get = failed('GET');
    expect(get.calls.at(-1)).toMatch(/^end \d+ close=true$/);
    expect(get.connectionCloseLines()).toBe(0);
    const head = failed('HEAD');
    expect(head.calls.slice(-2)).toEqual([expect.stringMatching(/^content-length: \d+$/), 'endWithoutBody']);
    expect(head.connectionCloseLines()).toBe(1);
  });

  it('says nothing of the connection when not draining', () => {
    const sized = answer({ status: 200, headers: [], body: new ListBody([bytes(5)], true) }, false);
    expect(sized.calls).toContain('tryEnd 5/5');
    const empty = answer({ status: 200, headers: [], body: null }, false);
    expect(empty.calls.at(-1)).toBe('end 0 close=false');
    for (const res of [sized, empty]) expect(res.connectionCloseLines()).toBe(0);
  });
});
