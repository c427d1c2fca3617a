import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildGateway } from '../../lib/config/build.ts';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';

/**
 * Review R3 (D3): auth configs that passed `rxgate --check` and then stopped
 * the gateway at start with no key path (keySource or checkAlgorithms
 * refused them when the stage was built). Each is now refused by the
 * schema, with its key path, as --check, start and reload run it.
 */

const SECRET = 's'.repeat(40);
const pem = (type: 'ec' | 'rsa'): string => (type === 'ec'
  ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
  : generateKeyPairSync('rsa', { modulusLength: 2048 })).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const EC = JSON.stringify(pem('ec'));
const services = 'services: { up: { upstreams: ["http://127.0.0.1:1"] } }';

function problems(yaml: string): string[] {
  try {
    parseConfig(`${services}\n${yaml}`, 'auth-keys.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('auth key sources refused with their key path', () => {
  it('refuses a secret and a jwksUrl in one auth object, on a route and at the top level', () => {
    expect(problems(`routes: [{ path: /a, service: up, auth: { mode: required, secret: "${SECRET}", jwksUrl: "http://idp/jwks" } }]`))
      .toEqual(['routes[0].auth.jwksUrl: only one key source per auth: secret and jwksUrl are both set']);
    expect(problems(`auth: { secret: "${SECRET}", publicKey: ${EC} }\nroutes: [{ path: /a, service: up, auth: required }]`))
      .toEqual(['auth.publicKey: only one key source per auth: secret and publicKey are both set']);
  });

  it('refuses jwks settings beside a secret or a public key', () => {
    expect(problems(`routes: [{ path: /a, service: up, auth: { mode: required, secret: "${SECRET}", jwks: { timeout: 1s } } }]`))
      .toEqual(['routes[0].auth.jwks: jwks settings need jwksUrl; this auth verifies with its secret']);
    expect(problems(`routes: [{ path: /a, service: up, auth: { mode: required, publicKey: ${EC}, jwks: { timeout: 1s } } }]`))
      .toEqual(['routes[0].auth.jwks: jwks settings need jwksUrl; this auth verifies with its publicKey']);
  });

  it("refuses top-level algorithms (no top-level key) that a route's own key cannot verify", () => {
    expect(problems(`auth: { algorithms: [HS256, ES256] }\nroutes: [{ path: /a, service: up, auth: { mode: required, publicKey: ${EC} } }]`))
      .toEqual(['routes[0].auth: inherits algorithms HS256 from the top-level auth, which its own key (a public key) cannot verify: set algorithms here']);
  });

  it("refuses a route's algorithms that the top-level key it verifies with cannot verify", () => {
    expect(problems(`auth: { secret: "${SECRET}" }\nroutes: [{ path: /a, service: up, auth: { mode: required, algorithms: [HS256, RS256] } }]`))
      .toEqual(["routes[0].auth.algorithms[1]: RS256 cannot be verified with the top-level auth's key (a shared secret)"]);
  });

  it('accepts, and builds, what starts: top-level algorithms that fit, top-level jwks settings for a route jwksUrl, a route key that replaces the top-level one', async () => {
    for (const yaml of [`auth: { algorithms: [ES256], jwks: { timeout: 2s } }
routes:
  - { path: /a, service: up, auth: { mode: required, publicKey: ${EC} } }
  - { path: /b, service: up, auth: { mode: required, jwksUrl: "http://idp/jwks" } }`, `auth: { secret: "${SECRET}", algorithms: [HS256] }
routes:
  - { path: /a, service: up, auth: { mode: required, publicKey: ${EC} } }
  - { path: /b, service: up, auth: { mode: optional, algorithms: [HS512] } }`]) {
      expect(problems(yaml)).toEqual([]);
      // The stages build (jwtAuth throws TypeError on what it refuses).
      await buildGateway(parseConfig(`${services}\nlog: { level: silent }\n${yaml}`, 'auth-keys.yaml', {})).close();
    }
  });
});
