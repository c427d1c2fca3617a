import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Uws from 'uWebSockets.js';

export type UwsModule = typeof Uws;

const require = createRequire(import.meta.url);
let loaded: UwsModule | undefined;

/**
 * Loads uWebSockets.js's native binary directly. The package we depend on
 * (`@trufflesuite/uws-js-unofficial`) silently falls back to a slow pure-JS
 * server when its binary does not load; rxgate refuses to run on that
 * fallback, so we never go through the package's own entry point.
 */
export function loadUws(): UwsModule {
  if (loaded !== undefined) return loaded;
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  const file = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const path = join(pkgDir, 'binaries', file);
  try {
    loaded = require(path) as UwsModule;
  } catch (err) {
    throw new Error(
      `rxgate needs uWebSockets.js's native binary for ${process.platform}-${process.arch} ` +
        `on Node ABI ${process.versions.modules} (Node ${process.version}), and it did not load: ` +
        `${(err as Error).message}\nrxgate will not run on the slow JavaScript fallback. ` +
        `Use Node 20 on glibc Linux x64/arm64 (the binaries shipped are for ABI 93/108/115), ` +
        `or install a uWebSockets.js build that matches your Node.`,
      { cause: err },
    );
  }
  if (typeof loaded.App !== 'function' || typeof loaded.us_listen_socket_close !== 'function') {
    throw new Error(`uWebSockets.js at ${path} is not the native build`);
  }
  return loaded;
}
