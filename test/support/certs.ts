import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata'; // @peculiar/x509 2.x needs a Reflect polyfill (its README)
import * as x509 from '@peculiar/x509';

/**
 * Certificates made in the test, never checked in: a CA and leaves it signs,
 * P-256 (fast to make), written as PEM files to a temporary folder (uWS reads
 * certificates from files). @peculiar/x509 rather than the openssl CLI: a
 * maintained dev dependency on Node's WebCrypto, so a test does not depend on
 * which openssl the machine has or on spawning it.
 */
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface Pem {
  /** The certificate, PEM. */
  readonly cert: string;
  /** Its private key, PKCS#8 PEM (unencrypted). */
  readonly key: string;
}

export interface Issued extends Pem {
  /** The certificate's subject common name. */
  readonly cn: string;
  /** `sha256/<base64>` of the certificate's SubjectPublicKeyInfo (HPKP's form). */
  readonly spkiPin: string;
  /** The certificate's SHA-256 fingerprint, `AB:CD:…`. */
  readonly fingerprint: string;
}

export interface Ca extends Issued {
  /** A leaf signed by this CA: a server certificate for `names` (DNS names or IPs), or a client one. */
  issue(cn: string, options?: { names?: readonly string[]; client?: boolean }): Promise<Issued>;
}

let serial = 1;

/** A new self-signed CA named `cn`. */
export async function makeCa(cn: string): Promise<Ca> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: hexSerial(), name: `CN=${cn}`, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 30 * DAY),
    keys, signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const ca = await described(cn, cert, keys.privateKey);
  return {
    ...ca,
    async issue(leafCn, options = {}) {
      const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
      const names = options.names ?? [];
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: hexSerial(), subject: `CN=${leafCn}`, issuer: cert.subject,
        notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 30 * DAY),
        publicKey: leafKeys.publicKey, signingKey: keys.privateKey, signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([options.client === true ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth]),
          ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names.map((n) => (
            /^[\d.]+$|:/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })))] : []),
          await x509.AuthorityKeyIdentifierExtension.create(cert),
        ],
      });
      return described(leafCn, leaf, leafKeys.privateKey);
    },
  };
}

async function described(cn: string, cert: x509.X509Certificate, key: CryptoKey): Promise<Issued> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)).toString('base64');
  const pem = cert.toString('pem');
  const node = new X509Certificate(pem);
  const spki = node.publicKey.export({ type: 'spki', format: 'der' });
  const digest = Buffer.from(await webcrypto.subtle.digest('SHA-256', spki)).toString('base64');
  return {
    cn, cert: pem, fingerprint: node.fingerprint256, spkiPin: `sha256/${digest}`,
    key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

function hexSerial(): string {
  return (serial++).toString(16).padStart(2, '0');
}

/** A temporary folder for PEM files; `remove()` deletes it. */
export function pemFolder(): { readonly dir: string; write(name: string, text: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'rxgate-tls-'));
  return {
    dir,
    write: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** An upstream with mutual TLS: its CA and certificate for `name`, the gateway's client CA and certificate, and their PEM files. */
export interface MutualTls {
  serverCa: Ca;
  clientCa: Ca;
  server: Issued;
  client: Issued;
  files: ReturnType<typeof pemFolder>;
  /** `serverCa`, `clientCert`, `clientKey`: the PEM files a service's `tls` names. */
  paths: { serverCa: string; clientCert: string; clientKey: string };
}

/** Makes the certificates of an mTLS upstream serving `name` and writes the gateway's side to a PEM folder (`files.remove()` when done). */
export async function mutualTls(name: string): Promise<MutualTls> {
  const serverCa = await makeCa('upstream CA');
  const clientCa = await makeCa('gateway client CA');
  const server = await serverCa.issue(name, { names: [name] });
  const client = await clientCa.issue('rxgate-gateway', { client: true });
  const files = pemFolder();
  const paths = {
    serverCa: files.write('server-ca.crt', serverCa.cert),
    clientCert: files.write('client.crt', client.cert),
    clientKey: files.write('client.key', client.key),
  };
  return { serverCa, clientCa, server, client, files, paths };
}
