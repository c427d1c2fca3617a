import { afterEach, describe, expect, it } from 'vitest';
import { get } from '../support/answer.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * A route's `headers.response.remove` of the two headers the edge writes
 * after the rules, `x-request-id` and `x-gateway-response-time` (Envoy's
 * `response_headers_to_remove`, nginx's `proxy_hide_header`): the edge does
 * not write them on that route's responses. Before, such a rule was refused
 * (5f34692), and before that accepted and ignored. Other routes, and the
 * gateway's own error answers, keep both.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('headers.response.remove of the edge\'s headers', () => {
  it('leaves out x-request-id and x-gateway-response-time on the routes that remove them, and only there', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      // An upstream that echoes the id: removed too, as any header the rule names.
      res.writeHead(200, { 'x-request-id': String(req.headers['x-request-id']), server: 'up' }).end('ok');
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /bare/*, service: api, headers: { response: { remove: [X-Request-Id, x-gateway-response-time, server] } } }
  - { path: /id/*, service: api, headers: { response: { remove: [x-request-id] } } }
  - { path: /time/*, service: api, headers: { response: { remove: [x-gateway-response-time] } } }
  - { path: /other/*, service: api, headers: { response: { remove: [server] } } }
`);
    cleanups.push(() => gw.close());
    const seen = async (path: string, method = 'GET'): Promise<[number, boolean, boolean, string | undefined]> => {
      const r = await get(`${gw.url}${path}`, method === 'HEAD' ? {} : { 'x-request-id': 'abc' });
      return [r.status, r.headers['x-request-id'] !== undefined, r.headers['x-gateway-response-time'] !== undefined, r.headers.server as string | undefined];
    };
    expect(await seen('/bare/x')).toEqual([200, false, false, undefined]);
    expect(await seen('/id/x')).toEqual([200, false, true, 'up']);
    expect(await seen('/time/x')).toEqual([200, true, false, 'up']);
    expect(await seen('/other/x')).toEqual([200, true, true, undefined]);
    // The gateway's own error answers keep both: no route's rules ran for a 404.
    expect(await seen('/nowhere')).toEqual([404, true, true, undefined]);
  });
});
