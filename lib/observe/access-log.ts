import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type { GatewayRequest } from '../types.ts';
import type { Logger } from './log.ts';
import { ALWAYS_REDACTED, type LogOptions } from './log-options.ts';
import { traceIdOf } from './trace-context.ts';

/** How an exchange ended, as the edge reports it (`EdgeHooks.onFinish`). */
export const FINISHED = 0; // the response went out whole (or an error answer did)
export const ABORTED = 1; // the client went away first
export const BROKEN = 2; // the upstream failed mid-response: the connection was dropped
export type FinishKind = typeof FINISHED | typeof ABORTED | typeof BROKEN;

const END_NAMES = ['', 'aborted', 'broken'] as const;
/** What JSON strings must escape (and lone surrogates, which JSON.stringify writes as escapes). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
/** What may take more than one byte in a JSON string: escapes and anything beyond ASCII. */
const NOT_PLAIN = /[^\u0020\u0021\u0023-\u005b\u005d-\u007f]/;
const REDACTED = '[redacted]';
/**
 * The most bytes a client's own text (path, query, each header value) takes
 * in a line, as written (JSON-escaped, UTF-8); the rest is cut and `…`
 * marks the cut. A path may be as long as `limits.maxHeaderBytes` (up to
 * 1 MiB): whole, one request wrote a line Docker's and containerd's log
 * drivers split at 16 KiB, which a JSON shipper then reads as two broken
 * records.
 */
export const MAX_FIELD = 2048;
/** The status logged for a request the client left before any answer (nginx's). */
export const CLIENT_CLOSED = 499;

export interface AccessLogOptions {
  /** Where lines go (info level). */
  logger: Logger;
  /** The top-level `log.access`. @default true */
  access?: boolean;
  /** Route names whose `log.access` differs from the top-level value, with theirs. @default none */
  routes?: ReadonlyMap<string, boolean>;
  /** Request headers to add to each line. @default [] */
  headers?: readonly string[];
  /** More header and query-parameter names to mask. @default [] */
  redact?: readonly string[];
  /** Write the query string. @default false */
  query?: boolean;
}

/**
 * The access log: one JSON line per request, written by pino through the
 * gateway logger's (asynchronous) destination when the exchange ends. Every
 * field is read from what the request already carries (`req.locals`, filled
 * by the router, the cache and breaker stages, and `forward`), so the only
 * allocation per request is the record itself.
 */
export class AccessLog {
  private readonly logger: Logger;
  private readonly on: boolean;
  private readonly routes: ReadonlyMap<string, boolean>;
  private readonly headers: readonly string[];
  private readonly redact: ReadonlySet<string>;
  private readonly query: boolean;
  // The logger's own line parts (pino.symbols): where it writes, its level and time, its bindings.
  private readonly stream: { write(line: string): unknown };
  private readonly head: string;
  private readonly time: () => string;
  private readonly bindings: string;
  /**
   * Lines not yet handed to the stream: one write per turn of the event
   * loop. sonic-boom measures the string it appends to on every write, so a
   * write per line cost more than building the line.
   */
  private pending = '';
  private scheduled = false;
  private readonly flushLater = (): void => {
    this.scheduled = false;
    unflushed.delete(this);
    this.flush();
  };

  /** An access log for `options`, or null when it would write nothing (off everywhere, or the logger is above info). */
  static create(options: AccessLogOptions): AccessLog | null {
    const on = options.access ?? true;
    const routes = options.routes ?? new Map<string, boolean>();
    if (!on && ![...routes.values()].some(Boolean)) return null;
    if (!options.logger.isLevelEnabled('info')) return null;
    return new AccessLog(options.logger, on, routes, options);
  }

  /** The options a config's `log` keys and routes give. */
  static optionsOf(log: LogOptions | undefined, routes: ReadonlyArray<{ name: string; access: boolean | undefined }>): Omit<AccessLogOptions, 'logger'> {
    const on = log?.access ?? true;
    const differ = new Map<string, boolean>();
    for (const r of routes) if (r.access !== undefined && r.access !== on) differ.set(r.name, r.access);
    return { access: on, routes: differ, headers: log?.headers ?? [], redact: log?.redact ?? [], query: log?.query ?? false };
  }

  private constructor(logger: Logger, on: boolean, routes: ReadonlyMap<string, boolean>, options: AccessLogOptions) {
    this.logger = logger;
    this.on = on;
    this.routes = routes;
    this.headers = (options.headers ?? []).map((h) => h.toLowerCase());
    this.redact = new Set([...ALWAYS_REDACTED, ...(options.redact ?? []).map((h) => h.toLowerCase())]);
    this.query = options.query ?? false;
    const own = logger as unknown as Record<symbol, unknown>;
    this.stream = own[pino.symbols.streamSym] as { write(line: string): unknown };
    this.head = '{"level":' + logger.levels.values.info;
    this.time = own[pino.symbols.timeSym] as () => string;
    this.bindings = own[pino.symbols.chindingsSym] as string;
  }

  /** Whether `route`'s requests are logged. */
  logs(route: string | undefined): boolean {
    if (this.routes.size === 0 || route === undefined) return this.on;
    return this.routes.get(route) ?? this.on;
  }

  /**
   * Writes `req`'s line: called once, when its exchange has ended. The line
   * is what `logger.info({...})` would write (pino's level, time and
   * bindings, then the fields), built as one string: pino's generic
   * serializer cost three times as much per line.
   */
  finish(req: GatewayRequest, status: number, bytesIn: number, bytesOut: number, kind: FinishKind): void {
    const l = req.locals;
    if (!this.logs(l.route)) return;
    const now = performance.now();
    let line = this.head + this.time() + this.bindings + ',"msg":"access","reqId":' + str(req.id);
    if (l.route !== undefined) line += ',"route":' + str(l.route);
    if (l.service !== undefined) line += ',"service":' + str(l.service);
    if (l.instance !== undefined) line += ',"instance":' + str(l.instance);
    line += ',"method":' + str(req.method) + ',"path":' + str(bounded(req.normalizedPath));
    if (this.query && req.query !== '') line += ',"query":' + str(bounded(this.maskQuery(req.query)));
    // Nothing was answered before the client went away: nginx's 499.
    line += ',"status":' + (status === 0 ? CLIENT_CLOSED : status) + ',"bytesIn":' + bytesIn + ',"bytesOut":' + bytesOut
      + ',"durationMs":' + round(now - req.receivedAt);
    if (l.upstreamAt !== undefined) line += ',"upstreamMs":' + round(now - l.upstreamAt);
    line += ',"attempts":' + (l.attempts ?? 0);
    if (l.error !== undefined) line += ',"error":' + str(l.error);
    if (l.cache !== undefined) line += ',"cache":"' + l.cache + '"';
    if (l.breaker !== undefined) line += ',"breaker":"' + l.breaker + '"';
    line += ',"client":' + str(req.clientAddress ?? req.remoteAddress);
    const tp = req.headers.traceparent;
    if (tp !== undefined) line += ',"traceId":' + str(traceIdOf(tp));
    if (kind !== FINISHED) line += ',"end":"' + END_NAMES[kind] + '"';
    if (this.headers.length > 0) {
      const picked = this.pickHeaders(req.headers);
      if (picked !== undefined) line += ',"headers":' + JSON.stringify(picked);
    }
    this.pending += line + '}\n';
    if (this.pending.length >= FLUSH_AT) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      if (unflushed.size === 0) watchExit();
      unflushed.add(this);
      setImmediate(this.flushLater);
    }
  }

  /** At exit: write what is pending and have the stream write it before the process ends. */
  flushSync(): void {
    this.flush();
    (this.stream as { flushSync?: () => void }).flushSync?.();
  }

  /** Hands the lines written this turn to the logger's stream, in one write. */
  flush(): void {
    const lines = this.pending;
    if (lines === '') return;
    this.pending = '';
    this.stream.write(lines);
  }

  private pickHeaders(headers: Record<string, string>): Record<string, string> | undefined {
    let out: Record<string, string> | undefined;
    for (const name of this.headers) {
      const value = headers[name];
      if (value !== undefined) (out ??= {})[name] = this.redact.has(name) ? REDACTED : bounded(value);
    }
    return out;
  }

  /** The query string with the values of redacted parameters masked. */
  maskQuery(query: string): string {
    const parts = query.split('&');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const eq = part.indexOf('=');
      const raw = eq < 0 ? part : part.slice(0, eq);
      let name: string;
      try {
        name = decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
      } catch {
        name = raw.toLowerCase();
      }
      if (eq >= 0 && this.redact.has(name)) parts[i] = raw + '=' + REDACTED;
    }
    return parts.join('&');
  }
}

/** Pending lines past this many characters are written at once. */
const FLUSH_AT = 64 * 1024; // 64 KiB

/** Access logs with lines waiting for the end of the turn: written if the process exits first. */
const unflushed = new Set<AccessLog>();
let watching = false;
function watchExit(): void {
  if (watching) return;
  watching = true;
  process.once('exit', () => {
    for (const log of unflushed) log.flushSync();
  });
}

/**
 * `s`, or as much of it as takes MAX_FIELD bytes written, and `…`. A short
 * one (6 bytes a character at most) or plain ASCII costs a compare or a
 * regex test; only a long one with escapes or beyond ASCII is walked.
 */
function bounded(s: string): string {
  if (s.length <= MAX_FIELD / 6) return s;
  if (!NOT_PLAIN.test(s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s)) return s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) + '…' : s;
  return cutWritten(s);
}

/** `s` cut where its JSON-escaped UTF-8 passes MAX_FIELD bytes, never between the halves of a pair. */
function cutWritten(s: string): string {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let n = c < 0x20 ? 6 : c === 0x22 || c === 0x5c ? 2 : c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
    // A pair is 4 bytes (a character beyond the BMP); a lone half is written as a 6-byte escape.
    const pair = (c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    if (pair) n = 4;
    else if ((c & 0xf800) === 0xd800) n = 6;
    if (bytes + n > MAX_FIELD) return s.slice(0, i) + '…';
    bytes += n;
    if (pair) i++;
  }
  return s;
}

/** A JSON string. */
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}

/** Milliseconds to two decimals. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
