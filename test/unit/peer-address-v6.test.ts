import fc from 'fast-check';
import type { HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { addressText, peerAddressOf } from '../../lib/server/remote-address.ts';
import { canonicalAddress } from '../../lib/stages/ip-filter/cidr.ts';

/**
 * peerAddressOf writes an IPv6 peer's RFC 5952 text from its 16 bytes (review RI, M2: the parse of uWS's
 * text through cidr.ts's 1,024-entry cache cost ~2.5 µs a request past 1,024 clients). It must be the
 * spelling the ip filter, trusted proxies and rate-limit keys use for the same address (canonicalAddress).
 */
const peer = (bytes: Uint8Array): string => peerAddressOf({ getRemoteAddress: () => bytes.slice().buffer } as unknown as HttpResponse);

describe('peerAddressOf for an IPv6 peer', () => {
  it('is canonicalAddress of uWS\'s text, for any 16 bytes (zero runs weighted in)', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
      const bytes = new Uint8Array(16);
      groups.forEach((g, i) => { bytes[2 * i] = g >> 8; bytes[2 * i + 1] = g & 0xff; });
      const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
      const expected = mapped ? `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}` : canonicalAddress(addressText(bytes));
      expect(peer(bytes)).toBe(expected);
    }), { numRuns: 3000 });
  });

  it.each([
    ['::', new Uint8Array(16)],
    ['::1', Uint8Array.from([...new Array(15).fill(0), 1])],
    ['2001:db8::1:0:0:1', Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1])],
    ['2001:db8:0:1:1:1:1:1', Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])],
  ])('writes %s', (text, bytes) => {
    expect(peer(bytes)).toBe(text);
  });
});
