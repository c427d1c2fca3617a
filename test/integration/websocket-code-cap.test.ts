import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../lib/gateway.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { systemRuntime } from '../../lib/runtime.ts';
import { websocketLimits } from '../../lib/server/websocket-options.ts';
import { websocketForward } from '../../lib/server/ws-connect.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { closed, connect, startWsUpstream, wsUrl } from '../support/ws.ts';

/**
 * WebSocket routes built in code (`websocketForward`) against
 * `limits.maxWebSocketMessage`, as YAML routes are (fefdf1c, b643034): one
 * asking for more is refused when the Gateway is made, naming the route and
 * both figures, and one left at the default gets the smaller. Before, neither
 * was checked: a 2 MiB message from the upstream was relayed whole under a
 * 1 MiB key, whose uWS cuts the client's own at 1 MiB.
 */

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const gatewayOf = (service: Service, maxMessageSize?: number): Gateway => new Gateway({
  host: '127.0.0.1', port: 0, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), services: [service],
  limits: { maxWebSocketMessage: MiB },
  routes: [{
    path: '/chat', name: 'chat',
    handler: websocketForward(service, forward(service), {
      route: 'chat', runtime: systemRuntime, limits: websocketLimits(maxMessageSize === undefined ? true : { maxMessageSize }),
    }),
  }],
});

describe('a WebSocket route built in code and limits.maxWebSocketMessage', () => {
  it('is refused when it asks for more than the key, naming the route and both figures', async () => {
    const service = new Service('up', { upstreams: ['http://127.0.0.1:1'] });
    cleanups.push(() => service.close());
    expect(() => gatewayOf(service, 2 * MiB)).toThrow('route chat websocket.maxMessageSize (2097152) is over limits.maxWebSocketMessage (1048576)');
    // At the key or under it: made.
    const gw = gatewayOf(service, MiB);
    cleanups.push(() => gw.close());
  });

  it('left at the default, has the key as its limit: an upstream message of 2 MiB closes the client 1009, nothing relayed', async () => {
    const up = await startWsUpstream((ws) => ws.send(Buffer.alloc(2 * MiB, 2)));
    cleanups.push(() => up.close());
    const service = new Service('up', { upstreams: [up.url] });
    const gw = gatewayOf(service);
    const port = await gw.listen();
    cleanups.push(() => gw.close());
    const client = await connect(`${wsUrl(`http://127.0.0.1:${port}`)}/chat`);
    let got = 0;
    client.on('message', () => { got++; });
    expect((await closed(client)).code).toBe(1009);
    expect(got).toBe(0);
  });
});
