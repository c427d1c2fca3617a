import { createHash, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { AppOptions, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { checkKeyPair, readPem } from '../config/pem.ts';
import type { UwsModule } from './uws.ts';

/** A certificate served to clients that ask for `serverName` (SNI). */
export interface SniCertificate {
  /** `api.example.com`, or a wildcard `*.example.com` (one label). */
  serverName: string;
  /** PEM file: the certificate, then its intermediates. */
  cert: string;
  /** PEM file: its private key. */
  key: string;
  /** The key file's passphrase, when it is encrypted. */
  passphrase?: string;
}

/** `listen.tls`: the listener speaks HTTPS. */
export interface ListenTlsOptions {
  /** PEM file: the default certificate (for clients without SNI, or a name no `sni` entry has), then its intermediates. */
  cert: string;
  /** PEM file: its private key. */
  key: string;
  /** The key file's passphrase, when it is encrypted. */
  passphrase?: string;
  /**
   * OpenSSL cipher list for TLS 1.2 (TLS 1.3's suites are OpenSSL's own and all modern).
   * @default MODERN_CIPHERS
   */
  ciphers?: string;
  /** More certificates, picked by the name the client sends (SNI). */
  sni?: readonly SniCertificate[];
}

/**
 * TLS 1.2 ciphers: forward secret AEAD only (Mozilla's "intermediate" list
 * without the DHE ones, which need DH parameters). uWS itself refuses
 * anything below TLS 1.2.
 */
export const MODERN_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * The HTTPS side of the edge: reads and checks the certificate files and
 * makes the uWS `SSLApp` with every SNI name.
 *
 * uWS reads certificate files only when an app (or a server name) is made,
 * and routes a request by the SNI name's own router, so each SNI name gets
 * the edge's routes registered again under `app.domain(name)`.
 *
 * A running app keeps the certificates it was made with: uWS 20.30 cannot
 * swap them in place (`removeServerName` frees the name's router while
 * connections made under it still use it). So `reread` checks the files
 * again and says which changed, and the edge then makes a new app with them
 * and listens on the same port (uSockets sets SO_REUSEPORT on Linux, for a
 * fixed port) before closing the old listener: new connections get the new
 * certificates, open ones finish on the old app (`takeOver`).
 */
export class EdgeTls {
  /** Each entry's files as the listener read them, by entry (`listen.tls`, `listen.tls.sni[0] (a.test)`…). */
  private served: ReadonlyMap<string, LoadedPair>;
  /** The files as of the latest `reread`. */
  private latest: ReadonlyMap<string, LoadedPair>;
  /** Entries whose files changed since the listener read them (as of the latest `reread`). */
  pending: readonly string[] = [];

  constructor(readonly options: ListenTlsOptions) {
    this.served = readTls(options);
    this.latest = this.served;
  }

  /** The expiries of the pairs this listener serves (start, or the reload it took over): no file read. */
  get expiries(): CertificateExpiry[] {
    return expiriesOf(this.served);
  }

  /** An `SSLApp` with the default certificate and every SNI one, `register` run for each of its routers. */
  app(uws: UwsModule, register: (app: TemplatedApp) => void): TemplatedApp {
    const ciphers = this.options.ciphers ?? MODERN_CIPHERS;
    const app = uws.SSLApp(appOptions(this.options, ciphers));
    register(app);
    const entries = this.options.sni ?? [];
    for (const sni of entries) {
      app.addServerName(sni.serverName, appOptions(sni, ciphers));
      register(app.domain(sni.serverName));
    }
    if (entries.length === 0) return app;
    // uSockets matches SNI names byte for byte, so `API.example.com` got the default certificate where
    // `api.example.com` has one (RFC 6066: host names compare case-insensitively). A name in another case
    // is added as it came, up to MAX_SNI_ALIASES per app: past that, the default certificate, as before.
    let aliases = 0;
    app.missingServerName(function sniInAnotherCase(hostname) {
      if (aliases >= MAX_SNI_ALIASES) return;
      const sni = sniEntry(entries, hostname);
      // uWS reads the files now, not at start: a pair changed, half written or gone since would crash the process (review RC).
      if (sni === undefined || !usablePair(sni)) return;
      aliases++;
      app.addServerName(hostname, appOptions(sni, ciphers));
      register(app.domain(hostname));
    });
    return app;
  }

  /**
   * Reads the files again and sets `pending` to the entries that changed.
   * Throws a TypeError naming the file when one cannot be read or is no
   * valid certificate and key (`pending` is then left as it was).
   */
  reread(): void {
    const now = readTls(this.options);
    this.latest = now;
    this.pending = [...now].filter(([entry, pair]) => this.served.get(entry)?.digest !== pair.digest).map(([entry]) => entry);
  }

  /**
   * Listens with `next` (an app on the files as last read) where `current`
   * listens, then closes `current`: new connections go to `next`, open ones
   * stay on the old app. Returns the new listen socket, or null (nothing
   * changed) when the port cannot be shared: it was 0, or the system refuses.
   */
  takeOver(uws: UwsModule, next: TemplatedApp, current: us_listen_socket, at: { host: string; port: number }): us_listen_socket | null {
    let socket: us_listen_socket | false = false;
    // uWS calls back before listen returns.
    next.listen(at.host, at.port, (s) => { socket = s; });
    if (socket === false) {
      closeApp(next);
      return null;
    }
    uws.us_listen_socket_close(current);
    this.served = this.latest;
    this.pending = [];
    return socket;
  }
}

/** How many SNI names in another case than their entry's one app adds (each is a TLS context and a router). */
export const MAX_SNI_ALIASES = 32;

/** The entry whose name is `hostname` in another case (exact, or `*.domain` for one label), for a name uSockets did not match. */
export function sniEntry(entries: readonly SniCertificate[], hostname: string): SniCertificate | undefined {
  const name = hostname.toLowerCase();
  const rest = name.slice(name.indexOf('.') + 1);
  // An exact name before a wildcard, whatever their order, as uSockets picks them for a name in the entry's case.
  return entries.find((s) => s.serverName.toLowerCase() === name)
    ?? entries.find((s) => { const entry = s.serverName.toLowerCase(); return entry.startsWith('*.') && name.indexOf('.') > 0 && entry.slice(2) === rest; });
}

/** Whether an entry's files, as they are now, are a certificate and key uWS can load (`checkedPair`). */
function usablePair(pair: SniCertificate): boolean {
  try {
    checkedPair(pair.serverName, pair);
    return true;
  } catch {
    return false;
  }
}

/** A pair's files read and loaded into Node's OpenSSL; throws naming `where` and the file. */
function checkedPair(where: string, pair: { cert: string; key: string; passphrase?: string }): { cert: Buffer; key: Buffer } {
  const cert = readPem(`${where}.cert`, pair.cert);
  const key = readPem(`${where}.key`, pair.key);
  checkKeyPair(where, { cert, key, passphrase: pair.passphrase, files: pair });
  return { cert, key };
}

/** Closes an app and every connection it has (both builds have `close`, their typings not all). */
export function closeApp(app: TemplatedApp): void {
  (app as { close?: () => void }).close?.();
}

function appOptions(o: { cert: string; key: string; passphrase?: string }, ciphers: string): AppOptions {
  return {
    cert_file_name: o.cert, key_file_name: o.key, ssl_ciphers: ciphers,
    ...(o.passphrase !== undefined ? { passphrase: o.passphrase } : {}),
  };
}

/** One entry's files as read: a digest of their bytes, and its certificate's expiry (null: no parsable leaf). */
export interface LoadedPair {
  digest: string;
  expiry: CertificateExpiry | null;
}

/**
 * Reads every certificate and key file and checks each pair with Node's
 * OpenSSL (uWS would only say "App construction failed", or print to
 * stdout and serve nothing for that name). Returns, by entry, a digest of
 * its bytes and its leaf's expiry from the same bytes.
 */
export function readTls(options: ListenTlsOptions): Map<string, LoadedPair> {
  const digests = new Map<string, LoadedPair>();
  const pairs: Array<[string, { cert: string; key: string; passphrase?: string }]> = [
    ['listen.tls', options],
    ...(options.sni ?? []).map((s, i) => [`listen.tls.sni[${i}] (${s.serverName})`, s] as [string, SniCertificate]),
  ];
  pairs.forEach(([where, pair], i) => {
    const { cert, key } = checkedPair(where, pair);
    const digest = createHash('sha256').update(cert).update('\0').update(key).update('\0').update(pair.passphrase ?? '').digest('base64');
    // The gauge's entry names the sni entry by its index alone (its server_name label has the name).
    const expiry = leafExpiry(i === 0 ? 'listen.tls' : `listen.tls.sni[${i - 1}]`, i === 0 ? '' : (pair as SniCertificate).serverName, cert);
    digests.set(where, { digest, expiry });
  });
  if (options.ciphers !== undefined) {
    try {
      createSecureContext({ ciphers: options.ciphers });
    } catch (err) {
      throw new TypeError(`listen.tls.ciphers: ${(err as Error).message}`, { cause: err });
    }
  }
  return digests;
}

/** When one `listen.tls` entry's certificate stops being valid. */
export interface CertificateExpiry {
  /** `listen.tls`, or `listen.tls.sni[0]`. */
  entry: string;
  /** The `sni` entry's name; '' for the default certificate. */
  serverName: string;
  /** The leaf certificate's notAfter, in ms since the epoch. */
  notAfter: number;
}

/**
 * Each entry's leaf certificate's notAfter (the first certificate in its PEM
 * file), from the files as `readTls` reads them (it throws as it does). What
 * a listener serves is `EdgeTls.expiries`, read from the bytes it loaded.
 */
export function certificateExpiries(options: ListenTlsOptions): CertificateExpiry[] {
  return expiriesOf(readTls(options));
}

function leafExpiry(entry: string, serverName: string, pem: Buffer): CertificateExpiry | null {
  try {
    return { entry, serverName, notAfter: Date.parse(new X509Certificate(pem).validTo) };
  } catch {
    return null;
  }
}

function expiriesOf(pairs: ReadonlyMap<string, LoadedPair>): CertificateExpiry[] {
  return [...pairs.values()].flatMap((p) => (p.expiry === null ? [] : [p.expiry]));
}
