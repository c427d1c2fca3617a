import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compose } from '../../lib/compose.ts';
import type { Gateway } from '../../lib/gateway.ts';
import { circuitBreaker } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { retry, type RetryPolicy } from '../../lib/stages/retry/retry.ts';
import { timeout } from '../../lib/stages/timeout/timeout.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { digestStream, patternStream, patternDigest } from '../support/http.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;

let upstream: TestUpstream;
let gateway: Gateway & { url: string };
let policy: RetryPolicy;
let upstreamRequests: number;

beforeEach(async () => {
  upstreamRequests = 0;
  upstream = await startUpstream((req, res) => {
    upstreamRequests++;
    if (req.url === '/download') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(5 * MB) });
      patternStream(5 * MB).pipe(res);
      return;
    }
    if (req.url === '/download-chunked') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      patternStream(5 * MB + 17).pipe(res);
      return;
    }
    void digestStream(req).then((d) => res.end(JSON.stringify(d)));
  });
  const svc = new Service('big', { upstreams: [upstream.url], timeout: '5s' });
  policy = retry({ attempts: 3, base: '1ms', cap: '5ms' });
  const handler = compose(
    timeout({ head: '5s' }),
    policy,
    circuitBreaker({ consecutiveFailures: 5 }),
    timeout({ head: '2s' }),
  )(forward(svc));
  gateway = await startGateway([{ path: '/*', handler }], { services: [svc] });
});

afterEach(async () => {
  await gateway.close();
  await upstream.close();
});

describe('streaming through the resilience operators', () => {
  it('delivers a 5 MB response with content-length intact', async () => {
    const res = await request(`${gateway.url}/download`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(5 * MB));
    expect(res.headers['x-gateway-attempts']).toBe('1');
    expect(await digestStream(res.body)).toEqual(patternDigest(5 * MB, CHUNK));
    expect(upstreamRequests).toBe(1);
  });

  it('delivers a chunked 5 MB response intact', async () => {
    const res = await request(`${gateway.url}/download-chunked`);
    expect(res.statusCode).toBe(200);
    expect(await digestStream(res.body)).toEqual(patternDigest(5 * MB + 17, CHUNK));
    expect(upstreamRequests).toBe(1);
  });

  it('streams a 5 MB PUT larger than the retry buffer limit to the upstream intact, once', async () => {
    const total = 5 * MB;
    const res = await request(`${gateway.url}/upload`, {
      method: 'PUT', body: patternStream(total), headers: { 'content-length': String(total) },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual(patternDigest(total, CHUNK));
    expect(upstreamRequests).toBe(1);
    expect(policy.counts).toEqual({ requests: 1, retries: 0, refused: 0 });
  });
});
