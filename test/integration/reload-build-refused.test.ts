import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { serve } from '../../lib/lifecycle/serve.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { Resources } from '../../lib/resources/registry.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startUpstream } from '../support/servers.ts';

/**
 * A reload refused when the config is built (a stage refuses its options)
 * answers and logs its problems as a schema refusal does: a list in the
 * log, joined with '; ' in the answer. It gave one string holding newlines
 * in POST /reload's 422 and in the log's `problems`.
 */

const dir = mkdtempSync(join(tmpdir(), 'rxgate-reload-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a reload refused at build time', () => {
  it('lists its problems in the 422 and the log, one per key path', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end('old');
    });
    const file = join(dir, 'gateway.yaml');
    const yaml = (routes: string): string => `admin: { host: 127.0.0.1, port: 9901 }\nreload: { watch: false }\nservices:\n  api: { upstreams: ["${up.url}"] }\nroutes:\n  - { path: /a, service: api }\n${routes}`;
    const lines: string[] = [];
    const logger = pino({ name: 'rxgate', level: 'error' }, { write: (line: string) => void lines.push(line) });
    writeFileSync(file, yaml(''));
    const served = await serve(parseConfig(yaml(''), file), defaultPipeline, {
      file, logger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, adminPort: 0, resources: new Resources(),
    });
    try {
      writeFileSync(file, yaml('  - { path: /b, service: api, retry: { base: 10s, cap: 1s } }\n  - { path: /c, service: api, methods: [GET], cors: {} }\n'));
      const res = await request(`http://127.0.0.1:${served.adminPort}/reload`, { method: 'POST' });
      const body = await res.body.text();
      expect(res.statusCode).toBe(422);
      expect(body).not.toContain('\\n');
      expect(body).toContain('routes[1].retry.base: 10000ms is more than cap (1000ms): the backoff would never grow from it; routes[2].cors: ');
      const refused = lines.map((l) => JSON.parse(l) as { msg: string; problems?: string[] }).find((l) => l.msg.startsWith('config reload refused'));
      expect(refused?.problems).toHaveLength(2);
      expect(refused?.problems?.[0]).toBe('routes[1].retry.base: 10000ms is more than cap (1000ms): the backoff would never grow from it');
      expect((await (await request(`http://127.0.0.1:${served.port}/a`)).body.text())).toBe('old');
    } finally {
      await served.close();
      await up.close();
    }
  });
});
