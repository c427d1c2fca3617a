/**
 * A gateway built in code, no YAML: two services, three routes, each route
 * its own composition of stages. Run it next to the demo upstreams:
 *
 *   node --import ./bin/loader/register.mjs examples/demo-upstreams.ts &   # or: npm start in another shell
 *   node --import ./bin/loader/register.mjs examples/custom-pipeline.ts
 */
import { map } from 'rxjs';
import {
  circuitBreaker, compose, forward, Gateway, jwtAuth, rateLimit, retry, Service, timeout,
  type Policy,
} from '../lib/index.ts';

// A stage of your own: add a header to every response. Stages are plain
// functions from the next handler to a handler.
const poweredBy: Policy = (next) => (req) =>
  next(req).pipe(map((res) => ({ ...res, headers: [...res.headers, 'x-powered-by', 'rxgate'] })));

const users = new Service('users', { upstreams: ['http://127.0.0.1:3001'], timeout: '5s' });
const orders = new Service('orders', { upstreams: ['http://127.0.0.1:3002', 'http://127.0.0.1:3003'] });

// Built once, shared by every request of the routes that use them.
const ordersBreaker = circuitBreaker({ consecutiveFailures: 5, resetTimeout: '30s' });
const auth = jwtAuth({ secret: process.env.JWT_SECRET ?? 'change-me-to-a-secret-of-32-bytes-or-more' });

export const gateway = new Gateway({
  host: '127.0.0.1',
  port: Number(process.env.PORT ?? 8081),
  services: [users, orders],
  routes: [
    {
      path: '/api/users/*',
      rewrite: { stripPrefix: '/api' },
      handler: compose(poweredBy, rateLimit({ limit: 100, window: '1m' }), retry({ attempts: 2 }))(forward(users)),
    },
    {
      path: '/api/orders/:id',
      methods: ['GET'],
      rewrite: { stripPrefix: '/api' },
      handler: compose(
        poweredBy,
        auth,                      // 401 without a valid bearer token
        timeout({ head: '10s' }),  // all attempts together
        retry({ attempts: 3 }),    // idempotent requests, other instance first
        ordersBreaker,             // 503 CIRCUIT_OPEN at once while orders is sick
        timeout({ head: '2s' }),   // each attempt
      )(forward(orders)),
    },
    { path: '/health/*', handler: forward(users) },
  ],
});

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = await gateway.listen();
  console.log(`custom pipeline on http://127.0.0.1:${port}: try /api/users/1 and /api/orders/7`);
  process.once('SIGINT', () => void gateway.close().then(() => process.exit(0)));
}
