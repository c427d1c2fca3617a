import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfig } from '../../lib/config/load.ts';
import { buildGateway, type BuildOptions, type PipelineFactory } from '../../lib/config/build.ts';
import { Gateway, type GatewayRoute } from '../../lib/gateway.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { defaultPipeline } from '../../pipeline.ts';

/** A node:http upstream on a free loopback port; `url` is its base URL. */
export interface TestUpstream {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestUpstream> {
  const server = createServer(handler);
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    server, port, url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A gateway on a free loopback port from explicit routes (code form). */
export async function startGateway(routes: GatewayRoute[], extra: { services?: import('../../lib/upstream/service.ts').Service[]; publicMetrics?: boolean } = {}): Promise<Gateway & { url: string }> {
  const gw = new Gateway({ host: '127.0.0.1', port: 0, routes, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), ...extra });
  const port = await gw.listen();
  return Object.assign(gw, { url: `http://127.0.0.1:${port}` });
}

/** A gateway on a free loopback port from YAML text (config form), with the default pipeline unless given. */
export async function startGatewayFromYaml(yaml: string, pipeline: PipelineFactory = defaultPipeline, env: NodeJS.ProcessEnv = process.env, extra: BuildOptions = {}): Promise<Gateway & { url: string }> {
  const gw = buildGateway(parseConfig(yaml, 'test.yaml', env, extra.stages ?? []), pipeline, {
    logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, ...extra,
  });
  const port = await gw.listen();
  return Object.assign(gw, { url: `http://127.0.0.1:${port}` });
}
