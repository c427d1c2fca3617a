import { createHash, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { buildConnector, type Pool } from 'undici';
import { MAX_TIMER_MS } from '../config/common.ts';
import { checkKeyPair, readPem } from '../config/pem.ts';
import { parseDuration, type Duration } from '../duration.ts';
import { BadGatewayError } from '../errors.ts';
import type { UpstreamTlsOptions } from './service-options.ts';

/** What a service's pools get as undici's `connect`: a connector (the SNI name is the upstream's, never the request's Host). */
export type UpstreamConnect = NonNullable<Pool.Options['connect']>;

/** The TLS keys of a service's options (`tls`, and the older `tlsVerify`/`tlsCa`). */
export interface UpstreamTlsKeys {
  tlsVerify?: boolean;
  tlsCa?: string;
  tls?: UpstreamTlsOptions;
  /** Time allowed to open a connection (TCP and TLS). @default '10s' */
  connectTimeout?: Duration;
}

/**
 * undici's `connect` for a service's https upstreams, built once per service
 * (files read and checked now, so a bad path or a key that does not match
 * its certificate is a TypeError at build time, not a 502 per request).
 *
 * Pins are checked on each new connection in a connector around undici's
 * own, after the handshake: Node's `checkServerIdentity` would do it only
 * when `rejectUnauthorized` is on, and pinning a self-signed upstream is a
 * reason to pin.
 */
export function upstreamConnect(service: string, keys: UpstreamTlsKeys): UpstreamTls {
  const tls = resolveTls(service, keys);
  const pinned = pinnedConnector(service, tls);
  return { connect: pinned, connector: pinned };
}

/** A service's TLS, read once: what its https pools get, and the same as a connector for its `wss://` upstreams. */
export interface UpstreamTls {
  /** undici's `connect` for the pools. */
  connect: UpstreamConnect;
  /**
   * A connector with the same CA, client certificate, SNI name and pins, for
   * `ws`, which opens its own sockets: the connection is made and checked
   * before any byte is sent.
   */
  connector: buildConnector.connector;
}

interface ResolvedTls {
  options: { timeout: number; rejectUnauthorized: boolean; ca?: Buffer; cert?: Buffer; key?: Buffer; passphrase?: string };
  pins: Pins | null;
  servername: string | undefined;
}

/** The files read and checked now, so a bad path or a key that does not match its certificate is a TypeError at build time. */
function resolveTls(service: string, keys: UpstreamTlsKeys): ResolvedTls {
  const tls = keys.tls ?? {};
  if (tls.ca !== undefined && keys.tlsCa !== undefined) throw new TypeError(`service ${service}: set tls.ca or tlsCa, not both`);
  if (tls.rejectUnauthorized !== undefined && keys.tlsVerify !== undefined) throw new TypeError(`service ${service}: set tls.rejectUnauthorized or tlsVerify, not both`);
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError(`service ${service} tls: a client certificate needs both cert and key`);
  const caFile = tls.ca ?? keys.tlsCa;
  const ca = caFile !== undefined ? readPem(`service ${service} ${tls.ca !== undefined ? 'tls.ca' : 'tlsCa'}`, caFile) : undefined;
  const client = tls.cert !== undefined && tls.key !== undefined ? {
    cert: readPem(`service ${service} tls.cert`, tls.cert), key: readPem(`service ${service} tls.key`, tls.key),
    passphrase: tls.passphrase, ca, files: { cert: tls.cert, key: tls.key },
  } : null;
  if (client !== null) checkKeyPair(`service ${service} tls`, client, 'client certificate and key');
  const timeout = parseDuration(keys.connectTimeout ?? '10s', `service ${service} connectTimeout`);
  if (!(timeout > 0 && timeout <= MAX_TIMER_MS)) throw new TypeError(`service ${service} connectTimeout: expected more than 0 and at most 2^31-1 ms, got ${timeout}`);
  const options = {
    timeout, // undici's connector, TCP and TLS: UND_ERR_CONNECT_TIMEOUT, 504 "upstream connect timed out"
    rejectUnauthorized: tls.rejectUnauthorized ?? keys.tlsVerify ?? true,
    ...(ca !== undefined ? { ca } : {}),
    ...(client !== null ? { cert: client.cert, key: client.key } : {}),
    ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
  };
  return { options, pins: tls.pin === undefined ? null : new Pins(tls.pin), servername: tls.servername };
}

/**
 * undici's connector with the SNI name fixed, and the pins checked after the
 * handshake. The name is `tls.servername`, else the upstream URL's host
 * (none for an address), never the one undici takes from a request's `Host`:
 * on a `preserveHost` route that is the client's, so any client could pick
 * the name the upstream's certificate is checked against, and five requests
 * with a made-up Host opened the service's breaker for everyone (502 "upstream
 * TLS handshake failed", retryable). nginx's `proxy_ssl_name` is the
 * upstream's name by default too.
 */
function pinnedConnector(service: string, { options, pins, servername }: ResolvedTls): buildConnector.connector {
  // A resumed TLS session carries no peer certificate (getPeerX509Certificate() is undefined), so with
  // undici's session cache every connection after a pool's first answered 502 "matches none of the pinned
  // keys" and ejected the instance. And a TLS 1.2 session is cached before the pin check runs, so trusting
  // a resumed one could resume a session whose certificate failed it: a pinned service does full handshakes.
  const connect = buildConnector(pins === null ? options : { ...options, maxCachedSessions: 0 });
  return function pinnedConnect(opts, callback) {
    // Without one, undici's connect takes the name from opts.host, the upstream's own.
    const { servername: _fromHostHeader, ...upstream } = opts;
    connect(servername === undefined ? upstream : { ...upstream, servername }, (err, socket) => {
      if (err !== null) {
        callback(err, null);
        return;
      }
      const peer = pins === null ? undefined : (socket as Partial<TLSSocket>).getPeerX509Certificate?.();
      if (pins !== null && (peer === undefined || !pins.matches(peer))) {
        socket.destroy();
        const cause = Object.assign(new Error(peer === undefined
          ? `service ${service} pins certificates, and ${opts.protocol}//${opts.hostname}:${opts.port} is not https`
          : `service ${service}: the certificate of ${opts.hostname}:${opts.port} (${spkiPin(peer)}, ${peer.fingerprint256}) matches no pin`), { code: 'ERR_TLS_CERT_PIN_MISMATCH' });
        callback(new BadGatewayError('upstream certificate matches none of the pinned keys', { cause, sent: false }), null);
        return;
      }
      callback(null, socket);
    });
  };
}

/** A certificate's public key pin: `sha256/` and the base64 SHA-256 of its SubjectPublicKeyInfo (DER). */
export function spkiPin(cert: X509Certificate): string {
  return `sha256/${createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64')}`;
}

/** A service's pins: public key pins and certificate fingerprints, matched against the upstream's own certificate. */
export class Pins {
  private readonly keys = new Set<string>();
  private readonly fingerprints = new Set<string>();

  constructor(pins: readonly string[]) {
    for (const pin of pins) {
      if (pin.startsWith('sha256/')) this.keys.add(pin);
      else if (/^[0-9A-Fa-f:]+$/.test(pin) && pin.replace(/:/g, '').length === 64) this.fingerprints.add(pin.replace(/:/g, '').toUpperCase());
      else throw new TypeError(`pin ${JSON.stringify(pin)}: expected sha256/<base64> or a SHA-256 fingerprint in hex`);
    }
  }

  /** Whether the leaf certificate `cert` is pinned (by its key or its fingerprint). */
  matches(cert: X509Certificate): boolean {
    if (this.fingerprints.size > 0 && this.fingerprints.has(cert.fingerprint256.replace(/:/g, ''))) return true;
    return this.keys.size > 0 && this.keys.has(spkiPin(cert));
  }
}
