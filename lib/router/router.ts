import { MethodNotAllowedError, RouteNotFoundError } from '../errors.ts';

export interface RouteRewrite {
  /** A regular expression applied to the upstream path… */
  pattern?: string;
  /** …replaced by this (`$1` etc. allowed). */
  replacement?: string;
  /** Or: remove this prefix from the path. */
  stripPrefix?: string;
}

export interface RouteDefinition<T> {
  /** `/exact`, `/users/:id`, or a prefix `/api/*` (which also matches `/api`). */
  path: string;
  /** Allowed methods; all when absent. */
  methods?: readonly string[];
  rewrite?: RouteRewrite;
  /** What the route carries (its composed handler). */
  value: T;
}

export interface RouteMatch<T> {
  route: CompiledRoute<T>;
  params: Record<string, string>;
}

const enum Kind { Wild = 1, Param = 2, Static = 3 }

/** The `params` of a route without `:params` (shared, so frozen). */
export const NO_PARAMS: Record<string, string> = Object.freeze({});

interface Segment {
  kind: Kind;
  /** Static text or the parameter's name. */
  text: string;
}

export class CompiledRoute<T> {
  readonly segments: Segment[];
  readonly prefix: boolean;
  readonly methods: ReadonlySet<string> | null;
  /**
   * The path to send upstream from the path as received and, for
   * `stripPrefix`, the normalised one it matched by; null when a `pattern`
   * made a dot-segment of it (a 400).
   */
  readonly rewrite: ((path: string, matched?: string) => string | null) | null;
  /** Segments a path must have before the `*`, or in all. */
  readonly fixed: number;
  private readonly hasParams: boolean;

  constructor(readonly definition: RouteDefinition<T>) {
    const path = definition.path;
    if (!path.startsWith('/')) throw new TypeError(`route path ${JSON.stringify(path)} must start with /`);
    const parts = path.split('/').slice(1);
    this.prefix = parts[parts.length - 1] === '*';
    if (this.prefix) parts.pop();
    if (parts.includes('*')) throw new TypeError(`route path ${path}: * is only allowed as the last segment`);
    this.segments = parts.filter((p) => p !== '').map((p) => (p.startsWith(':') ? { kind: Kind.Param, text: p.slice(1) } : { kind: Kind.Static, text: p }));
    if (this.prefix) this.segments.push({ kind: Kind.Wild, text: '*' });
    this.methods = definition.methods === undefined ? null : new Set(definition.methods.map((m) => m.toUpperCase()));
    this.rewrite = compileRewrite(definition.rewrite);
    this.fixed = this.prefix ? this.segments.length - 1 : this.segments.length;
    this.hasParams = this.segments.some((s) => s.kind === Kind.Param);
  }

  get value(): T {
    return this.definition.value;
  }

  /** Whether decoded path segments match. */
  matches(parts: readonly string[]): boolean {
    const segs = this.segments;
    const n = this.fixed;
    if (this.prefix ? parts.length < n : parts.length !== n) return false;
    for (let i = 0; i < n; i++) {
      const seg = segs[i]!;
      const part = parts[i]!;
      if (seg.kind === Kind.Static ? seg.text !== part : part === '') return false;
    }
    return true;
  }

  /** The `:param` values of path segments that match (one shared empty object when the route has none). */
  params(parts: readonly string[]): Record<string, string> {
    if (!this.hasParams) return NO_PARAMS;
    const params: Record<string, string> = {};
    for (let i = 0; i < this.fixed; i++) {
      const seg = this.segments[i]!;
      if (seg.kind === Kind.Param) params[seg.text] = parts[i]!;
    }
    return params;
  }
}

/** A `.` or `..` segment, percent-encoded or not, with or without a `;` parameter. */
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:[;/]|$)/i;

/** What is left of `path` once `prefix` (no trailing slash) is taken off: `/` for the prefix itself; null when it does not start with it. */
function afterPrefix(path: string, prefix: string): string | null {
  if (!path.startsWith(prefix)) return null;
  const rest = path.slice(prefix.length);
  return rest === '' ? '/' : rest.charCodeAt(0) === 47 /* / */ ? rest : null;
}

function compileRewrite(rewrite: RouteRewrite | undefined): ((path: string, matched?: string) => string | null) | null {
  if (rewrite === undefined) return null;
  if (rewrite.stripPrefix !== undefined) {
    const prefix = rewrite.stripPrefix.replace(/\/$/, '');
    const depth = prefix.split('/').length - 1;
    return (path, matched = path) => {
      const rest = afterPrefix(path, prefix);
      if (rest !== null || path === matched) return rest ?? path;
      // The path as received spells the prefix another way (`/%61pi/x` for
      // `/api`): the matched path, decoded segment for segment, says whether
      // it is there, and the same number of segments goes from the path sent.
      if (afterPrefix(matched, prefix) === null) return path;
      let at = 0;
      for (let i = 0; i < depth && at !== -1; i++) at = path.indexOf('/', at + 1);
      return at === -1 ? '/' : path.slice(at);
    };
  }
  if (rewrite.pattern === undefined) throw new TypeError('rewrite needs pattern+replacement or stripPrefix');
  let re: RegExp;
  try {
    re = new RegExp(rewrite.pattern);
  } catch (err) {
    throw new TypeError(`rewrite pattern ${JSON.stringify(rewrite.pattern)}: ${(err as Error).message}`);
  }
  const replacement = rewrite.replacement ?? '';
  return (path) => {
    const out = path.replace(re, replacement);
    // A capture taken from inside a segment can make one of `..` (`x../admin` → `/v2/../admin`),
    // which the upstream resolves out of the rewrite's target: refused (null) rather than sent.
    if (DOT_SEGMENT.test(out)) return null;
    return out.startsWith('/') ? out : '/' + out;
  };
}

/**
 * The path's segments, at most `limit` + 1 of them: a route looks at its
 * first `fixed` (at most `limit` - 1) and at whether there are more, so a
 * path of thousands of segments (a 414 being answered through a route's
 * cors) is not split whole. A trailing empty segment is dropped only when
 * the list is whole.
 */
function segmentsOf(path: string, limit: number): string[] {
  if (path === '/') return [];
  const parts = path.slice(1).split('/', limit + 1);
  if (parts.length <= limit && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** Orders routes most specific first: static > :param > *, then longer. */
function compareSpecificity(a: CompiledRoute<unknown>, b: CompiledRoute<unknown>): number {
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const d = b.segments[i]!.kind - a.segments[i]!.kind;
    if (d !== 0) return d;
  }
  const next = (r: CompiledRoute<unknown>): number => r.segments[n]?.kind ?? 0;
  // `/api` before `/api/*`; otherwise the longer, more constrained route first.
  if (next(a) === Kind.Wild && next(b) === 0) return 1;
  if (next(b) === Kind.Wild && next(a) === 0) return -1;
  return b.segments.length - a.segments.length;
}

/**
 * What a route without `methods` allows: not CONNECT nor TRACE, as nginx
 * answers both 405 itself. CONNECT asks for a tunnel, which a reverse proxy
 * does not open; forwarded, it failed at the transport (undici takes it for
 * an upgrade the upstream never grants), which the service's breaker counts:
 * a few CONNECTs from anyone opened it. TRACE echoes the request, cookies and
 * credentials included (cross-site tracing). A route may still list either.
 */
const OPEN_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/**
 * The route table. Most specific path first; among routes whose path
 * matches, the first that allows the method wins. A path that matches only
 * routes for other methods is a 405 with `Allow` (HEAD listed with GET).
 */
export class Router<T> {
  private readonly routes: CompiledRoute<T>[] = [];
  /** One more segment than the deepest route's fixed ones: what `segmentsOf` keeps. */
  private limit = 1;

  add(definition: RouteDefinition<T>): this {
    const route = new CompiledRoute(definition);
    this.routes.push(route);
    this.routes.sort(compareSpecificity);
    this.limit = Math.max(this.limit, route.fixed + 1);
    return this;
  }

  get size(): number {
    return this.routes.length;
  }

  /**
   * The most specific route whose path matches `path` and whose value passes
   * `test`, whatever its methods: for answering a refusal as that route would.
   */
  find<A>(path: string, test: (value: T, arg: A) => boolean, arg?: A): CompiledRoute<T> | null {
    const parts = segmentsOf(path, this.limit);
    for (const route of this.routes) if (test(route.value, arg as A) && route.matches(parts)) return route;
    return null;
  }

  /**
   * Matches a normalised path; throws RouteNotFoundError or MethodNotAllowedError.
   * With `accept`, a route whose value it refuses (a route's `match` the
   * request fails) is passed over as if its path did not match.
   */
  match<A>(method: string, path: string, accept?: (value: T, arg: A) => boolean, arg?: A): RouteMatch<T> {
    // Split only for a route that looks at segments: `/*` matches any path as it is.
    let parts: string[] | null = null;
    let allowed: Set<string> | null = null;
    for (const route of this.routes) {
      if (route.fixed !== 0 || !route.prefix) {
        parts ??= segmentsOf(path, this.limit);
        if (!route.matches(parts)) continue;
      }
      if (accept !== undefined && !accept(route.value, arg as A)) continue;
      const methods = route.methods;
      if (methods === null ? method !== 'CONNECT' && method !== 'TRACE' : methods.has(method) || (method === 'HEAD' && methods.has('GET'))) {
        return { route, params: parts === null ? NO_PARAMS : route.params(parts) };
      }
      allowed ??= new Set();
      // A GET route serves HEAD too, so Allow lists it (RFC 9110 §10.2.1: the methods the resource supports).
      for (const m of methods ?? OPEN_METHODS) {
        allowed.add(m);
        if (m === 'GET') allowed.add('HEAD');
      }
    }
    if (allowed !== null) {
      const allow = [...allowed].join(', ');
      throw new MethodNotAllowedError(`method ${method} is not allowed on ${path}`, { headers: { allow } });
    }
    throw new RouteNotFoundError(`no route for ${method} ${path}`);
  }
}
