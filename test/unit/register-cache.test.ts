import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * bin/loader/hooks.mjs keeps what esbuild made of a .ts file in
 * node_modules/.cache/rxgate-register/, one entry per source path whose first
 * line is the hash of the source it came from: a changed file must be
 * transformed again, an unchanged one is read from the entry.
 */
const ROOT = join(import.meta.dirname, '../..');
const CACHE = join(ROOT, 'node_modules/.cache/rxgate-register');
const dir = mkdtempSync(join(tmpdir(), 'rxgate-register-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(file: string): string {
  const out = spawnSync(process.execPath, ['--import', join(ROOT, 'bin/loader/register.mjs'), file], { encoding: 'utf8', timeout: 20_000 });
  expect(out.stderr).toBe('');
  return out.stdout.trim();
}

/** The cache entries holding `marker` (each test file's is unique). */
const entries = (marker: string): string[] =>
  readdirSync(CACHE).map((name) => join(CACHE, name)).filter((path) => readFileSync(path, 'utf8').includes(marker));

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('the loader\'s transform cache', () => {
  it('runs a changed file as it now is, and keeps one entry for it, headed by its source\'s hash', () => {
    const marker = randomUUID();
    const file = join(dir, 'changes.ts');
    const source = (value: number): string => `const value: number = ${value};\nconsole.log('${marker}', value);\n`;
    writeFileSync(file, source(1));
    expect(run(file)).toBe(`${marker} 1`);
    writeFileSync(file, source(2));
    expect(run(file)).toBe(`${marker} 2`);
    const [entry, ...more] = entries(marker);
    expect(more).toEqual([]);
    expect(readFileSync(entry!, 'utf8').split('\n')[0]).toBe(`//${sha256(source(2))}`);
  });

  it('runs an unchanged file from its entry, without transforming it again', () => {
    const marker = randomUUID();
    const file = join(dir, 'kept.ts');
    const source = `const said: string = 'from the source';\nconsole.log('${marker}', said);\n`;
    writeFileSync(file, source);
    expect(run(file)).toBe(`${marker} from the source`);
    // An entry that says something else, headed by the hash of the unchanged source: it is what runs.
    const [entry] = entries(marker);
    writeFileSync(entry!, `//${sha256(source)}\nconsole.log('${marker}', 'from the entry');\n`);
    expect(run(file)).toBe(`${marker} from the entry`);
  });
});
