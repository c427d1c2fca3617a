import type { StageContext } from '../stages/define.ts';
import { createRedisClient, redisReady, type RedisClient } from './redis-client.ts';

/**
 * The one Redis client every Redis-backed store of this gateway uses (the
 * top-level `redis.url`), made on first use. A Redis that is down does not
 * stop the gateway: the stores fall back, and that is logged and counted.
 */
export function redisClient(ctx: StageContext): RedisClient {
  const url = ctx.config.redis?.url;
  if (url === undefined) throw new TypeError('a store: redis needs the top-level redis.url');
  return ctx.resources.get(`redis:${url}`, () => {
    let down = false;
    const client = createRedisClient(url, {
      onError: (err) => {
        if (!down) ctx.events.emit('degraded', { reason: 'redis_error', message: 'redis unreachable: rate limits fall back and the cache bypasses', err });
        else ctx.events.emit('degraded', { reason: 'redis_error' });
        down = true;
      },
    });
    client.on('ready', () => {
      if (down) ctx.events.emit('recovered', { reason: 'redis', message: 'redis reachable again' });
      down = false;
    });
    // Give Redis a moment at start so the first requests see it; if it is
    // down, start anyway: the stores fall back (logged and counted).
    ctx.resources.beforeListen(() => redisReady(client, '3s').catch((err: Error) => {
      ctx.events.emit('degraded', {
        reason: 'redis_unreachable_at_start',
        message: `redis not reachable at start (${redactUrl(url)}): rate limits fall back, cache bypasses`,
        err,
      });
    }));
    return client;
  }, (client) => {
    client.disconnect();
  });
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
