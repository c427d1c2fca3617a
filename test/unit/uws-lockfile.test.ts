import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

interface LockEntry { version: string; optional?: boolean; os?: string[]; cpu?: string[]; engines?: { node?: string }; optionalDependencies?: Record<string, string> }

const lock = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };

describe('package-lock.json and @uwsjs/core', () => {
  // npm writes only the platform packages it could fetch here, and `npm ci`
  // then fails with "Missing: @uwsjs/darwin-arm64-22@ from lock file".
  it('lists every platform package @uwsjs/core names, as optional and limited to its os, cpu and Node major, so npm ci succeeds', () => {
    const core = lock.packages['node_modules/@uwsjs/core'];
    expect(core).toBeDefined();
    const names = Object.keys(core!.optionalDependencies ?? {});
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      const entry = lock.packages[`node_modules/${name}`];
      expect(entry, `${name} is missing from package-lock.json`).toBeDefined();
      const [os, cpu, major] = name.slice('@uwsjs/'.length).split('-');
      expect(entry).toMatchObject({ version: core!.optionalDependencies![name], optional: true, os: [os], cpu: [cpu] });
      expect(entry!.engines?.node).toBe(`>=${major}.0.0 <${Number(major) + 1}.0.0`);
    }
  });
});
