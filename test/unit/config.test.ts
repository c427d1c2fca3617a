import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, formatPath, loadConfig, parseConfig, substituteEnv } from '../../lib/config/load.ts';
import { parseDuration } from '../../lib/duration.ts';
import { Service } from '../../lib/upstream/service.ts';

/**
 * The core example from issue 2: every core section (listen, services with
 * health, routes with methods/rewrites/preserveHost, env substitution,
 * durations). Policy keys are tested with their operators.
 */
const FULL_EXAMPLE = `
listen: { host: 0.0.0.0, port: 8080 }
workers: 2
log: { level: info }
redis: { url: "\${REDIS_URL:-redis://127.0.0.1:6379}" }

services:
  users:
    upstreams: ["\${USERS_URL:-http://127.0.0.1:3001}"]
    timeout: 250ms
    connections: 64
    keepAlive: 4s
    health: { path: /health, interval: 5s, unhealthyAfter: 3, healthyAfter: 2 }
  orders:
    upstreams: ["http://127.0.0.1:3002", "https://orders.internal:8443/base"]
    timeout: 5m
    tlsVerify: false

routes:
  - name: users-read
    path: /api/users/:id
    service: users
    methods: [get, head]
    rewrite: { pattern: "^/api/users", replacement: /users }
  - path: /api/orders/*
    service: orders
    rewrite: { stripPrefix: /api }
    preserveHost: true
`;

const MINIMAL = `
services:
  users:
    upstreams: ["http://127.0.0.1:3001"]
routes:
  - path: /api/*
    service: users
`;

/** The problems a config is refused with. */
function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseConfig(text, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be refused');
}

describe('parseConfig', () => {
  it('loads the core example from the issue with every section', () => {
    const config = parseConfig(FULL_EXAMPLE, 'full.yaml', {});
    expect(Object.keys(config.services)).toEqual(['users', 'orders']);
    expect(config.routes).toHaveLength(2);
    expect(config.routes[0]!.methods).toEqual(['GET', 'HEAD']);
    expect(config.services.users!.upstreams).toEqual(['http://127.0.0.1:3001']);
    expect(config.redis?.url).toBe('redis://127.0.0.1:6379');
  });

  it('loads a minimal config', () => {
    const config = parseConfig(MINIMAL, 'min.yaml', {});
    expect(config.routes[0]).toEqual({ path: '/api/*', service: 'users' });
  });

  it('loads examples/demo.yaml from disk', () => {
    const config = loadConfig(join(import.meta.dirname, '../../examples/demo.yaml'), {});
    expect(config.services.users!.upstreams).toEqual(['http://127.0.0.1:3001']);
    expect(config.services.orders!.upstreams).toHaveLength(2);
  });

  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1.5s', 1500],
    ['1d', 86_400_000],
    [100, 100],
  ])('accepts the duration %s and the service uses it as %i ms', async (value, ms) => {
    const config = parseConfig(MINIMAL.replace('upstreams:', `timeout: ${value}\n    upstreams:`), 't.yaml', {});
    expect(parseDuration(config.services.users!.timeout!)).toBe(ms);
    const service = new Service('users', config.services.users as { upstreams: string[] });
    expect(service.timeoutMs).toBe(ms);
    await service.close();
  });

  it.each(['5 minutes', '30', '-1s', '1w', 'soon'])('refuses the duration %j naming the key', (value) => {
    const problems = problemsOf(MINIMAL.replace('upstreams:', `timeout: "${value}"\n    upstreams:`));
    expect(problems).toContain('services.users.timeout: expected a duration like 250ms, 30s or 5m');
  });

  it('refuses an unknown key with its path', () => {
    const problems = problemsOf(`
services:
  users: { upstreams: ["http://127.0.0.1:3001"] }
routes:
  - path: /api/*
    servce: users
`);
    expect(problems).toContain('routes[0].servce: unknown key (did you mean service?)');
  });

  it('refuses an unknown top-level key and an unknown nested key', () => {
    const problems = problemsOf(MINIMAL + 'listn: { port: 1 }\n');
    expect(problems).toContain('listn: unknown key (did you mean listen?)');
    const nested = problemsOf(MINIMAL.replace('upstreams:', 'health: { path: /h, intervall: 5s }\n    upstreams:'));
    expect(nested).toContain('services.users.health.intervall: unknown key (did you mean interval?)');
  });

  it('says which key was meant, or which keys the object takes, for an unknown key', () => {
    const auth = (keys: string): readonly string[] => problemsOf(MINIMAL.replace('service: users', `service: users\n    auth: { jwksUrl: "https://idp.example/jwks", ${keys} }`));
    expect(auth('audince: api')).toContain('routes[0].auth.audince: unknown key (did you mean audience?)');
    expect(auth('jwksUrlCooldown: 5m')).toContain('routes[0].auth.jwksUrlCooldown: unknown key (did you mean jwksUrl?)');
    // An object with few keys lists them; a short key is not "meant" two edits away (per is no key).
    expect(problemsOf(MINIMAL.replace('service: users', 'service: users\n    log: { format: json }'))).toContain('routes[0].log.format: unknown key (allowed: access)');
    const per = problemsOf(MINIMAL.replace('service: users', 'service: users\n    rateLimit: { limit: 3, window: 1m, per: 1m }'));
    expect(per).toContain('routes[0].rateLimit.per: unknown key (allowed: burst, failOpen, headers, id, key, limit, store, window)');
    // A key inside a union's object branch (a service's retry: { … } | false).
    expect(problemsOf(MINIMAL.replace('upstreams:', 'retry: { atempts: 2 }\n    upstreams:'))).toContain('services.users.retry.atempts: unknown key (did you mean attempts?)');
  });

  it.each(['ftp://files.example', 'not a url', '127.0.0.1:3001'])('refuses the upstream %j naming the key', (value) => {
    const problems = problemsOf(MINIMAL.replace('"http://127.0.0.1:3001"', JSON.stringify(value)));
    expect(problems).toContain('services.users.upstreams[0]: expected an http:// or https:// URL');
  });

  it('refuses a route that points at an unknown service, naming the known ones', () => {
    const problems = problemsOf(MINIMAL.replace('service: users', 'service: nope'));
    expect(problems).toContain('routes[0].service: unknown service "nope" (known: users)');
  });

  it('refuses a route path that does not start with / or has * in the middle', () => {
    expect(problemsOf(MINIMAL.replace('path: /api/*', 'path: api'))[0]).toMatch(/^routes\[0\]\.path: /);
    expect(problemsOf(MINIMAL.replace('path: /api/*', 'path: /a/*/b'))[0]).toMatch(/^routes\[0\]\.path: /);
  });

  it('refuses a config without routes or services', () => {
    expect(problemsOf('services: {}\nroutes: []\n')).toContain('routes: needs at least one route');
    expect(problemsOf('routes: [{ path: /, service: x }]\n').some((p) => p.startsWith('services:'))).toBe(true);
  });

  it('refuses a redis store when no redis.url is configured', () => {
    const problems = problemsOf(MINIMAL.replace('service: users', 'service: users\n    cache: { store: redis }'));
    expect(problems).toContain('routes[0].cache.store: uses store: redis but the config has no top-level redis.url');
  });

  it('lists every problem, not only the first', () => {
    const problems = problemsOf(`
services:
  users: { upstreams: ["ftp://x"], timeout: forever }
routes:
  - { path: /a, service: nope, colour: red }
`);
    expect(problems).toEqual(expect.arrayContaining([
      'services.users.upstreams[0]: expected an http:// or https:// URL',
      'services.users.timeout: expected a duration like 250ms, 30s or 5m',
      expect.stringMatching(/^routes\[0\]\.colour: unknown key \(allowed: /), // every key a route takes
    ]));
  });

  it('refuses YAML syntax errors and duplicate keys', () => {
    expect(problemsOf('services: [unclosed\n')[0]).toMatch(/^YAML syntax: /);
    expect(problemsOf(MINIMAL + 'services: {}\n')[0]).toMatch(/^YAML syntax: .*[Dd]uplicate|^YAML syntax: .*unique/);
  });

  it('names the file and every problem in the error message', () => {
    try {
      parseConfig(MINIMAL.replace('service: users', 'service: nope'), 'conf/gateway.yaml', {});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.file).toBe('conf/gateway.yaml');
      expect(e.message).toContain('invalid config conf/gateway.yaml');
      expect(e.message).toContain('  - routes[0].service: unknown service "nope"');
    }
  });

  it('reports a file it cannot read as a ConfigError naming the file', () => {
    expect(() => loadConfig('/nonexistent/rxgate.yaml', {})).toThrow(/invalid config \/nonexistent\/rxgate\.yaml:\n {2}- cannot read the file/);
  });
});

describe('environment substitution', () => {
  const WITH_ENV = MINIMAL.replace('"http://127.0.0.1:3001"', '"${USERS_URL:-http://127.0.0.1:3001}"');

  it('uses the default when the variable is not set', () => {
    expect(parseConfig(WITH_ENV, 't.yaml', {}).services.users!.upstreams).toEqual(['http://127.0.0.1:3001']);
  });

  it('uses the variable when it is set, and the default when it is empty', () => {
    expect(parseConfig(WITH_ENV, 't.yaml', { USERS_URL: 'http://users.internal:9000' }).services.users!.upstreams)
      .toEqual(['http://users.internal:9000']);
    expect(parseConfig(WITH_ENV, 't.yaml', { USERS_URL: '' }).services.users!.upstreams).toEqual(['http://127.0.0.1:3001']);
  });

  it('refuses a variable without default that is not set, naming the key and the variable', () => {
    const problems = problemsOf(MINIMAL.replace('"http://127.0.0.1:3001"', '"${USERS_URL}"'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^services\.users\.upstreams\[0\]: environment variable USERS_URL is not set/);
  });

  it('validates the substituted value', () => {
    const problems = problemsOf(MINIMAL.replace('"http://127.0.0.1:3001"', '"${USERS_URL}"'), { USERS_URL: 'gopher://x' });
    expect(problems).toContain('services.users.upstreams[0]: expected an http:// or https:// URL');
  });

  it('never lets a variable inject YAML structure', () => {
    const config = parseConfig(MINIMAL.replace('path: /api/*', 'path: "/${P}"'), 't.yaml', { P: 'x\nadmin: true' });
    expect(config.routes[0]!.path).toBe('/x\nadmin: true');
    expect(Object.keys(config.routes[0]!)).toEqual(['path', 'service']);
  });

  it('substitutes several variables in one value and leaves keys alone', () => {
    expect(substituteEnv({ '${K}': 'a-${A}-${B:-b}' }, { A: '1', K: 'no' })).toEqual({ '${K}': 'a-1-b' });
  });

  it('leaves non-string values as they are', () => {
    expect(substituteEnv({ n: 1, b: true, z: null, l: [2, '${X:-y}'] }, {})).toEqual({ n: 1, b: true, z: null, l: [2, 'y'] });
  });
});

describe('formatPath', () => {
  it('formats keys and indexes as a readable path', () => {
    expect(formatPath(['routes', 0, 'rewrite', 'pattern'])).toBe('routes[0].rewrite.pattern');
    expect(formatPath(['services', 'users', 'upstreams', 1])).toBe('services.users.upstreams[1]');
    expect(formatPath([])).toBe('(top level)');
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rxgate-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file and substitutes from the given environment', () => {
    const file = join(dir, 'gw.yaml');
    writeFileSync(file, readFileSync(join(import.meta.dirname, '../../examples/demo.yaml'), 'utf8'));
    const config = loadConfig(file, { ORDERS_URL: 'http://10.0.0.2:80' });
    expect(config.services.orders!.upstreams).toEqual(['http://10.0.0.2:80', 'http://127.0.0.1:3003']);
  });
});
