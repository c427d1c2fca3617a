import { constants as zlibConstants } from 'node:zlib';
import { Observable, type Subscriber } from 'rxjs';
import { getHeader } from '../../headers.ts';
import { InnerSubscriber } from '../../subscriber.ts';
import type { GatewayRequest, GatewayResponse, Policy } from '../../types.ts';
import { addVary } from '../cors/vary.ts';
import { CompressedBody, compressor, HAS_ZSTD, type Levels } from './compressed-body.ts';
import { DEFAULT_TYPES, typeMatcher } from './media-types.ts';
import { negotiate, type Encoding } from './negotiate.ts';

export interface CompressionOptions {
  /** Codings offered, in the gateway's order of preference (it breaks ties in the client's q-values); `zstd` only where node:zlib has it. @default ['br', 'gzip'] */
  encodings?: readonly Encoding[];
  /** Bodies whose known length is under this many bytes go as they are; a body of unknown length (chunked) is compressed. @default 1024 */
  minSize?: number;
  /** Media types compressed: exact, `type/*`, or `*+suffix`; `text/event-stream` never. @default text/*, JSON, JavaScript, XML, SVG, wasm, fonts… (DEFAULT_TYPES) */
  types?: readonly string[];
  /** gzip level, 1 (fast) to 9 (small). @default 6 */
  gzipLevel?: number;
  /** brotli quality, 0 to 11 (11 is for files compressed ahead of time, far too slow here). @default 4 */
  brotliQuality?: number;
  /** zstd level, 1 to 19. @default 3 */
  zstdLevel?: number;
  /** Drop `Accept-Encoding` from the request sent upstream, so the upstream (and the cache behind this stage) always sees identity. @default false */
  removeAcceptEncoding?: boolean;
}

const defaults = {
  encodings: ['br', 'gzip'],
  minSize: 1024, // 1 KiB
  types: DEFAULT_TYPES,
  gzipLevel: 6,
  brotliQuality: 4,
  zstdLevel: 3,
  removeAcceptEncoding: false,
} satisfies Required<CompressionOptions>;

/**
 * What a compressed response must not keep: its length is another now, and
 * ranges are of the identity body; an upstream's `Content-Encoding:
 * identity` (or empty) would go out beside the new coding as `identity, gzip`.
 */
const DROPPED = new Set(['content-length', 'accept-ranges', 'etag', 'content-encoding']);

/**
 * Compresses responses on the way out, streaming (see `CompressedBody`),
 * when all hold: the client accepts a coding offered (`Accept-Encoding`,
 * q-values), the status has a body and is not 206, the upstream sent no
 * `Content-Encoding`, the type is compressible (never `text/event-stream`),
 * neither side sent `Cache-Control: no-transform`, and the length is
 * unknown or at least `minSize`. Such a response gets `Vary:
 * Accept-Encoding` whether or not this client accepted; a compressed one
 * loses `Content-Length` and `Accept-Ranges`, and its `ETag` turns weak (the
 * bytes differ, the meaning does not). A HEAD gets the head its GET would
 * (RFC 9110 §9.3.2, as nginx's gzip does), decided on the upstream's
 * `Content-Length`, and nothing is compressed. Placed before (outside) the
 * cache, the cache keeps the identity body and each client gets its own
 * coding.
 */
export function compression(options: CompressionOptions = {}): Policy {
  const o = { ...defaults, ...options };
  const offered = o.encodings.filter((e) => e !== 'zstd' || HAS_ZSTD);
  if (offered.length === 0) return (next) => next;
  for (const e of o.encodings) if (e !== 'br' && e !== 'gzip' && e !== 'zstd') throw new TypeError(`compression.encodings: unknown coding ${JSON.stringify(e)} (known: br, gzip, zstd)`);
  if (!Number.isInteger(o.minSize) || o.minSize < 0) throw new TypeError(`compression.minSize: expected a byte count, got ${o.minSize}`);
  checkLevel('gzipLevel', o.gzipLevel, 1, 9);
  checkLevel('brotliQuality', o.brotliQuality, 0, 11);
  checkLevel('zstdLevel', o.zstdLevel, 1, 19);
  const compressible = typeMatcher(o.types);
  const levels: Levels = { gzip: o.gzipLevel, br: o.brotliQuality, zstd: o.zstdLevel };
  const settings = { minSize: o.minSize, compressible, levels };
  // Browsers send the same Accept-Encoding with every request.
  let lastAccept: string | undefined;
  let lastChoice: Encoding | null = null;

  return (next) => function compressionHandler(req: GatewayRequest) {
    const accept = req.headers['accept-encoding'];
    if (accept !== lastAccept) {
      lastAccept = accept;
      lastChoice = negotiate(accept, offered);
    }
    const encoding = noTransform(req.headers['cache-control']) ? null : lastChoice;
    if (o.removeAcceptEncoding && accept !== undefined) {
      const { 'accept-encoding': _, ...headers } = req.headers;
      req = { ...req, headers };
    }
    const down = req;
    const head = req.method === 'HEAD';
    return new Observable<GatewayResponse>((s) => next(down).subscribe(new CompressionSubscriber(s, encoding, settings, head, down.headers)));
  };
}

function checkLevel(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new TypeError(`compression.${name}: expected ${min} to ${max}, got ${value}`);
}

function noTransform(cacheControl: string | undefined): boolean {
  return cacheControl !== undefined && /(^|[\s,])no-transform\s*(,|$)/i.test(cacheControl);
}

interface Settings {
  readonly minSize: number;
  readonly compressible: (contentType: string | undefined) => boolean;
  readonly levels: Levels;
}

class CompressionSubscriber extends InnerSubscriber<GatewayResponse> {
  private body: CompressedBody | null = null;
  private bodyDone = false;
  private innerDone = false;

  constructor(
    downstream: Subscriber<GatewayResponse>,
    private readonly encoding: Encoding | null,
    private readonly settings: Settings,
    /** A HEAD: its head gets what a GET's would, and no body is compressed. */
    private readonly head: boolean,
    /** The request's headers: a 304 reads its If-None-Match. */
    private readonly requestHeaders: GatewayRequest['headers'],
  ) {
    super(downstream);
    // Unsubscribing (client gone, timeout) stops the compressor and its source.
    downstream.add(() => this.body?.destroy());
  }

  protected onNext(res: GatewayResponse): void {
    const body = res.body;
    const h = res.headers;
    if (res.status === 304) {
      this.downstream.next(notModified(res, this.requestHeaders['if-none-match'], this.settings.compressible));
      return;
    }
    if (res.status === 206 || res.status === 416) {
      this.downstream.next(part(res, this.settings));
      return;
    }
    // A HEAD has no body (or a cached GET's, never sent): the length its GET would have is the header's.
    const length = this.head ? declaredLength(h, body) : body?.length ?? null;
    const eligible = (body !== null || this.head) && res.status >= 200 && res.status !== 204
      && !encoded(getHeader(h, 'content-encoding')) && this.settings.compressible(getHeader(h, 'content-type'))
      && !noTransform(getHeader(h, 'cache-control')) && (length === null || length >= this.settings.minSize);
    if (!eligible) {
      this.downstream.next(res);
      return;
    }
    const headers: string[] = [];
    const encoding = this.encoding;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!;
      if (encoding === null || !DROPPED.has(name)) headers.push(name, h[i + 1]!);
      else if (name === 'etag') headers.push(name, h[i + 1]!.startsWith('W/') ? h[i + 1]! : `W/${h[i + 1]!}`);
    }
    addVary(headers, 'Accept-Encoding');
    if (encoding === null) {
      this.downstream.next({ ...res, headers });
      return;
    }
    headers.push('content-encoding', encoding);
    if (this.head || body === null) {
      // No length: what the GET would send is not known before compressing it (nginx sends none either).
      body?.destroy();
      this.downstream.next({ ...res, headers, body: null });
      return;
    }
    const flushKind = encoding === 'gzip' ? zlibConstants.Z_SYNC_FLUSH : undefined;
    this.body = new CompressedBody(body, compressor(encoding, this.settings.levels, body.length), () => this.bodyEnded(), (err) => this.downstream.error(err), flushKind);
    this.downstream.next({ ...res, headers, body: this.body });
  }

  /** The pipeline completes once the compressed body has ended, not when its source has. */
  protected override onComplete(): void {
    if (this.body === null || this.bodyDone) this.downstream.complete();
    else this.innerDone = true;
  }

  private bodyEnded(): void {
    this.bodyDone = true;
    if (this.innerDone) this.downstream.complete();
  }
}

/**
 * A 304 answers for the representation the client holds: when that is a
 * compressed one (its If-None-Match names the weak `W/"x"` a compressed 200
 * carried) and the upstream confirms the strong `"x"`, the 304 carries
 * `W/"x"` and the Vary that 200 had (RFC 9110 §15.4.5). With `"x"`, a cache
 * in front holding `W/"x"` cannot match the 304 to what it stored (RFC 9111
 * §4.3.4) and must not freshen it (Jetty issue 14137, the same fix). When
 * the upstream's tag is weak already (`W/"x"`, Express's default), the
 * compressed 200 kept it, and its 304 gets that Vary too, unless the 304
 * says the 200 was not compressible (its type, `no-transform`): before, it
 * went without, against §15.4.5.
 */
function notModified(res: GatewayResponse, ifNoneMatch: string | undefined, compressible: (type: string | undefined) => boolean): GatewayResponse {
  if (ifNoneMatch === undefined) return res;
  const etag = getHeader(res.headers, 'etag');
  if (etag === undefined) return res;
  const weak = etag.startsWith('W/');
  if (!ifNoneMatch.includes(weak ? etag : `W/${etag}`)) return res;
  const h = res.headers;
  // A 304 rarely carries Content-Type: without one, the client's weak tag says what it holds.
  const type = getHeader(h, 'content-type');
  if (weak && ((type !== undefined && !compressible(type)) || noTransform(getHeader(h, 'cache-control')))) return res;
  const headers = h.slice();
  if (!weak) for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'etag') headers[i + 1] = `W/${etag}`;
  addVary(headers, 'Accept-Encoding');
  return { ...res, headers };
}

/** `Content-Range`'s complete length (`bytes 0-9/1234`, `bytes *\/1234`). */
const COMPLETE_LENGTH = /\/\s*(\d+)\s*$/;

/**
 * A part (206) or a 416 goes as it is, identity: the stage cannot make the
 * whole 200 of it, which nginx's gzip answers instead (its range filter
 * leaves a gzipped response whole), and ignoring Range for every client
 * that accepts a coding would lose ranges of incompressible types (media)
 * too. It carries `Vary: Accept-Encoding` when the 200 would (RFC 9110
 * §15.3.7): a compressible type, no coding, no `no-transform`, and a
 * complete length (Content-Range's `/len`) unknown or at least `minSize`.
 */
function part(res: GatewayResponse, settings: Settings): GatewayResponse {
  const h = res.headers;
  if (encoded(getHeader(h, 'content-encoding')) || !settings.compressible(getHeader(h, 'content-type')) || noTransform(getHeader(h, 'cache-control'))) return res;
  const complete = COMPLETE_LENGTH.exec(getHeader(h, 'content-range') ?? '');
  if (complete !== null && Number(complete[1]) < settings.minSize) return res;
  const headers = h.slice();
  addVary(headers, 'Accept-Encoding');
  return { ...res, headers };
}

/** A HEAD's `Content-Length` (the length of its GET's body), else the body's; null when unknown. */
function declaredLength(headers: readonly string[], body: GatewayResponse['body']): number | null {
  const value = getHeader(headers, 'content-length');
  if (value !== undefined && /^\d+$/.test(value)) return Number(value);
  return body?.length ?? null;
}

function encoded(contentEncoding: string | undefined): boolean {
  return contentEncoding !== undefined && contentEncoding.trim() !== '' && contentEncoding.trim().toLowerCase() !== 'identity';
}
