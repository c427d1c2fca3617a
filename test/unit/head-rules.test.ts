import { describe, expect, it } from 'vitest';
import type { HttpRequest } from 'uWebSockets.js';
import { asksClose, lastHeadFieldBytes, lastHeadFields, readHead } from '../../lib/server/head-rules.ts';

/** A stand-in for uWS's request: `forEach` over lower-case names, in order. */
function head(lines: Array<[string, string]>): HttpRequest {
  return { forEach: (cb: (k: string, v: string) => void) => { for (const [k, v] of lines) cb(k, v); } } as unknown as HttpRequest;
}

function check(lines: Array<[string, string]>): { problem: string | null; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  return { problem: readHead(head(lines), headers), headers };
}

describe('request head rules', () => {
  it('passes an ordinary head and joins repeated headers as before', () => {
    const { problem, headers } = check([['host', 'gw'], ['accept', 'a'], ['accept', 'b'], ['cookie', 'x=1'], ['cookie', 'y=2'], ['content-length', '12']]);
    expect(problem).toBeNull();
    expect(headers).toEqual({ host: 'gw', accept: 'a, b', cookie: 'x=1; y=2', 'content-length': '12' });
    expect(check([['host', 'gw'], ['transfer-encoding', 'chunked']]).problem).toBeNull();
    expect(check([['host', 'gw'], ['transfer-encoding', ' Chunked ']]).problem).toBeNull();
  });

  it.each([
    [[['content-length', '0'], ['content-length', '38']], /Content-Length is repeated/],
    [[['content-length', '5'], ['content-length', '5']], /Content-Length is repeated/],
    [[['content-length', '5, 5']], /not a decimal/],
    [[['content-length', '-1']], /not a decimal/],
    [[['content-length', '3'], ['transfer-encoding', 'chunked']], /together with Transfer-Encoding/],
    [[['transfer-encoding', 'chunked'], ['content-length', '3']], /together with Transfer-Encoding/],
    [[['transfer-encoding', 'gzip']], /Transfer-Encoding other/],
    [[['transfer-encoding', 'gzip, chunked']], /Transfer-Encoding other/],
    [[['transfer-encoding', 'chunked'], ['transfer-encoding', 'chunked']], /Transfer-Encoding other/],
    [[['host', 'a'], ['host', 'b']], /Host is repeated/],
    [[['x-a', 'a\rb']], /CR, LF or NUL/],
    [[['x-a', 'a\nb']], /CR, LF or NUL/],
    [[['x-a', 'a\0b']], /CR, LF or NUL/],
  ] as Array<[Array<[string, string]>, RegExp]>)('refuses %j', (lines, message) => {
    expect(check(lines).problem).toMatch(message);
  });

  it('applies every rule but the control-byte scan when the uWS build refused such heads already', () => {
    const lines: Array<[string, string]> = [['host', 'gw'], ['accept', 'a'], ['accept', 'b'], ['x-a', 'a\rb']];
    const headers: Record<string, string> = {};
    expect(readHead(head(lines), headers, true)).toBeNull();
    expect(headers).toEqual({ host: 'gw', accept: 'a, b', 'x-a': 'a\rb' });
    expect(lastHeadFields()).toBe(4);
    expect(readHead(head([['content-length', '1'], ['content-length', '1']]), {}, true)).toMatch(/Content-Length is repeated/);
    expect(readHead(head([['host', 'a'], ['host', 'b']]), {}, true)).toMatch(/Host is repeated/);
    expect(readHead(head([['transfer-encoding', 'gzip']]), {}, true)).toMatch(/Transfer-Encoding other/);
    expect(readHead(head(lines), {})).toMatch(/CR, LF or NUL/);
  });

  it('starts each head afresh', () => {
    expect(check([['host', 'a'], ['host', 'b']]).problem).not.toBeNull();
    expect(check([['host', 'a']]).problem).toBeNull();
  });

  it('counts the header lines of the last head and their bytes as name: value CRLF, repeated ones line by line', () => {
    check([['host', 'gw'], ['accept', 'a'], ['accept', 'bb']]);
    expect(lastHeadFields()).toBe(3);
    expect(lastHeadFieldBytes()).toBe((4 + 2 + 4) + (6 + 1 + 4) + (6 + 2 + 4));
    check([]);
    expect(lastHeadFields()).toBe(0);
    expect(lastHeadFieldBytes()).toBe(0);
  });
});

describe('asksClose', () => {
  it('finds the close option in any case, alone or among others, and nothing else', () => {
    for (const v of ['close', 'Close', 'CLOSE', 'keep-alive, close', 'close,TE', 'te ,\tclose\t, x', 'Upgrade, Close']) expect(asksClose(v), v).toBe(true);
    for (const v of ['keep-alive', 'Keep-Alive', 'closed', 'x-close', 'close-x', 'clos', 'xxxxx', 'upgrade', '', 'te, close-it']) expect(asksClose(v), v).toBe(false);
  });
});
