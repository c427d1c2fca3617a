import { describe, expect, it } from 'vitest';
import type { GatewayRequest } from '../../lib/types.ts';
import { upstreamHeaders } from '../../lib/upstream/upstream-headers.ts';
import { Upstream } from '../../lib/upstream/upstream.ts';
import { HealthTracker } from '../../lib/upstream/health.ts';
import { OutlierTracker } from '../../lib/upstream/outlier.ts';

const upstream = new Upstream('http://10.0.0.1:9000', {
  connections: 1, keepAliveMs: 1000, timeoutMs: 1000, connect: {}, health: new HealthTracker({}),
  outlier: new OutlierTracker({ ejectAfter: 5, ejectMs: 1000, maxEjectMs: 1000 }),
});

const request = (headers: Record<string, string>): GatewayRequest => ({
  id: 'r-1', method: 'GET', path: '/x', query: '', normalizedPath: '/x', headers, remoteAddress: '127.0.0.1',
  protocol: 'http', body: null, params: {}, receivedAt: 0, locals: {}, attempt: { number: 1, tried: [], instance: null },
});

/** Every value of `name` in a flat list. */
function values(list: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) out.push(list[i + 1]!);
  return out;
}

describe('upstreamHeaders', () => {
  it('leaves Host out when it is the instance\'s own and the client sends that by itself (undici\'s pool line)', () => {
    const list = upstreamHeaders(request({ host: 'gw.example', accept: '*/*' }), upstream, false, true);
    expect(list.filter((_, i) => i % 2 === 0)).toEqual(['accept', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'x-request-id']);
  });

  it('sends the instance\'s own Host when the caller\'s client would not', () => {
    const list = upstreamHeaders(request({ host: 'gw.example' }), upstream, false);
    expect(values(list, 'host')).toEqual(['10.0.0.1:9000']);
  });

  it('sends any other Host: the client\'s with preserveHost true, a fixed one with a string', () => {
    expect(values(upstreamHeaders(request({ host: 'gw.example' }), upstream, true, true), 'host')).toEqual(['gw.example']);
    expect(values(upstreamHeaders(request({ host: 'gw.example' }), upstream, 'internal.example', true), 'host')).toEqual(['internal.example']);
  });
});
