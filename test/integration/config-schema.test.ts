import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { requireHeader } from '../../examples/require-header.ts';
import { configJsonSchema } from '../../lib/cli.ts';
import { stageRegistry } from '../../lib/config/build.ts';
import { substituteEnv } from '../../lib/config/load.ts';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/rxgate.mjs');
const COMMITTED = readFileSync(join(ROOT, 'rxgate.schema.json'), 'utf8');

/** Every YAML config the repository ships, by path from the root. */
const CONFIGS = ['examples', 'bench/configs'].flatMap((dir) =>
  readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.yaml')).map((f) => `${dir}/${f}`));

/** Configs that use stages registered in code, and those stages. */
const CUSTOM_STAGES: Record<string, Parameters<typeof configJsonSchema>[0]> = {
  'examples/custom-stage.yaml': [requireHeader],
};

function validator(schema: Record<string, unknown>): (config: unknown) => string[] {
  const validate = new Ajv2020({ allErrors: true, strictTypes: false }).compile(schema);
  return (config) => (validate(config) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`));
}

/**
 * The config as rxgate validates it: YAML parsed, `${VAR:-default}` replaced
 * by its default, and a `${VAR}` without one (the bench's JWT secret, set by
 * the harness) by a long stand-in value.
 */
function configAt(path: string): unknown {
  const text = readFileSync(join(ROOT, path), 'utf8');
  const env: NodeJS.ProcessEnv = {};
  for (const [, name] of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) env[name!] = `stand-in for ${name!}, set when the config runs`;
  return substituteEnv(parse(text), env);
}

function cliSchema(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'schema'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the config JSON Schema (rxgate.schema.json)', () => {
  it('is what the sources generate: regenerate it with `node bin/rxgate.mjs schema > rxgate.schema.json`', () => {
    expect(COMMITTED).toBe(JSON.stringify(configJsonSchema(), null, 2) + '\n');
  });

  it('is what `rxgate schema` prints', async () => {
    const res = await cliSchema();
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(COMMITTED);
  });

  it('finds the repository\'s YAML configs', () => {
    expect(CONFIGS).toEqual(expect.arrayContaining(['examples/demo.yaml', 'examples/custom-stage.yaml', 'bench/configs/bare.yaml', 'bench/configs/full.yaml']));
  });

  describe.each(CONFIGS)('%s', (path) => {
    it('validates against the schema', () => {
      const stages = CUSTOM_STAGES[path];
      const check = validator(stages === undefined ? JSON.parse(COMMITTED) as Record<string, unknown> : configJsonSchema(stages));
      expect(check(configAt(path))).toEqual([]);
    });

    it('names the schema on its first line, or says why not', () => {
      const first = readFileSync(join(ROOT, path), 'utf8').split('\n', 1)[0];
      if (path.startsWith('examples/') && CUSTOM_STAGES[path] === undefined) {
        expect(first).toBe('# yaml-language-server: $schema=../rxgate.schema.json');
      }
    });
  });

  it('offers the registered stage names in pipeline lists, and refuses others', () => {
    const schema = JSON.parse(COMMITTED) as { properties: { pipeline: { items: { enum: string[] } } } };
    expect(schema.properties.pipeline.items.enum).toEqual(stageRegistry().names);
    expect(schema.properties.pipeline.items.enum).toEqual(expect.arrayContaining(['auth', 'rateLimit', 'retry', 'circuitBreaker']));
    const check = validator(JSON.parse(COMMITTED) as Record<string, unknown>);
    const config = {
      pipeline: ['auth', 'retyr'],
      services: { users: { upstreams: ['http://127.0.0.1:3001'] } },
      routes: [{ path: '/api/*', service: 'users', retry: { attempts: 2 } }],
    };
    expect(check(config)).toEqual(['/pipeline/1 must be equal to one of the allowed values']);
    expect(validator(configJsonSchema([requireHeader]))({ ...config, pipeline: ['requireHeader', 'retry'] })).toEqual([]);
  });

  it('refuses a misspelt key, as the config loader does', () => {
    const check = validator(JSON.parse(COMMITTED) as Record<string, unknown>);
    const errors = check({ services: { users: { upstreams: ['http://127.0.0.1:3001'], timout: '5s' } }, routes: [{ path: '/', service: 'users' }] });
    expect(errors).toEqual(['/services/users must NOT have additional properties']);
  });
});
