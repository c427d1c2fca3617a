import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Uws from 'uWebSockets.js';
import { uwsHeadersSize } from './uws-head-size.ts';

export type UwsModule = typeof Uws;

/** Which uWebSockets.js build serves: the Node 20 one, or the official one for Node 22/24/26. */
export type UwsBuild = 'trufflesuite' | 'uwsjs';

/** `@trufflesuite/uws-js-unofficial` 20.30 (aliased `uWebSockets.js`): binaries for Node ABIs 93/108/115, glibc ≥ 2.27. */
const NODE20_PACKAGE = 'uWebSockets.js';
/** `@uwsjs/core` republishes the official binaries as one optional package per platform and Node major. */
const UWSJS_PACKAGE = '@uwsjs/core';
const UWSJS_MAJORS: readonly number[] = [22, 24, 26];
/** The official binaries are linked against glibc 2.38 (Debian 12's 2.36 fails with `GLIBC_2.38 not found`). */
const UWSJS_MIN_GLIBC = '2.38';
const WHAT_WORKS =
  'Node 20 on any glibc Linux (2.27+), or Node 22/24/26 on glibc ≥ 2.38 (Debian 13, Ubuntu 24.04); ' +
  'on macOS (x64, arm64) and Windows (x64) Node 20/22/24/26';

/** What the loader decides from: all of it read from the running process once, passed in so the decision is testable. */
export interface UwsHost {
  /** `process.versions.node`, e.g. `22.12.0`. */
  readonly node: string;
  /** `process.versions.modules` (Node's ABI): the Node 20 build ships one binary per ABI. */
  readonly abi: string;
  readonly platform: string;
  readonly arch: string;
  /** The C library's version when it is glibc (`glibcVersionRuntime`), else null (musl, macOS, Windows). */
  readonly glibc: string | null;
  /** Which of the candidates `uwsCandidates` names are installed. */
  readonly installed: ReadonlySet<string>;
}

/** The loader's verdict: the build to load (`id` as `uwsCandidates` names it), or why none can be. */
export type UwsChoice =
  | { readonly kind: 'load'; readonly build: UwsBuild; readonly id: string }
  | { readonly kind: 'refuse'; readonly message: string };

/** The binary of the Node 20 build and the package of the newer one that would serve this host. */
export function uwsCandidates(host: Pick<UwsHost, 'node' | 'abi' | 'platform' | 'arch'>): Record<UwsBuild, string> {
  return {
    trufflesuite: `${NODE20_PACKAGE}/binaries/uws_${host.platform}_${host.arch}_${host.abi}.node`,
    uwsjs: `@uwsjs/${host.platform}-${host.arch}-${nodeMajor(host.node)}`,
  };
}

/** Picks the uWS build for a host, or says in one message why none can serve it. Pure: no I/O. */
export function chooseUws(host: UwsHost): UwsChoice {
  const major = nodeMajor(host.node);
  const wanted = uwsCandidates(host);
  const refuse = (why: string): UwsChoice => ({ kind: 'refuse', message: refusal(host, why) });
  // Node 20 (and 18, 16: below the engines range, but their ABIs ship too).
  if (major <= 20) {
    if (host.platform === 'linux' && host.glibc === null) return refuse('the Node 20 build is linked against glibc, and this Linux has another C library (musl?)');
    if (!host.installed.has(wanted.trufflesuite)) return refuse(`${wanted.trufflesuite} is not installed (run npm install; no binary exists for ${host.platform}-${host.arch})`);
    return { kind: 'load', build: 'trufflesuite', id: wanted.trufflesuite };
  }
  if (!UWSJS_MAJORS.includes(major)) return refuse(`no uWebSockets.js build exists for Node ${major}`);
  if (host.platform === 'linux') {
    if (host.glibc === null) return refuse(`${wanted.uwsjs} is linked against glibc, and this Linux has another C library (musl?)`);
    if (compareVersions(host.glibc, UWSJS_MIN_GLIBC) < 0) return refuse(`${wanted.uwsjs} needs glibc ≥ ${UWSJS_MIN_GLIBC}`);
  }
  if (!host.installed.has(wanted.uwsjs)) {
    return refuse(`${wanted.uwsjs} is not installed (npm installs the one for the Node that runs npm install: run it under Node ${major}, with optional dependencies)`);
  }
  return { kind: 'load', build: 'uwsjs', id: wanted.uwsjs };
}

/** The one refusal message: this host, why, and what would work. */
function refusal(host: UwsHost, why: string): string {
  const glibc = host.glibc !== null ? `glibc ${host.glibc}` : host.platform === 'linux' ? 'no glibc' : host.platform;
  return `rxgate cannot start on Node ${host.node} (ABI ${host.abi}, ${host.platform}-${host.arch}, ${glibc}): ${why}. ` +
    `It runs only on uWebSockets.js's native binary, never on the slow JavaScript fallback. What works: ${WHAT_WORKS}.`;
}

function nodeMajor(version: string): number {
  return Number.parseInt(version.replace(/^v/, ''), 10);
}

function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const require = createRequire(import.meta.url);
let loaded: { readonly module: UwsModule; readonly build: UwsBuild; readonly path: string } | undefined;

/**
 * Loads the uWebSockets.js native binary that matches the running Node
 * (see `chooseUws`), directly: both packages' own entry points either fall
 * back to a slow pure-JS server (the Node 20 one) or hide which binary they
 * tried, and rxgate refuses to run on anything but the native build.
 */
export function loadUws(): UwsModule {
  if (loaded !== undefined) return loaded.module;
  const host = currentHost();
  const choice = chooseUws(host);
  if (choice.kind === 'refuse') throw new Error(choice.message);
  const path = resolveCandidate(choice.id)!;
  let module: UwsModule;
  try {
    // Read once, when the binary loads (20.69 reads it in a static initialiser; 20.30's head buffer is a fixed 4 KiB):
    // limits.maxHeaderBytes. Removed again after if we set it, so child processes and later loads do not inherit it.
    const set = process.env.UWS_HTTP_MAX_HEADERS_SIZE === undefined;
    if (set) process.env.UWS_HTTP_MAX_HEADERS_SIZE = String(uwsHeadersSize());
    try {
      module = require(path) as UwsModule;
    } finally {
      if (set) delete process.env.UWS_HTTP_MAX_HEADERS_SIZE;
    }
  } catch (err) {
    throw new Error(refusal(host, `${choice.id} did not load: ${(err as Error).message}`), { cause: err });
  }
  if (!isNative(module)) throw new Error(`uWebSockets.js at ${path} is not the native build`);
  loaded = { module, build: choice.build, path };
  return module;
}

/** Which build `loadUws` loaded, and from where (loads it first). */
export function uwsBuild(): { readonly build: UwsBuild; readonly path: string } {
  loadUws();
  return { build: loaded!.build, path: loaded!.path };
}

/** This process, with which candidates resolve. */
export function currentHost(): UwsHost {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const probe = { node: process.versions.node, abi: process.versions.modules, platform: process.platform, arch: process.arch };
  const installed = new Set(Object.values(uwsCandidates(probe)).filter((id) => resolveCandidate(id) !== null));
  return { ...probe, glibc: header?.glibcVersionRuntime ?? null, installed };
}

/** The file a candidate id names, or null when it is not installed. Resolves only: nothing is loaded. */
function resolveCandidate(id: string): string | null {
  try {
    if (id.startsWith(`${NODE20_PACKAGE}/`)) {
      const path = join(dirname(require.resolve(`${NODE20_PACKAGE}/package.json`)), id.slice(NODE20_PACKAGE.length + 1));
      return existsSync(path) ? path : null;
    }
    // The platform packages are @uwsjs/core's dependencies: resolve them from there.
    return createRequire(require.resolve(UWSJS_PACKAGE)).resolve(id);
  } catch {
    return null;
  }
}

/** A native addon's functions print as `[native code]`; a JavaScript fallback's do not. */
function isNative(module: UwsModule): boolean {
  return typeof module.App === 'function' &&
    typeof module.us_listen_socket_close === 'function' &&
    Function.prototype.toString.call(module.App).includes('[native code]');
}
