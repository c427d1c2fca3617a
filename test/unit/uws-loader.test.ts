import { describe, expect, it } from 'vitest';
import { chooseUws, uwsCandidates, type UwsHost } from '../../lib/server/uws.ts';

const WHAT_WORKS = 'What works: Node 20 on any glibc Linux (2.27+), or Node 22/24/26 on glibc ≥ 2.38 (Debian 13, Ubuntu 24.04)';

/** A Linux x64 host with both builds installed; each case changes what it is about. */
function host(over: Partial<UwsHost> & { node: string }): UwsHost {
  const base = { abi: abiOf(over.node), platform: 'linux', arch: 'x64', glibc: '2.41', ...over };
  return { ...base, installed: over.installed ?? new Set(Object.values(uwsCandidates(base))) };
}

function abiOf(node: string): string {
  return ({ 18: '108', 20: '115', 22: '127', 23: '131', 24: '137', 26: '147' } as Record<string, string>)[node.split('.')[0]!] ?? '0';
}

function refusal(h: UwsHost): string {
  const choice = chooseUws(h);
  if (choice.kind !== 'refuse') throw new Error(`expected a refusal, got ${JSON.stringify(choice)}`);
  return choice.message;
}

describe('chooseUws', () => {
  it('loads the trufflesuite binary for the Node ABI on Node 20, on glibc 2.36 as on 2.41', () => {
    for (const glibc of ['2.36', '2.41']) {
      expect(chooseUws(host({ node: '20.20.2', glibc }))).toEqual({
        kind: 'load', build: 'trufflesuite', id: 'uWebSockets.js/binaries/uws_linux_x64_115.node',
      });
    }
  });

  it('loads the trufflesuite binary on Node 20 on macOS, where there is no glibc', () => {
    expect(chooseUws(host({ node: '20.20.2', platform: 'darwin', arch: 'arm64', glibc: null }))).toEqual({
      kind: 'load', build: 'trufflesuite', id: 'uWebSockets.js/binaries/uws_darwin_arm64_115.node',
    });
  });

  it.each(['22.12.0', '24.1.0', '26.0.0'])('loads the @uwsjs platform package on Node %s with glibc 2.38 or newer', (node) => {
    const major = node.split('.')[0];
    expect(chooseUws(host({ node, glibc: '2.38' }))).toEqual({ kind: 'load', build: 'uwsjs', id: `@uwsjs/linux-x64-${major}` });
    expect(chooseUws(host({ node, glibc: '2.41' }))).toEqual({ kind: 'load', build: 'uwsjs', id: `@uwsjs/linux-x64-${major}` });
  });

  it('loads the @uwsjs package on Node 22 on macOS and Windows, where glibc does not apply', () => {
    expect(chooseUws(host({ node: '22.12.0', platform: 'darwin', arch: 'arm64', glibc: null }))).toMatchObject({ kind: 'load', id: '@uwsjs/darwin-arm64-22' });
    expect(chooseUws(host({ node: '22.12.0', platform: 'win32', glibc: null }))).toMatchObject({ kind: 'load', id: '@uwsjs/win32-x64-22' });
  });

  it('refuses Node 22 on glibc 2.36 in one message naming the Node version, the glibc version and what works', () => {
    const message = refusal(host({ node: '22.23.5', glibc: '2.36' }));
    expect(message).toContain('Node 22.23.5');
    expect(message).toContain('glibc 2.36');
    expect(message).toContain('@uwsjs/linux-x64-22 needs glibc ≥ 2.38');
    expect(message).toContain(WHAT_WORKS);
    expect(message).toContain('never on the slow JavaScript fallback');
  });

  it('refuses Node 22 on glibc 2.37, just short of 2.38, and compares versions as numbers (2.4 < 2.38)', () => {
    expect(refusal(host({ node: '22.12.0', glibc: '2.37' }))).toContain('needs glibc ≥ 2.38');
    expect(refusal(host({ node: '22.12.0', glibc: '2.4' }))).toContain('needs glibc ≥ 2.38');
    expect(chooseUws(host({ node: '22.12.0', glibc: '3.0' })).kind).toBe('load');
  });

  it('refuses a Linux without glibc (musl) on either build', () => {
    expect(refusal(host({ node: '22.12.0', glibc: null }))).toContain('no glibc): @uwsjs/linux-x64-22 is linked against glibc');
    expect(refusal(host({ node: '20.20.2', glibc: null }))).toContain('the Node 20 build is linked against glibc');
  });

  it('refuses Node 22 when its platform package was not installed (npm ran under another Node), and says so', () => {
    const message = refusal(host({ node: '22.12.0', installed: new Set(['uWebSockets.js/binaries/uws_linux_x64_127.node']) }));
    expect(message).toContain('@uwsjs/linux-x64-22 is not installed');
    expect(message).toContain('run it under Node 22');
  });

  it('refuses Node 20 when the trufflesuite binary for its platform is missing', () => {
    const message = refusal(host({ node: '20.20.2', platform: 'linux', arch: 'riscv64', installed: new Set() }));
    expect(message).toContain('uWebSockets.js/binaries/uws_linux_riscv64_115.node is not installed');
    expect(message).toContain('linux-riscv64');
  });

  it.each(['23.11.0', '25.0.0', '27.0.0'])('refuses Node %s, for which no uWebSockets.js build exists', (node) => {
    const message = refusal(host({ node }));
    expect(message).toContain(`no uWebSockets.js build exists for Node ${node.split('.')[0]}`);
    expect(message).toContain(WHAT_WORKS);
  });

  it('never picks the Node 20 build on Node 22 or the @uwsjs build on Node 20, whatever is installed', () => {
    const both = new Set(['uWebSockets.js/binaries/uws_linux_x64_127.node', '@uwsjs/linux-x64-20', '@uwsjs/linux-x64-22', 'uWebSockets.js/binaries/uws_linux_x64_115.node']);
    expect(chooseUws(host({ node: '22.12.0', installed: both }))).toMatchObject({ build: 'uwsjs' });
    expect(chooseUws(host({ node: '20.20.2', installed: both }))).toMatchObject({ build: 'trufflesuite' });
  });
});
