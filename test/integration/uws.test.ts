import { createRequire } from 'node:module';
import Module from 'node:module';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chooseUws, currentHost, loadUws, uwsBuild } from '../../lib/server/uws.ts';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
const binary = (abi: string): string => join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${abi}.node`);

/** A fresh copy of lib/server/uws.ts, whose module-level cache is empty. */
async function freshLoadUws(): Promise<typeof loadUws> {
  vi.resetModules();
  return (await import('../../lib/server/uws.ts')).loadUws;
}

const realAbi = process.versions.modules;
const node20 = Number.parseInt(process.versions.node, 10) <= 20;
const extensions = (Module as unknown as { _extensions: Record<string, (m: { exports: unknown }, file: string) => void> })._extensions;
const realNodeLoader = extensions['.node']!;

afterEach(() => {
  Object.defineProperty(process.versions, 'modules', { value: realAbi });
  extensions['.node'] = realNodeLoader;
});

describe('loadUws', () => {
  it('loads the native binary chooseUws picks for this Node, never a package entry point', () => {
    const uws = loadUws();
    expect(typeof uws.App).toBe('function');
    expect(typeof uws.us_listen_socket_close).toBe('function');
    expect(typeof uws.us_socket_local_port).toBe('function');
    const choice = chooseUws(currentHost());
    expect(choice.kind).toBe('load');
    const { build, path } = uwsBuild();
    expect(build).toBe(choice.kind === 'load' ? choice.build : null);
    if (build === 'trufflesuite') {
      // The very module object Node loaded from the .node binary, not the package's JS entry (which falls back to JS).
      expect(path).toBe(binary(realAbi));
      expect(require.cache[binary(realAbi)]!.exports).toBe(uws);
      expect(Object.keys(require.cache).some((k) => k.includes(`${pkgDir}/src/`) || k.includes(`${pkgDir}/dist/`))).toBe(false);
    } else {
      expect(Object.keys(require.cache).some((k) => k.startsWith(dirname(path)) && k.endsWith('.node'))).toBe(true);
    }
  });

  it('returns the same module on every call', () => {
    expect(loadUws()).toBe(loadUws());
  });

  // Faking the ABI only means something to the Node 20 build, which ships one binary per ABI.
  it.runIf(node20)('refuses to run, in one message naming Node, glibc and what works, when no binary matches the Node ABI', async () => {
    const load = await freshLoadUws();
    Object.defineProperty(process.versions, 'modules', { value: '1' });
    let message = '';
    try {
      load();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`rxgate cannot start on Node ${process.versions.node} (ABI 1, ${process.platform}-${process.arch}`);
    expect(message).toContain('never on the slow JavaScript fallback');
    expect(message).toContain('What works: Node 20');
    expect(message).toContain(`uws_${process.platform}_${process.arch}_1.node is not installed`);
  });

  it.runIf(node20)('refuses a binary that loads but is not the native build', async () => {
    const load = await freshLoadUws();
    // An ABI whose file exists but is not yet in require's cache, loaded as an empty module.
    const abi = ['93', '108', '115'].find((a) => a !== realAbi && require.cache[binary(a)] === undefined)!;
    Object.defineProperty(process.versions, 'modules', { value: abi });
    extensions['.node'] = (m) => {
      m.exports = { App: () => ({}) };
    };
    try {
      expect(() => load()).toThrow(/is not the native build/);
    } finally {
      delete require.cache[binary(abi)];
    }
  });
});
