import { describe, expect, it } from 'vitest';
import { fnv1a, fnv1aBytes } from '../../lib/hash.ts';

describe('fnv1a', () => {
  it('gives the published FNV-1a 32-bit values, as signed integers', () => {
    // Test vectors from the FNV reference (draft-eastlake-fnv): "", "a", "foobar".
    expect(fnv1a('') >>> 0).toBe(0x811c9dc5);
    expect(fnv1a('a') >>> 0).toBe(0xe40c292c);
    expect(fnv1a('foobar') >>> 0).toBe(0xbf9cf968);
    expect(fnv1a('foobar')).toBe(0xbf9cf968 | 0);
  });

  it('over bytes agrees with the string form for ASCII, and reads only the first n bytes', () => {
    const key = 'echo GET http://127.0.0.1:8080/bench?r=main-1';
    const bytes = Buffer.from(`${key}trailing`);
    expect(fnv1aBytes(bytes, key.length)).toBe(fnv1a(key));
    expect(fnv1aBytes(bytes, 0)).toBe(fnv1a(''));
  });
});
