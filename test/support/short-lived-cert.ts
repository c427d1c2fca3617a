import { webcrypto } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

/**
 * A self-signed P-256 certificate for `cn` valid until `days` from now (another notAfter than certs.ts's 30 days;
 * negative: expired that long ago), from 100 days before that, and its key, PEM.
 */
export async function selfSigned(cn: string, days: number): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const notAfter = Date.now() + days * 86_400_000;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0b', name: `CN=${cn}`, notBefore: new Date(notAfter - 100 * 86_400_000), notAfter: new Date(notAfter), keys, signingAlgorithm: alg,
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n` };
}
