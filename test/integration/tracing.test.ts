import type { IncomingHttpHeaders } from 'node:http';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { BuildOptions } from '../../lib/config/build.ts';
import { isValidTraceparent, newTraceparent } from '../../lib/observe/trace-context.ts';
import { registeredTracerProvider } from '../../lib/observe/tracing.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * W3C trace context and OpenTelemetry spans through real gateways: the
 * `traceparent` an upstream sees with no SDK (the client's, or a new one),
 * and with an in-memory exporter the SERVER span per request and the
 * CLIENT span per attempt, their parents and attributes.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  try {
    while (cleanups.length > 0) await cleanups.pop()!();
  } finally {
    // Integration files share worker processes: a registered SDK must never outlive this file's case, even when a close throws.
    cleanups.length = 0;
    trace.disable();
  }
});

const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';
const CLIENT_TP = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

async function upstream(status = 200): Promise<TestUpstream & { seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const up = await startUpstream((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.statusCode = typeof status === 'number' && seen.length === 1 ? status : 200;
    res.end('ok');
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { seen });
}

async function gateway(up: TestUpstream, extra: BuildOptions, service = ''): Promise<string> {
  const gw = await startGatewayFromYaml(`
services:
  api:
    upstreams: ["${up.url}"]
${service}
routes:
  - { path: /api/*, service: api, name: api }
`, defaultPipeline, process.env, extra);
  cleanups.push(() => gw.close());
  return gw.url;
}

function sdk(): { provider: BasicTracerProvider; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  cleanups.push(() => provider.shutdown());
  return { provider, exporter };
}

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

describe('traceparent without an SDK', () => {
  it('forwards a valid client traceparent and tracestate unchanged', async () => {
    const up = await upstream();
    const url = await gateway(up, { tracerProvider: null });
    await (await request(`${url}/api/a`, { headers: { traceparent: CLIENT_TP, tracestate: 'vendor=1' } })).body.text();
    expect(up.seen[0]!.traceparent).toBe(CLIENT_TP);
    expect(up.seen[0]!.tracestate).toBe('vendor=1');
  });

  it('creates a traceparent when the client sent none, a new one per request', async () => {
    const up = await upstream();
    const url = await gateway(up, { tracerProvider: null });
    await (await request(`${url}/api/a`)).body.text();
    await (await request(`${url}/api/a`)).body.text();
    const [a, b] = up.seen.map((h) => h.traceparent as string);
    expect(a).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(isValidTraceparent(a!)).toBe(true);
    expect(b!.slice(3, 35)).not.toBe(a!.slice(3, 35));
  });

  it('replaces an invalid traceparent and drops its tracestate', async () => {
    const up = await upstream();
    const url = await gateway(up, { tracerProvider: null });
    const invalid = `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`;
    await (await request(`${url}/api/a`, { headers: { traceparent: invalid, tracestate: 'vendor=1' } })).body.text();
    expect(up.seen[0]!.traceparent).not.toBe(invalid);
    expect(isValidTraceparent(up.seen[0]!.traceparent as string)).toBe(true);
    expect(up.seen[0]!.tracestate).toBeUndefined();
  });
});

describe('isValidTraceparent', () => {
  it('accepts the spec example and rejects what the spec rejects', () => {
    expect(isValidTraceparent(CLIENT_TP)).toBe(true);
    expect(isValidTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-00`)).toBe(true);
    // A later version may append fields after a dash.
    expect(isValidTraceparent(`01-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`)).toBe(true);
    expect(isValidTraceparent(`ff-${CLIENT_TRACE}-${CLIENT_SPAN}-01`)).toBe(false);
    expect(isValidTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`)).toBe(false);
    expect(isValidTraceparent(`00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`)).toBe(false);
    expect(isValidTraceparent(`00-${CLIENT_TRACE}-${'0'.repeat(16)}-01`)).toBe(false);
    expect(isValidTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-1`)).toBe(false);
    expect(isValidTraceparent('')).toBe(false);
  });

  it('generates distinct valid ids', () => {
    const ids = new Set(Array.from({ length: 500 }, () => newTraceparent()));
    expect(ids.size).toBe(500);
    for (const id of ids) expect(isValidTraceparent(id)).toBe(true);
  });
});

describe('spans with an SDK (in-memory exporter)', () => {
  it('makes a SERVER span under the client traceparent and a CLIENT span per attempt under it', async () => {
    const { provider, exporter } = sdk();
    const up = await upstream();
    const url = await gateway(up, { tracerProvider: provider });
    const res = await request(`${url}/api/users?x=1`, { headers: { traceparent: CLIENT_TP, 'x-request-id': 'r-1' } });
    await res.body.text();
    await until(() => exporter.getFinishedSpans().length === 2);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const client = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(server.spanContext().traceId).toBe(CLIENT_TRACE);
    expect(parentOf(server)).toBe(CLIENT_SPAN);
    expect(client.spanContext().traceId).toBe(CLIENT_TRACE);
    expect(parentOf(client)).toBe(server.spanContext().spanId);
    expect(server.name).toBe('GET api');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET', 'url.path': '/api/users', 'http.route': 'api', 'http.response.status_code': 200,
      'rxgate.request_id': 'r-1', 'rxgate.attempts': 1, 'client.address': '127.0.0.1',
    });
    expect(client.attributes).toMatchObject({
      'http.request.method': 'GET', 'server.address': '127.0.0.1', 'server.port': up.port, 'rxgate.service': 'api',
      'http.response.status_code': 200, 'url.full': `${up.url}/api/users`,
    });
    // The upstream sees the attempt span as its parent.
    expect(up.seen[0]!.traceparent).toBe(`00-${CLIENT_TRACE}-${client.spanContext().spanId}-01`);
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('starts a new trace when the client sent none', async () => {
    const { provider, exporter } = sdk();
    const up = await upstream();
    const url = await gateway(up, { tracerProvider: provider });
    await (await request(`${url}/api/a`)).body.text();
    await until(() => exporter.getFinishedSpans().length === 2);
    const server = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    expect(parentOf(server)).toBeUndefined();
    expect(up.seen[0]!.traceparent).toMatch(new RegExp(`^00-${server.spanContext().traceId}-[0-9a-f]{16}-01$`));
  });

  it('gives each retried attempt its own CLIENT span, the failed one marked as an error', async () => {
    const { provider, exporter } = sdk();
    const up = await upstream(503);
    const url = await gateway(up, { tracerProvider: provider }, '    retry: { attempts: 2, statuses: [503], base: 1ms, cap: 1ms }');
    const res = await request(`${url}/api/a`);
    await res.body.text();
    expect(res.statusCode).toBe(200);
    await until(() => exporter.getFinishedSpans().length === 3);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const attempts = spans.filter((s) => s.kind === SpanKind.CLIENT).sort((a, b) => (a.attributes['rxgate.attempt'] as number) - (b.attributes['rxgate.attempt'] as number));
    expect(attempts.map((s) => s.attributes['http.response.status_code'])).toEqual([503, 200]);
    expect(attempts.map((s) => s.attributes['rxgate.attempt'])).toEqual([1, 2]);
    expect(attempts[0]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(attempts[1]!.status.code).toBe(SpanStatusCode.UNSET);
    for (const a of attempts) expect(parentOf(a)).toBe(server.spanContext().spanId);
    expect(server.attributes['rxgate.attempts']).toBe(2);
    // Each attempt went upstream with its own span as the parent.
    expect(up.seen.map((h) => (h.traceparent as string).slice(36, 52))).toEqual(attempts.map((s) => s.spanContext().spanId));
  });

  it('gives a hedged copy its own CLIENT span and ends the span of the loser as cancelled', async () => {
    const { provider, exporter } = sdk();
    const stuck = await startUpstream((req) => { req.resume(); /* never answers */ });
    cleanups.push(() => stuck.close());
    const fast = await upstream();
    const gw = await startGatewayFromYaml(`
services:
  api:
    upstreams: ["${stuck.url}", "${fast.url}"]
    balancer: round-robin
    hedge: { after: 20ms, max: 1 }
routes:
  - { path: /api/*, service: api, name: api }
`, defaultPipeline, process.env, { tracerProvider: provider });
    cleanups.push(() => gw.close());
    const res = await request(`${gw.url}/api/h`);
    expect(await res.body.text()).toBe('ok');
    await until(() => exporter.getFinishedSpans().length === 3);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const attempts = spans.filter((s) => s.kind === SpanKind.CLIENT);
    expect(attempts).toHaveLength(2);
    const loser = attempts.find((s) => s.attributes['server.port'] === stuck.port)!;
    const winner = attempts.find((s) => s.attributes['server.port'] === fast.port)!;
    expect(loser.attributes['rxgate.cancelled']).toBe(true);
    expect(loser.attributes['http.response.status_code']).toBeUndefined();
    expect(winner.attributes['http.response.status_code']).toBe(200);
    for (const a of attempts) expect(parentOf(a)).toBe(server.spanContext().spanId);
    expect(server.attributes['rxgate.attempts']).toBe(2);
  });

  it('marks the server span as an error when the gateway answers 5xx', async () => {
    const { provider, exporter } = sdk();
    const up = await upstream();
    await up.close();
    const url = await gateway(up, { tracerProvider: provider });
    const res = await request(`${url}/api/a`);
    await res.body.text();
    expect(res.statusCode).toBe(502);
    await until(() => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER));
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
    expect(server.attributes['http.response.status_code']).toBe(502);
    const client = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(client.attributes['error.type']).toBe('BAD_GATEWAY');
  });

  it('uses the provider registered with @opentelemetry/api, and none before one is', async () => {
    expect(registeredTracerProvider()).toBeNull();
    const { provider, exporter } = sdk();
    trace.setGlobalTracerProvider(provider);
    cleanups.push(async () => trace.disable());
    expect(registeredTracerProvider()).toBe(provider);
    const up = await upstream();
    const url = await gateway(up, {});
    await (await request(`${url}/api/a`)).body.text();
    await until(() => exporter.getFinishedSpans().length === 2);
  });
});
