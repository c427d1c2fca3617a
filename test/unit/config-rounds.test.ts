import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';

/**
 * A config's problems in one answer: the schema's own (types, unknown keys)
 * and the checks across keys (a route's service, pipelines, Redis) come
 * together; unset `${VARS}` stop first (their keys would be refused again
 * as empty strings). lib/config/cross-checks.ts.
 */

function problems(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(yaml, 'rounds.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

const SERVICES = 'services:\n  users: { upstreams: ["http://127.0.0.1:1"] }\n';

describe('config problems in one answer', () => {
  it('reports the schema\'s problems and the cross-key ones together', () => {
    expect(problems(`${SERVICES}routes:
  - { path: /a, service: users, timeot: 5s, retry: { attempts: two } }
  - { path: /b, service: nobody }
  - { path: /c, service: users, pipeline: [retry, nope] }
  - { path: /d, service: users, rateLimit: { limit: 10, window: 1s, store: redis } }
`)).toEqual([
      'routes[0].retry.attempts: Invalid input: expected number, received string',
      'routes[0].timeot: unknown key (did you mean timeouts?)',
      'routes[1].service: unknown service "nobody" (known: users)',
      expect.stringMatching(/^routes\[2\]\.pipeline\[1\]: unknown stage "nope"/),
      'routes[3].rateLimit.store: uses store: redis but the config has no top-level redis.url',
    ]);
  });

  it('keeps a store without redis.url beside a refused key of the same route', () => {
    // It sat at routes[0] and was left out as under a refused key (routes[0].retry.attempts).
    expect(problems(`${SERVICES}routes:\n  - { path: /a, service: users, rateLimit: { limit: 1, window: 1s, store: redis }, cache: { store: redis }, retry: { attempts: x } }\n`)).toEqual([
      'routes[0].retry.attempts: Invalid input: expected number, received string',
      'routes[0].rateLimit.store: uses store: redis but the config has no top-level redis.url',
      'routes[0].cache.store: uses store: redis but the config has no top-level redis.url',
    ]);
  });

  it('leaves out a cross-key problem under a key the schema refused', () => {
    expect(problems(`${SERVICES}routes:\n  - { path: /a, service: 5 }\n  - { path: /b, service: nobody }\n`)).toEqual([
      'routes[0].service: Invalid input: expected string, received number',
      'routes[1].service: unknown service "nobody" (known: users)',
    ]);
  });

  it('runs no cross-key check when routes or services are no list or map, and does not throw', () => {
    expect(problems(`${SERVICES}routes: { path: /a }\n`)).toEqual(['routes: Invalid input: expected array, received object']);
    expect(problems('services: [a]\nroutes:\n  - { path: /a, service: users }\n')).toEqual(['services: Invalid input: expected record, received array']);
  });

  it('stops at unset variables: their keys are not refused again as empty values', () => {
    expect(problems(`services:\n  users: { upstreams: ["\${USERS_URL}"] }\nroutes:\n  - { path: /a, service: users, timeot: 5s }\n`)).toEqual([
      'services.users.upstreams[0]: environment variable USERS_URL is not set and has no default (${USERS_URL:-default})',
    ]);
  });
});
