import { afterEach, describe, expect, it } from 'vitest';
import type { PipelineFactory } from '../../lib/config/build.ts';
import { parseConfig } from '../../lib/config/load.ts';
import { Gateway } from '../../lib/gateway.ts';
import { GatewayEvents } from '../../lib/observe/events.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { systemRuntime } from '../../lib/runtime.ts';
import { websocketLimits } from '../../lib/server/websocket-options.ts';
import { websocketForward } from '../../lib/server/ws-connect.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import type { Handler } from '../../lib/types.ts';
import { startGatewayFromYaml } from '../support/servers.ts';
import { closed, connect, startWsUpstream, wsUrl } from '../support/ws.ts';

/**
 * Session 11's 'found and left': a WebSocket route built in code (a
 * `websocketForward` of a pipeline of one's own) was not held to
 * `limits.maxWebSocketMessage`. 7b181dc checked it through one queue for the
 * process, which the next Gateway made claimed, so one gateway refused
 * another's route (reverted in b0e7061). Now a forward is its gateway's by
 * the events it is built with (as its open-connection count already was):
 * checked when that gateway is made, or at once when built after it (a
 * reload), with the YAML check's message; two gateways in one process.
 */

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function service(url = 'http://127.0.0.1:1'): Service {
  const s = new Service('up', { upstreams: [url] });
  cleanups.push(() => s.close());
  return s;
}

const wsRoute = (s: Service, events: GatewayEvents, name: string, maxMessageSize?: number): Handler => websocketForward(s, forward(s), {
  route: name, runtime: systemRuntime, events, limits: websocketLimits(maxMessageSize === undefined ? true : { maxMessageSize }),
});

function gateway(events: GatewayEvents, routes: Array<{ name: string; handler: Handler }>, maxWebSocketMessage?: number): Gateway {
  const gw = new Gateway({
    host: '127.0.0.1', port: 0, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), events,
    ...(maxWebSocketMessage !== undefined ? { limits: { maxWebSocketMessage } } : {}),
    routes: routes.map((r) => ({ path: `/${r.name}`, ...r })),
  });
  cleanups.push(() => gw.close());
  return gw;
}

describe('WebSocket forwards built in code and their own gateway\'s limits.maxWebSocketMessage', () => {
  it('refuses a forward asking more than its gateway\'s key when that gateway is made, and no other gateway made meanwhile refuses it', () => {
    const s = service();
    const a = new GatewayEvents();
    const b = new GatewayEvents();
    const big = wsRoute(s, a, 'big', 2 * MiB);
    // Made in between, with a 1 MiB key and no WebSocket route: not its forward (7b181dc's queue made this one throw).
    expect(() => gateway(b, [], MiB)).not.toThrow();
    expect(() => gateway(a, [{ name: 'big', handler: big }], MiB))
      .toThrow('route big websocket.maxMessageSize (2097152) is over limits.maxWebSocketMessage (1048576)');
  });

  it('checks a forward built after its gateway at once (a reload\'s routes), against that gateway\'s key only', () => {
    const s = service();
    const a = new GatewayEvents();
    const b = new GatewayEvents();
    const gwA = gateway(a, [], MiB);
    gateway(b, []); // the default key, 64 MiB
    expect(() => wsRoute(s, a, 'late', 2 * MiB)).toThrow('route late websocket.maxMessageSize (2097152) is over limits.maxWebSocketMessage (1048576)');
    const fits = wsRoute(s, b, 'fits', 8 * MiB); // b's key: no throw; a's 1 MiB does not apply
    expect(() => gwA.replaceRoutes([{ path: '/ok', name: 'ok', handler: wsRoute(s, a, 'ok', MiB) }])).not.toThrow();
    expect(typeof fits).toBe('function');
  });

  it('gives a forward left at the default its gateway\'s key: an upstream message of 2 MiB closes the client 1009, nothing relayed; the other gateway relays it', async () => {
    const up = await startWsUpstream((ws) => ws.send(Buffer.alloc(2 * MiB, 2)));
    cleanups.push(() => up.close());
    const s = service(up.url);
    const a = new GatewayEvents();
    const b = new GatewayEvents();
    const chatA = wsRoute(s, a, 'chat');
    const chatB = wsRoute(s, b, 'chat');
    const gwA = gateway(a, [{ name: 'chat', handler: chatA }], MiB);
    const gwB = gateway(b, [{ name: 'chat', handler: chatB }]);
    const sizes = async (gw: Gateway): Promise<{ code: number; got: number[] }> => {
      const client = await connect(`${wsUrl(`http://127.0.0.1:${await gw.listen()}`)}/chat`);
      const got: number[] = [];
      client.on('message', (m: Buffer) => {
        got.push(m.length);
        client.close(1000);
      });
      return { code: (await closed(client)).code, got };
    };
    expect(await sizes(gwA)).toEqual({ code: 1009, got: [] });
    expect(await sizes(gwB)).toEqual({ code: 1000, got: [2 * MiB] });
  });

  it('refuses a YAML config whose pipeline of its own builds such a forward: at start, and on reload under the route\'s key path, as the YAML check does', async () => {
    // A pipeline.ts of one's own: the route named chat gets a WebSocket forward built here, asking 2 MiB.
    const pipeline: PipelineFactory = (ctx) => (ctx.route.name !== 'chat' ? ctx.forward() : websocketForward(ctx.service, ctx.forward(), {
      route: ctx.routeName, runtime: ctx.runtime, events: ctx.events, limits: websocketLimits({ maxMessageSize: 2 * MiB }),
    }));
    const yaml = (name: string): string => `
limits: { maxWebSocketMessage: 1048576 }
services: { up: { upstreams: ["http://127.0.0.1:1"] } }
routes: [{ path: /x, service: up, name: ${name} }]
`;
    await expect(startGatewayFromYaml(yaml('chat'), pipeline)).rejects.toThrow('routes[0]: route chat websocket.maxMessageSize (2097152) is over limits.maxWebSocketMessage (1048576)');
    const gw = await startGatewayFromYaml(yaml('plain'), pipeline);
    cleanups.push(() => gw.close());
    await expect(gw.reload(parseConfig(yaml('chat'), 'reload.yaml', {})))
      .rejects.toThrow('routes[0]: route chat websocket.maxMessageSize (2097152) is over limits.maxWebSocketMessage (1048576)');
  });
});
