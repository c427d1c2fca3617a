import { Observable, of } from 'rxjs';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { Gateway } from '../../lib/gateway.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import type { GatewayResponse } from '../../lib/types.ts';

/**
 * The edge registers uWS's `onAborted` only for a response that is not over
 * when its uWS handler returns: an answer written inside the handler (a
 * cache hit, a 404) never hears of an abort, and the registration costs a
 * closure and a native handle. These drive `Edge.handle` as uWS calls it,
 * with uWS's objects replaced by recorders.
 */

class RecordingResponse {
  aborted: Array<() => void> = [];
  ended = false;
  /** Bytes `tryEnd` takes before refusing (Infinity: all). */
  room = Infinity;
  onAborted(f: () => void): this { this.aborted.push(f); return this; }
  onData(): this { return this; }
  onWritable(): this { return this; }
  getRemoteAddress(): ArrayBuffer { return new Uint8Array([127, 0, 0, 1]).buffer; }
  cork(f: () => void): this { f(); return this; }
  writeStatus(): this { return this; }
  writeHeader(): this { return this; }
  getWriteOffset(): number { return 0; }
  tryEnd(chunk: Uint8Array): [boolean, boolean] {
    const done = chunk.byteLength <= this.room;
    this.ended = done;
    return [done, done];
  }
  end(): this { this.ended = true; return this; }
  endWithoutBody(): this { this.ended = true; return this; }
  close(): this { return this; }
}

class GetRequest {
  constructor(private readonly url: string, private readonly headers: Record<string, string> = {}) {}
  forEach(f: (name: string, value: string) => void): void {
    f('host', 'gw');
    for (const [k, v] of Object.entries(this.headers)) f(k, v);
  }
  getCaseSensitiveMethod(): string { return 'GET'; }
  getUrl(): string { return this.url; }
  getQuery(): string | undefined { return undefined; }
}

const held: Array<{ next(r: GatewayResponse): void; complete(): void }> = [];
let teardowns = 0;
const answer = (): GatewayResponse => ({ status: 200, headers: ['content-type', 'text/plain'], body: BufferedBody.of('hello') });

function handleOf(): (res: RecordingResponse, req: GetRequest) => void {
  const gateway = new Gateway({
    host: '127.0.0.1', port: 0, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }),
    routes: [
      { path: '/now', handler: () => of(answer()) },
      { path: '/later', handler: () => new Observable<GatewayResponse>((s) => { held.push(s); return () => { teardowns++; }; }) },
    ],
  });
  const edge = (gateway as unknown as { edge: { handle(res: HttpResponse, req: HttpRequest): void } }).edge;
  return (res, req) => edge.handle(res as unknown as HttpResponse, req as unknown as HttpRequest);
}

describe('edge: onAborted only for a response that outlives its uWS handler', () => {
  const handle = handleOf();

  it('registers none for an answer written inside the handler, nor for a 404', () => {
    const hit = new RecordingResponse();
    handle(hit, new GetRequest('/now'));
    expect(hit.ended).toBe(true);
    expect(hit.aborted).toHaveLength(0);
    const missing = new RecordingResponse();
    handle(missing, new GetRequest('/nowhere'));
    expect(missing.ended).toBe(true);
    expect(missing.aborted).toHaveLength(0);
  });

  it('registers one for an answer still to come, and the client going away then stops its pipeline', () => {
    const res = new RecordingResponse();
    handle(res, new GetRequest('/later'));
    expect(res.ended).toBe(false);
    expect(res.aborted).toHaveLength(1);
    const before = teardowns;
    res.aborted[0]!();
    expect(teardowns).toBe(before + 1);
  });

  it('registers one when the answer was started inside the handler but the socket did not take all of it', () => {
    const res = new RecordingResponse();
    res.room = 2;
    handle(res, new GetRequest('/now'));
    expect(res.ended).toBe(false);
    expect(res.aborted).toHaveLength(1);
  });

  it('registers one at once for a request with a body, before any stage runs', () => {
    const res = new RecordingResponse();
    handle(res, new GetRequest('/now', { 'content-length': '5' }));
    expect(res.aborted).toHaveLength(1);
  });
});
