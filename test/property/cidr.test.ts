import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { CidrList } from '../../lib/stages/ip-filter/cidr.ts';
import { clientAddress } from '../../lib/stages/ip-filter/client-address.ts';

/**
 * CidrList against a reference written another way: every address and
 * network as a 128-bit BigInt (IPv4 as its IPv4-mapped IPv6 address), and
 * membership as "the top `prefix` bits are equal".
 */

function bigOf(text: string): bigint {
  let bytes = ipaddr.parse(text).toByteArray();
  if (bytes.length === 4) bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...bytes];
  return bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n);
}

const MAPPED = 0xffffn << 32n;

/** IPv4 clients (mapped ones too) are in IPv4 networks and IPv6 networks inside ::ffff:0:0/96 only, as in nginx. */
function inReference(address: string, cidrs: ReadonlyArray<[string, number]>): boolean {
  const a = bigOf(address);
  const isV4 = a >> 32n === 0xffffn;
  return cidrs.some(([base, prefix]) => {
    const v4Net = ipaddr.parse(base).kind() === 'ipv4';
    if (isV4 && !v4Net && (prefix < 96 || bigOf(base) >> 32n !== MAPPED >> 32n)) return false;
    const p = BigInt(v4Net ? prefix + 96 : prefix);
    const shift = 128n - p;
    return a >> shift === bigOf(base) >> shift;
  });
}

const v4 = fc.ipV4();
const v6 = fc.ipV6();
const network = fc.oneof(
  fc.tuple(v4, fc.integer({ min: 0, max: 32 })),
  fc.tuple(v6, fc.integer({ min: 0, max: 128 })),
);

/** An address near a network (its base with the low bits changed), so that hits are common. */
function near([base]: [string, number], low: number): string {
  const a = ipaddr.parse(base);
  const bytes = a.toByteArray();
  bytes[bytes.length - 1] = low & 0xff;
  if (low > 255) bytes[bytes.length - 2] = (low >> 8) & 0xff;
  return ipaddr.fromByteArray(bytes).toString();
}

describe('CidrList membership', () => {
  it('agrees with a BigInt reference over random networks and addresses, IPv4, IPv6 and mapped', () => {
    fc.assert(fc.property(
      fc.array(network, { maxLength: 6 }),
      fc.array(fc.oneof(v4, v6, fc.tuple(fc.nat(5), fc.nat(65535)).map(([i, low]) => ({ near: i, low }))), { minLength: 1, maxLength: 20 }),
      fc.boolean(),
      (nets, probes, mapped) => {
        const list = new CidrList(nets.map(([b, p]) => `${b}/${p}`));
        for (const probe of probes) {
          let address = typeof probe === 'string' ? probe : nets.length > 0 ? near(nets[probe.near % nets.length]!, probe.low) : '192.0.2.1';
          if (mapped && ipaddr.parse(address).kind() === 'ipv4') address = `::ffff:${address}`;
          expect(list.has(address), `${address} in ${nets.map(([b, p]) => `${b}/${p}`).join(' ')}`).toBe(inReference(address, nets));
        }
      },
    ), { numRuns: 500 });
  });
});

describe('the client address behind trusted proxies', () => {
  it('is the rightmost untrusted hop of any chain, else its leftmost hop', () => {
    const trusted = new CidrList(['10.0.0.0/8']);
    const hop = fc.oneof(
      fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => ({ ip: `10.0.${a}.${b}`, trusted: true })),
      fc.tuple(fc.integer({ min: 1, max: 9 }), fc.nat(255)).map(([a, b]) => ({ ip: `${a}.1.1.${b}`, trusted: false })),
    );
    fc.assert(fc.property(fc.array(hop, { minLength: 1, maxLength: 8 }), (chain) => {
      const xff = chain.map((h) => h.ip).join(', ');
      const untrusted = chain.filter((h) => !h.trusted);
      const expected = untrusted.length > 0 ? untrusted[untrusted.length - 1]!.ip : chain[0]!.ip;
      expect(clientAddress('10.9.9.9', xff, trusted)).toBe(expected);
      // An untrusted peer's chain is never read.
      expect(clientAddress('192.0.2.1', xff, trusted)).toBe('192.0.2.1');
    }));
  });
});
