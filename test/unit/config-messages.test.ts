import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';

/** Wording of refused configs (review RC D4/D7): articles from the word, and an unknown key always says what the object takes. */

const config = (service: string, route: string): string => `
services:
  users: { upstreams: ["http://127.0.0.1:3001"]${service} }
routes:
  - { path: /api/*, service: users${route} }
`;

function problemsOf(text: string): readonly string[] {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be refused');
}

describe('config messages', () => {
  it('say "an integer", "an array", "an object" and "a number" (not "a int", "a array")', () => {
    expect(problemsOf(config(', maxBodySize: 2.5', ''))).toContain('services.users.maxBodySize: expected an integer or false, got a number');
    expect(problemsOf(config('', ', retry: [1]'))).toContain('routes[0].retry: expected an object or false, got an array');
    expect(problemsOf(config(', maxBodySize: big', ''))).toContain('services.users.maxBodySize: expected a number or false, got a string');
  });

  it('list the keys an object takes for an unknown key with no near match, however many (auth has 17)', () => {
    const [jwt] = problemsOf(config('', ', auth: { jwt: { secret: x } }'));
    expect(jwt).toBe('routes[0].auth.jwt: unknown key (allowed: algorithms, audience, clockTolerance, forwardClaims, issuer, jwks, jwksUrl, mode, publicKey, realm, requiredClaims, scopeClaim, scopes, secret, stripAuthorization, tokenCache, tokenCacheTtl)');
    // As retry.backoff's few keys were listed already.
    expect(problemsOf(config('', ', retry: { backoff: exponential }'))[0]).toMatch(/^routes\[0\]\.retry\.backoff: unknown key \(allowed: attempts, [a-zA-Z, ]+\)$/);
    // A route's 28 keys too.
    expect(problemsOf(config('', ', colour: red'))[0]).toMatch(/^routes\[0\]\.colour: unknown key \(allowed: adaptiveConcurrency, auth, [a-zA-Z, ]+, websocket\)$/);
  });
});
