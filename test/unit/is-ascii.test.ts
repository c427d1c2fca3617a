import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAscii, NON_ASCII } from '../../lib/headers.ts';

describe('isAscii', () => {
  it('answers what the NON_ASCII expression answers, for short texts (a loop) and long ones (the expression)', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 })), (text) => {
      expect(isAscii(text)).toBe(!NON_ASCII.test(text));
    }), { numRuns: 2000 });
  });

  it('takes 0x7f as ASCII and 0x80 as not, at every length around the switch to the expression', () => {
    for (const n of [0, 1, 31, 32, 33, 64]) {
      expect(isAscii('a'.repeat(n))).toBe(true);
      if (n === 0) continue;
      expect(isAscii('a'.repeat(n - 1) + '\x7f')).toBe(true);
      expect(isAscii('a'.repeat(n - 1) + '\x80')).toBe(false);
      expect(isAscii('\u00e9' + 'a'.repeat(n - 1))).toBe(false);
    }
  });
});
