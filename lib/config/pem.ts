import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/**
 * The PEM files a config names (`listen.tls`, a service's `tls`), read and
 * checked when the config is built, so a bad path or a key that does not
 * match its certificate is a TypeError naming the key, not a failed
 * handshake later.
 */

/** The file's bytes; a TypeError `<key>: cannot read <path> (<why>)` when it cannot be read. */
export function readPem(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TypeError(`${key}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

/** A certificate, its key, and the key's passphrase: the bytes, and the files they came from. */
export interface KeyPair {
  cert: Buffer;
  key: Buffer;
  passphrase?: string | undefined;
  /** CA certificates to check along (a client certificate's service). */
  ca?: Buffer | undefined;
  files: { cert: string; key: string };
}

/**
 * Checks that the certificate and key make a usable pair, with Node's
 * OpenSSL; a TypeError `<where>: <cert> and <key> are no usable <what> (<why>)`
 * when they do not.
 */
export function checkKeyPair(where: string, pair: KeyPair, what = 'certificate and key'): void {
  try {
    const { cert, key, passphrase, ca } = pair;
    createSecureContext({ cert, key, ...(passphrase !== undefined ? { passphrase } : {}), ...(ca !== undefined ? { ca } : {}) });
  } catch (err) {
    throw new TypeError(`${where}: ${pair.files.cert} and ${pair.files.key} are no usable ${what} (${(err as Error).message})`, { cause: err });
  }
}
