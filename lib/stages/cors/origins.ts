/**
 * Which `Origin`s a CORS policy admits, compiled once: exact origins in a
 * set, wildcard subdomains (`https://*.example.com`) as prefix + suffix,
 * regular expressions matched whole.
 */

/** An origin pattern: `*` (any), an exact origin, `scheme://*.domain[:port]`, or `{ regex }`. */
export type OriginPattern = string | { regex: string };

/** Host labels a wildcard stands for: one or more, letters, digits and hyphens. */
const SUBDOMAINS = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;
const EXACT = /^[a-z][a-z0-9+.-]*:\/\/[^/*?#\s]+$/;
const WILDCARD = /^([a-z][a-z0-9+.-]*:\/\/)\*(\.[^/*?#\s]+)$/;

export interface OriginMatcher {
  /** True when every origin is admitted (`*`). */
  readonly any: boolean;
  matches(origin: string): boolean;
}

/** @throws TypeError for a pattern that is none of the forms above. */
export function originMatcher(patterns: readonly OriginPattern[]): OriginMatcher {
  const exact = new Set<string>();
  const wildcards: Array<{ prefix: string; suffix: string }> = [];
  const regexes: RegExp[] = [];
  let any = false;
  for (const p of patterns) {
    if (typeof p === 'object') {
      try {
        regexes.push(new RegExp(`^(?:${p.regex})$`, 'i'));
      } catch (err) {
        throw new TypeError(`cors.origins: bad regex ${JSON.stringify(p.regex)}: ${(err as Error).message}`);
      }
      continue;
    }
    const o = p.toLowerCase().replace(/\/$/, '');
    if (o === '*') any = true;
    else if (o === 'null' || EXACT.test(o)) exact.add(o);
    else {
      const m = WILDCARD.exec(o);
      if (m === null) throw new TypeError(`cors.origins: ${JSON.stringify(p)} is not an origin (https://app.example.com), a wildcard (https://*.example.com), * or { regex }`);
      wildcards.push({ prefix: m[1]!, suffix: m[2]! });
    }
  }
  let lastOrigin = '';
  let lastVerdict = false;
  return {
    any,
    matches(origin) {
      if (any) return true;
      if (origin === lastOrigin) return lastVerdict;
      const o = origin.toLowerCase();
      let ok = exact.has(o);
      for (let i = 0; !ok && i < wildcards.length; i++) {
        const { prefix, suffix } = wildcards[i]!;
        ok = o.length > prefix.length + suffix.length && o.startsWith(prefix) && o.endsWith(suffix)
          && SUBDOMAINS.test(o.slice(prefix.length, o.length - suffix.length));
      }
      for (let i = 0; !ok && i < regexes.length; i++) ok = regexes[i]!.test(origin);
      lastOrigin = origin;
      lastVerdict = ok;
      return ok;
    },
  };
}
