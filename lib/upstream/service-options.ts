import type { Duration } from '../duration.ts';
import type { GatewayEvents } from '../observe/events.ts';
import { systemRuntime, type Runtime } from '../runtime.ts';
import type { HealthOptions } from './health.ts';
import type { HashOptions } from './hash-balancer.ts';

/**
 * A service's `tls`: how rxgate connects to its https upstreams. File keys
 * are PEM file paths, read when the service is built.
 */
export interface UpstreamTlsOptions {
  /** CA certificate(s) to trust instead of Node's bundled roots (an internal CA). Same as `tlsCa`, which it replaces. */
  ca?: string;
  /** Client certificate for mutual TLS (the upstream's `requestCert`), then its intermediates; needs `key`. */
  cert?: string;
  /** The client certificate's private key. */
  key?: string;
  /** The key file's passphrase, when it is encrypted. */
  passphrase?: string;
  /**
   * The name sent as SNI and checked against the upstream's certificate,
   * whatever the Host header or URL say (an upstream addressed by IP).
   * Never taken from the client's Host (upstream-tls.ts).
   * @default the upstream URL's host name (no SNI for an IP address)
   */
  servername?: string;
  /** Verify the upstream's certificate chain and name. Same as `tlsVerify`, which it replaces. @default true */
  rejectUnauthorized?: boolean;
  /**
   * Accept only an upstream whose certificate matches one of these:
   * `sha256/<base64>` of its public key (SubjectPublicKeyInfo, HPKP's and
   * curl's form) or its SHA-256 fingerprint in hex (`AB:CD:…`, colons
   * optional). Checked on every new connection, with or without
   * `rejectUnauthorized`; a mismatch is a 502 `BAD_GATEWAY`.
   */
  pin?: string[];
}

/** An instance as configured: a URL, or a URL with a weight. */
export type UpstreamSpec = string | { url: string; weight?: number };

export interface ServiceOptions {
  /** Upstream base URLs, `http://` or `https://` (a path part is prefixed to every request), each optionally with a `weight`. */
  upstreams: UpstreamSpec[];
  /**
   * How an instance is chosen: `p2c-ewma`, `round-robin`, `random`,
   * `least-request`, `hash`, or a name registered with `defineBalancer`.
   * @default 'p2c-ewma' with more than one instance
   */
  balancer?: string;
  /** Options of the `hash` balancer. */
  hash?: HashOptions;
  /**
   * Instances found at run time, by source: `{ dns: DnsDiscoveryOptions }`,
   * `{ file: FileDiscoveryOptions }`, or a source registered with
   * `defineDiscovery`. They replace `upstreams` once found.
   */
  discovery?: Record<string, unknown>;
  /** Options for a balancer registered in code (its factory's `ctx.options`). */
  balancerOptions?: unknown;
  /**
   * Time allowed for the upstream's response head, and between body chunks.
   * @default '30s'
   */
  timeout?: Duration;
  /**
   * Connections per upstream instance, at most; kept alive between
   * requests. A request beyond them waits in the instance's queue (at most
   * `maxPending`) until one is free: the service's `timeout` starts once
   * it has a connection (`timeouts.total` bounds the wait).
   * @default 128
   */
  connections?: number;
  /**
   * Requests waiting for one of an instance's `connections`, at most (Envoy's
   * `max_pending_requests`, per instance here): one more is answered at once
   * `503 UPSTREAM_OVERLOADED` with `retry-after: 1`, not retried, and counted
   * neither by a circuit breaker nor as a strike (the load is the clients').
   * @default 1024
   */
  maxPending?: number;
  /**
   * Time allowed to open a connection to an instance (TCP and TLS); past it
   * the attempt is `504 GATEWAY_TIMEOUT` "upstream connect timed out" and a
   * strike (Envoy's `connect_timeout`, nginx's `proxy_connect_timeout`).
   * @default '10s'
   */
  connectTimeout?: Duration;
  /**
   * Idle keep-alive sockets are closed after this long. An upstream's
   * `Keep-Alive: timeout=N` replaces it with N less 2 s (undici's margin:
   * a connection the upstream is about to close is not reused), so a
   * connection to one that says `timeout=2` or less is not reused at all.
   * @default '4s'
   */
  keepAlive?: Duration;
  /** Verify upstream TLS certificates. @default true */
  tlsVerify?: boolean;
  /**
   * Path of a PEM file with the CA certificate(s) to trust for https
   * upstreams, instead of Node's bundled roots (an internal CA).
   */
  tlsCa?: string;
  /** Client certificate, CA, SNI name and pins for https upstreams (see `UpstreamTlsOptions`). */
  tls?: UpstreamTlsOptions;
  /** Active health checking: `GET <path>` on every instance. Off when absent. */
  health?: HealthOptions;
  /**
   * Passive ejection (nginx's `fail_timeout`, Envoy's outlier detection): an
   * instance that refused a connection or timed out `ejectAfter` times in a
   * row is taken out of rotation this long at once. `0` turns it off.
   * @default '10s'
   */
  ejectFor?: Duration;
  /**
   * Connection failures or timeouts in a row that eject an instance (nginx's `max_fails`).
   * @default 1
   */
  ejectAfter?: number;
  /**
   * Each ejection of an instance that has not answered since the last one
   * doubles `ejectFor`, up to this.
   * @default '5m'
   */
  maxEjectFor?: Duration;
  /**
   * Upstream statuses that count as a strike towards ejection too (Envoy's
   * `consecutive_gateway_failure` with `[502, 503, 504]`); any other response
   * is a success. Off by default: a 5xx the upstream sends is its answer.
   * @default []
   */
  ejectOnStatuses?: number[];
  /**
   * Never more than this share of the instances ejected at once, in percent
   * (Envoy's `max_ejection_percent`); one instance may always be ejected.
   * @default 50
   */
  maxEjectionPercent?: number;
  /**
   * When every instance is out (ejected, or unhealthy by active checks),
   * pick one anyway (Envoy's panic mode) rather than answer 503: an instance
   * that may be up beats a certain error, and a service is never black-holed
   * by its own bookkeeping. `false` fails fast with `NoHealthyUpstreamError`.
   * @default true
   */
  panic?: boolean;
  /** Where probe timers, the ejection clock, balancer randomness and the probe jitter come from. @default systemRuntime */
  runtime?: Runtime;
  /** Where ejections and health changes are reported. */
  events?: GatewayEvents;
}

export const serviceDefaults = {
  timeout: '30s',
  connections: 128,
  maxPending: 1024,
  connectTimeout: '10s', // undici's own default, kept
  keepAlive: '4s',
  tlsVerify: true,
  ejectFor: '10s',
  ejectAfter: 1,
  maxEjectFor: '5m',
  maxEjectionPercent: 50,
  panic: true,
  runtime: systemRuntime,
} satisfies Required<Omit<ServiceOptions, 'upstreams' | 'health' | 'tlsCa' | 'tls' | 'balancer' | 'hash' | 'balancerOptions' | 'events' | 'discovery' | 'ejectOnStatuses'>>;

/**
 * A service's counts, checked when it is built (YAML's schema checks them
 * too; code does not go through it): also before discovery has found an
 * instance, whose own check would come only then (review RR3).
 */
export function checkCounts(name: string, o: { ejectAfter: number; maxPending?: number | undefined }): void {
  if (!Number.isInteger(o.ejectAfter) || o.ejectAfter < 1) throw new TypeError(`service ${name} ejectAfter: expected a positive integer, got ${o.ejectAfter}`);
  if (o.maxPending !== undefined && (!Number.isInteger(o.maxPending) || o.maxPending < 0)) {
    throw new TypeError(`service ${name} maxPending: expected an integer of 0 or more, got ${o.maxPending}`);
  }
}
