import { canonicalAddress, CidrList, parseAddress } from './cidr.ts';

/**
 * The client's address behind trusted proxies (nginx's `set_real_ip_from`
 * with `real_ip_recursive on`, Envoy's `xff_trusted_cidrs`): when the
 * socket peer is in `trusted`, `X-Forwarded-For` is read right to left,
 * skipping hops that are trusted too, and the first one that is not is the
 * client. Each proxy appends the address it saw, so entries left of the
 * first untrusted hop were written by the client and are never believed.
 *
 * - The peer is not trusted, or sent no `X-Forwarded-For`: the peer.
 * - Every hop is trusted: the leftmost one (as nginx does).
 * - A hop that is not an address (`unknown`, garbage): the trusted hop
 *   right of it, the nearest address that can be vouched for.
 *
 * Addresses come out canonical (`::ffff:10.0.0.1` is `10.0.0.1`; IPv6 per
 * RFC 5952), so one client has one spelling in rate-limit keys and logs.
 */
export class ClientAddressResolver {
  private readonly words = new Uint32Array(4);
  // The same peer sends request after request: its canonical text and
  // trust are kept for the last one seen.
  private lastPeer = '';
  private lastCanonical = '';
  private lastTrusted = false;

  constructor(private readonly trusted: CidrList) {}

  /** Whether the peer of the last `resolve` is a trusted proxy. */
  get peerTrusted(): boolean {
    return this.lastTrusted;
  }

  resolve(peer: string, forwardedFor: string | undefined): string {
    if (peer !== this.lastPeer) {
      this.lastPeer = peer;
      this.lastCanonical = canonicalAddress(peer) ?? peer;
      this.lastTrusted = this.trusted.hasParsed(parseAddress(peer, this.words), this.words);
    }
    if (!this.lastTrusted || forwardedFor === undefined) return this.lastCanonical;
    return this.walk(forwardedFor, this.lastCanonical);
  }

  private walk(xff: string, peer: string): string {
    let nearest = peer;
    let end = xff.length;
    while (end > 0) {
      const comma = xff.lastIndexOf(',', end - 1);
      const entry = hostOf(xff.slice(comma + 1, end).trim());
      end = comma < 0 ? 0 : comma;
      if (entry === '') continue;
      const kind = parseAddress(entry, this.words);
      if (kind === 0) return nearest;
      // A dotted address is its own canonical text (not parsed again); an IPv6 one's is kept with its parse (cidr.ts).
      const canonical = entry.includes(':') ? canonicalAddress(entry) ?? entry : entry;
      if (!this.trusted.hasParsed(kind, this.words)) return canonical;
      nearest = canonical;
    }
    return nearest;
  }
}

/** Strips what some proxies add around an address: `[v6]`, `[v6]:port`, `v4:port`. */
export function hostOf(entry: string): string {
  if (entry.charCodeAt(0) === 91 /* [ */) {
    const close = entry.indexOf(']');
    return close < 0 ? entry : entry.slice(1, close);
  }
  const colon = entry.indexOf(':');
  return colon > 0 && colon === entry.lastIndexOf(':') ? entry.slice(0, colon) : entry;
}

/** `resolve` as a function, for one-off use and tests. */
export function clientAddress(peer: string, forwardedFor: string | undefined, trusted: CidrList): string {
  return new ClientAddressResolver(trusted).resolve(peer, forwardedFor);
}
