// A preload as docs/logs-and-tracing.md's, without its process.exit wrapper:
// a BatchSpanProcessor (spans held up to 5 s) whose exporter POSTs each
// batch as JSON to OTEL_TEST_COLLECTOR (a stand-in for an OTLP collector;
// the OTLP exporter package is not installed here).
import { request } from 'node:http';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const collector = process.env.OTEL_TEST_COLLECTOR;
const exporter = {
  export(spans, done) {
    const body = JSON.stringify(spans.map((s) => ({ name: s.name, kind: s.kind, traceId: s.spanContext().traceId })));
    const req = request(collector, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => done({ code: 0 }));
    });
    req.on('error', (error) => done({ code: 1, error }));
    req.end(body);
  },
  shutdown: () => Promise.resolve(),
};
const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
