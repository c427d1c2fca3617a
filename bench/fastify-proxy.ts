/**
 * The strongest Node alternative: fastify + @fastify/http-proxy, which
 * forwards with undici (its default: a pool of 128 connections). No logger.
 *
 *   node --import ./bin/loader/register.mjs bench/fastify-proxy.ts --port 8082 --upstream http://127.0.0.1:9000
 */
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import { onStop, portArg, requiredArg } from './args.ts';

async function main(): Promise<void> {
  const port = portArg();
  const app = Fastify({ logger: false });
  await app.register(proxy, { upstream: requiredArg('upstream'), prefix: '/' });
  await app.listen({ host: '127.0.0.1', port });
  onStop(() => void app.close());
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
