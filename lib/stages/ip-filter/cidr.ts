import ipaddr from 'ipaddr.js';

/**
 * CIDR lists compiled once into typed arrays, and an address parser that
 * writes into caller-owned words: checking a dotted IPv4 address allocates
 * nothing. IPv6 text goes through ipaddr.js (zone ids, `::` compression,
 * embedded IPv4 — the corners a hand-written parser gets wrong); an
 * IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is its IPv4 address, in a
 * list and in a request alike.
 */

/** 4 for IPv4 (in `out[0]`), 6 for IPv6 (in `out[0..3]`, most significant first), 0 when `text` is no address. */
export type AddressKind = 0 | 4 | 6;

/** Parses a strict dotted-quad (no leading zeros, no port) into one word; -1 when it is not one. */
function parseV4(text: string): number {
  const n = text.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // a leading zero: octal to some parsers, refused
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

/** Parses `text` into `out`; see `AddressKind`. */
export function parseAddress(text: string, out: Uint32Array): AddressKind {
  const v4 = parseV4(text);
  if (v4 >= 0) {
    out[0] = v4;
    return 4;
  }
  if (!text.includes(':')) return 0;
  const known = v6Of(text);
  if (known === null) return 0;
  out[0] = known.w0;
  out[1] = known.w1;
  out[2] = known.w2;
  out[3] = known.w3;
  return known.kind;
}

function wordsOf(parts: readonly number[], out: Uint32Array): AddressKind {
  if (parts[0] === 0 && parts[1] === 0 && parts[2] === 0 && parts[3] === 0 && parts[4] === 0 && parts[5] === 0xffff) {
    out[0] = ((parts[6]! << 16) | parts[7]!) >>> 0;
    return 4;
  }
  for (let i = 0; i < 4; i++) out[i] = ((parts[2 * i]! << 16) | parts[2 * i + 1]!) >>> 0;
  return 6;
}

/**
 * The canonical text of an address (IPv4 dotted, IPv6 per RFC 5952, mapped
 * IPv6 as IPv4, without a zone id), or null when `text` is none. A zone id
 * (`fe80::1%eth0`) names an interface of the host that wrote it and nothing
 * of the client: kept, each spelling (`%a`, `%b`…) was one more client in
 * rate-limit keys and logs (audit A15).
 */
export function canonicalAddress(text: string): string | null {
  if (parseV4(text) >= 0) return text;
  if (!text.includes(':')) return null;
  return v6Of(text)?.canonical ?? null;
}

/** An IPv6 text worked out: its words (`parseAddress`'s), its kind (4 when mapped) and canonical text. */
interface V6Parsed { readonly kind: AddressKind; readonly canonical: string; readonly w0: number; readonly w1: number; readonly w2: number; readonly w3: number }

/**
 * IPv6 texts seen lately (peers, X-Forwarded-For hops, lists), in this
 * process: ipaddr.js parses one in ~1.3 µs, where a dotted IPv4 address
 * costs tens of ns, and a client's next request repeats its text (audit
 * A15: a two-hop chain with an IPv6 client cost ~2.8 µs a request, parsed
 * twice). Texts that are no address are not kept. Bounded (~500 B an
 * entry, ~0.5 MB full), cleared when full.
 */
const v6Seen = new Map<string, V6Parsed>();
const V6_SEEN_MAX = 1024;
/** Longer texts are parsed, not kept: 45 characters is the longest address (`ffff:…:255.255.255.255`); a zone id may be any length. */
const V6_KEPT_LENGTH = 64;
const v6Words = new Uint32Array(4);

/** Forgets the IPv6 texts kept (for tests: a cold answer to compare a kept one with). */
export function forgetSeenAddresses(): void {
  v6Seen.clear();
}

function v6Of(text: string): V6Parsed | null {
  const seen = v6Seen.get(text);
  if (seen !== undefined) return seen;
  let a: ipaddr.IPv6;
  try {
    a = ipaddr.IPv6.parse(text);
  } catch {
    return null;
  }
  const kind = wordsOf(a.parts, v6Words);
  const canonical = kind === 4 ? a.toIPv4Address().toString() : a.zoneId === undefined ? a.toRFC5952String() : new ipaddr.IPv6(a.parts).toRFC5952String();
  const parsed = { kind, canonical, w0: v6Words[0]!, w1: v6Words[1]!, w2: v6Words[2]!, w3: v6Words[3]! };
  if (text.length > V6_KEPT_LENGTH) return parsed;
  if (v6Seen.size >= V6_SEEN_MAX) v6Seen.clear();
  // A copy as the key: `text` is often a slice of an X-Forwarded-For value, which V8 would keep alive with it.
  v6Seen.set(Buffer.from(text, 'latin1').toString('latin1'), parsed);
  return parsed;
}

/** True when `text` is an address or a CIDR ipaddr.js accepts (for schemas). */
export function isCidr(text: string): boolean {
  return ipaddr.isValidCIDR(text) || ipaddr.isValid(text);
}

/**
 * For a CIDR whose address has bits set past its prefix (`10.0.0.1/8`),
 * the network it stands for (`10.0.0.0/8`); null otherwise.
 */
export function hostBitsSet(text: string): string | null {
  if (!text.includes('/') || !ipaddr.isValidCIDR(text)) return null;
  const [addr, bits] = ipaddr.parseCIDR(text);
  const network = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  return network.toNormalizedString() === addr.toNormalizedString() ? null : `${network.toString()}/${bits}`;
}

function mask(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * A compiled list of CIDRs (`10.0.0.0/8`, `2001:db8::/32`, a bare address
 * for one host). `has` is a loop over typed arrays.
 */
export class CidrList {
  /** IPv4 networks and masks, one word each. */
  private readonly v4Net: Uint32Array;
  private readonly v4Mask: Uint32Array;
  /** IPv6 networks then masks, four words each. */
  private readonly v6: Uint32Array;
  private readonly v6Count: number;
  readonly size: number;
  /** For `has(text)`: the words of the address being tested. */
  private readonly scratch = new Uint32Array(4);

  /** @throws TypeError naming `where[i]` for an entry that is not an address or a CIDR. */
  constructor(cidrs: readonly string[], where = 'cidrs') {
    const v4: Array<[number, number]> = [];
    const v6: Array<[Uint32Array, number]> = [];
    const words = new Uint32Array(4);
    cidrs.forEach((text, i) => {
      let addr: ipaddr.IPv4 | ipaddr.IPv6;
      let bits: number;
      try {
        [addr, bits] = text.includes('/') ? ipaddr.parseCIDR(text) : ((a) => [a, a.kind() === 'ipv4' ? 32 : 128] as const)(ipaddr.parse(text));
      } catch {
        throw new TypeError(`${where}[${i}]: ${JSON.stringify(text)} is not an IP address or CIDR`);
      }
      if (addr.kind() === 'ipv4') {
        v4.push([(addr as ipaddr.IPv4).octets.reduce((v, o) => v * 256 + o, 0), bits]);
        return;
      }
      const parts = (addr as ipaddr.IPv6).parts;
      if (wordsOf(parts, words) === 4 && bits >= 96) {
        v4.push([words[0]!, bits - 96]);
        return;
      }
      // An IPv6 network (`::/0` too) never holds IPv4 clients, mapped or not, as in nginx: list 0.0.0.0/0 for those.
      for (let w = 0; w < 4; w++) words[w] = ((parts[2 * w]! << 16) | parts[2 * w + 1]!) >>> 0;
      v6.push([words.slice(), bits]);
    });
    this.size = cidrs.length;
    this.v4Net = new Uint32Array(v4.length);
    this.v4Mask = new Uint32Array(v4.length);
    v4.forEach(([net, bits], i) => {
      this.v4Mask[i] = mask(bits);
      this.v4Net[i] = (net & this.v4Mask[i]!) >>> 0;
    });
    this.v6Count = v6.length;
    this.v6 = new Uint32Array(v6.length * 8);
    v6.forEach(([net, bits], i) => {
      for (let w = 0; w < 4; w++) {
        const m = mask(bits - 32 * w);
        this.v6[i * 8 + 4 + w] = m;
        this.v6[i * 8 + w] = (net[w]! & m) >>> 0;
      }
    });
  }

  /** Whether the address `text` is in the list (false for anything that is not an address). */
  has(text: string): boolean {
    return this.hasParsed(parseAddress(text, this.scratch), this.scratch);
  }

  /** Whether the parsed address (`parseAddress`'s result and words) is in the list. */
  hasParsed(kind: AddressKind, words: Uint32Array): boolean {
    if (kind === 4) {
      const a = words[0]!;
      const nets = this.v4Net;
      const masks = this.v4Mask;
      for (let i = 0; i < nets.length; i++) if (((a & masks[i]!) >>> 0) === nets[i]) return true;
      return false;
    }
    if (kind === 6) {
      const t = this.v6;
      for (let i = 0; i < this.v6Count; i++) {
        const o = i * 8;
        if (((words[0]! & t[o + 4]!) >>> 0) === t[o] && ((words[1]! & t[o + 5]!) >>> 0) === t[o + 1]
          && ((words[2]! & t[o + 6]!) >>> 0) === t[o + 2] && ((words[3]! & t[o + 7]!) >>> 0) === t[o + 3]) return true;
      }
    }
    return false;
  }
}
