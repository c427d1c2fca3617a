import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as test/support/otel-batch-preload.mjs's exporter posts it. */
export interface CollectedSpan { name: string; kind: number; traceId: string }

/** A stand-in OTLP collector on loopback: every batch the preload's exporter POSTs to `url` lands in `spans`. */
export async function startSpanCollector(): Promise<{ url: string; spans: CollectedSpan[]; close(): Promise<void> }> {
  const spans: CollectedSpan[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      spans.push(...(JSON.parse(body) as CollectedSpan[]));
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
