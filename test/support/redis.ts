import { inject } from 'vitest';

/**
 * The URL of the test run's redis-server, or '' when there is none. Use with
 * `describe.skipIf(!redisUrl)` — under CI a missing server throws here instead,
 * so the run fails rather than skipping quietly.
 */
export function redisUrl(): string {
  const url = inject('redisUrl');
  if (url === '' && process.env.CI === 'true') {
    throw new Error('redis-server is required under CI=true but was not found (apt-get install -y redis-server)');
  }
  if (url === '') console.warn('[rxgate tests] SKIPPING Redis tests: no redis-server on this machine');
  return url;
}
