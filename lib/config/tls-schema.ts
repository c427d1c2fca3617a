import { z } from 'zod';
import type { EdgeListenOptions } from '../server/edge.ts';
import { listenPort, port } from './common.ts';

/** The YAML keys of TLS: `listen.tls`, `listen.redirectHttp` and a service's `tls`. */

const file = z.string().min(1, 'expected a file path');

/** `api.example.com`, or `*.example.com` (uWS matches a wildcard against one label). */
const serverName = z.string().regex(/^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'expected a host name, or *.domain');

export const listenTlsSchema = z.strictObject({
  cert: file,
  key: file,
  passphrase: z.string().optional(),
  ciphers: z.string().min(1).optional(),
  sni: z.array(z.strictObject({ serverName, cert: file, key: file, passphrase: z.string().optional() })).optional(),
}).refine((t) => new Set((t.sni ?? []).map((s) => s.serverName.toLowerCase())).size === (t.sni ?? []).length, 'each sni serverName once');

export const redirectHttpSchema = z.strictObject({
  port: listenPort,
  httpsPort: port.optional(),
});

/** `sha256/<base64>` of a SubjectPublicKeyInfo, or a certificate's SHA-256 fingerprint in hex (colons optional). */
export const PIN_PATTERN = /^(sha256\/[A-Za-z0-9+/]{43}=|[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31})$/;

export const upstreamTlsSchema = z.strictObject({
  ca: file.optional(),
  cert: file.optional(),
  key: file.optional(),
  passphrase: z.string().optional(),
  servername: z.string().min(1).optional(),
  rejectUnauthorized: z.boolean().optional(),
  pin: z.array(z.string().regex(PIN_PATTERN, 'expected sha256/<base64 of the SPKI> or a SHA-256 certificate fingerprint in hex')).min(1).optional(),
}).refine((t) => (t.cert === undefined) === (t.key === undefined), 'a client certificate needs both cert and key');

type ListenConfig = { tls?: z.output<typeof listenTlsSchema> | undefined; redirectHttp?: z.output<typeof redirectHttpSchema> | undefined } | undefined;

/** `listen`'s TLS keys as the edge takes them (absent keys left out). */
export function edgeListenOptions(listen: ListenConfig): EdgeListenOptions {
  const tls = listen?.tls;
  const redirect = listen?.redirectHttp;
  return {
    ...(tls !== undefined ? {
      tls: {
        ...pair(tls),
        ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}),
        ...(tls.sni !== undefined ? { sni: tls.sni.map((s) => ({ serverName: s.serverName, ...pair(s) })) } : {}),
      },
    } : {}),
    ...(redirect !== undefined ? { redirectHttp: { port: redirect.port, ...(redirect.httpsPort !== undefined ? { httpsPort: redirect.httpsPort } : {}) } } : {}),
  };
}

function pair(o: { cert: string; key: string; passphrase?: string | undefined }): { cert: string; key: string; passphrase?: string } {
  return { cert: o.cert, key: o.key, ...(o.passphrase !== undefined ? { passphrase: o.passphrase } : {}) };
}
