import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { GATEWAY_SET, registerWithUndici, UNDICI_KNOWS_GATEWAY_NAMES } from '../../lib/upstream/upstream-headers.ts';

const require = createRequire(import.meta.url);
/** undici's internal table (lib/core/constants.js): what upstream-headers registers the gateway's names in. */
const { headerNameLowerCasedRecord: table } = require('undici/lib/core/constants.js') as { headerNameLowerCasedRecord: Record<string, string> };

let dir: string | null = null;
let server: Server | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
  server?.close();
  server = null;
});

/** A directory whose `undici` has `constants` as its lib/core/constants.js; the URL of a file in it. */
function fakeUndici(constants: string): string {
  dir = mkdtempSync(join(tmpdir(), 'rxgate-undici-'));
  const root = join(dir, 'node_modules', 'undici');
  mkdirSync(join(root, 'lib', 'core'), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{"name":"undici","main":"index.js"}');
  writeFileSync(join(root, 'index.js'), 'module.exports = {}');
  writeFileSync(join(root, 'lib', 'core', 'constants.js'), constants);
  return pathToFileURL(join(dir, 'here.js')).href;
}

/** The request head undici writes for `headers`, as the upstream reads it. */
async function headWritten(headers: string[]): Promise<string> {
  let head = '';
  server = createServer((socket) => {
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) socket.end('HTTP/1.1 204 No Content\r\n\r\n');
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const pool = new Pool(`http://127.0.0.1:${port}`);
  try {
    const res = await pool.request({ path: '/', method: 'GET', headers });
    await res.body.dump();
  } finally {
    await pool.close();
  }
  return head;
}

describe('the gateway-set request header names in undici\'s table of known names', () => {
  it('are registered, each as its own lower case (fails when an undici upgrade moves or reshapes the table)', () => {
    expect(UNDICI_KNOWS_GATEWAY_NAMES).toBe(true);
    expect(Object.getPrototypeOf(table)).toBe(null);
    for (const name of GATEWAY_SET) expect(table[name]).toBe(name);
    // A well-known name is untouched.
    expect(table['content-type']).toBe('content-type');
  });

  it('go upstream as the same bytes, and their values are still checked', async () => {
    const head = await headWritten([
      'x-forwarded-for', '10.0.0.7, 127.0.0.1', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'gw.example',
      'x-real-ip', '10.0.0.7', 'x-request-id', 'r-1', 'traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    ]);
    expect(head).toContain('\r\nx-forwarded-for: 10.0.0.7, 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: gw.example\r\n'
      + 'x-real-ip: 10.0.0.7\r\nx-request-id: r-1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n');
    const pool = new Pool('http://127.0.0.1:1');
    await expect(pool.request({ path: '/', method: 'GET', headers: ['x-request-id', 'a\r\nb'] })).rejects.toThrow('invalid x-request-id header');
    await pool.close();
  });

  it('are not registered, with one warning, when undici has no such table', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => { warnings.push(w.code ?? ''); };
    process.on('warning', onWarning);
    try {
      // No 'Content-Type' entry: another shape.
      const from = fakeUndici(`const r = Object.create(null); r['content-type'] = 'content-type'; module.exports = { headerNameLowerCasedRecord: r }`);
      expect(registerWithUndici(['x-test-name'], from)).toBe(false);
      expect(require(join(dir!, 'node_modules', 'undici', 'lib', 'core', 'constants.js')).headerNameLowerCasedRecord['x-test-name']).toBeUndefined();
      // No undici at all.
      expect(registerWithUndici(['x-test-name'], pathToFileURL(join(tmpdir(), 'nowhere', 'here.js')).href)).toBe(false);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((c) => c === 'RXGATE_UNDICI_NAMES')).toEqual(['RXGATE_UNDICI_NAMES']);
  });

  it('are registered in a table of the expected shape, and only where missing', () => {
    const from = fakeUndici(`const r = Object.create(null); r['Content-Type'] = r['content-type'] = 'content-type'; r['x-kept'] = 'x-kept'; module.exports = { headerNameLowerCasedRecord: r }`);
    expect(registerWithUndici(['x-test-name', 'x-kept'], from)).toBe(true);
    const r = require(join(dir!, 'node_modules', 'undici', 'lib', 'core', 'constants.js')).headerNameLowerCasedRecord as Record<string, string>;
    expect(r['x-test-name']).toBe('x-test-name');
    expect(r['x-kept']).toBe('x-kept');
  });
});
