import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../lib/errors.ts';
import { normalizePath } from '../../lib/router/normalize.ts';

describe('normalizePath', () => {
  it.each([
    ['/a/b', '/a/b', '/a/b'],
    ['/', '/', '/'],
    ['//admin', '/admin', '/admin'],
    ['/a//b///c', '/a/b/c', '/a/b/c'],
    ['/public/../admin', '/admin', '/admin'],
    ['/public/%2e%2e/admin', '/admin', '/admin'],
    ['/public/%2E%2e/admin', '/admin', '/admin'],
    ['/public/.%2e/admin', '/admin', '/admin'],
    ['/public/%2e/admin', '/public/admin', '/public/admin'],
    ['/admin/./x', '/admin/x', '/admin/x'],
    ['/../../x', '/x', '/x'],
    ['/..', '/', '/'],
    ['/a/b/..', '/a/', '/a/'],
    ['/a/b/.', '/a/b/', '/a/b/'],
    ['/a/', '/a/', '/a/'],
    ['/a//', '/a/', '/a/'],
  ])('resolves %s to %s for matching and %s upstream', (path, match, forward) => {
    expect(normalizePath(path)).toEqual({ match, forward });
  });

  it('decodes segments for matching and keeps their bytes for the upstream', () => {
    expect(normalizePath('/caf%C3%A9/x')).toEqual({ match: '/café/x', forward: '/caf%C3%A9/x' });
    expect(normalizePath('/a%20b/%7e')).toEqual({ match: '/a b/~', forward: '/a%20b/%7e' });
  });

  it('keeps an encoded slash inside its segment, in both forms, and marks the path (for routes with encodedSlashes: keep)', () => {
    expect(normalizePath('/a%2Fb/c')).toEqual({ match: '/a%2Fb/c', forward: '/a%2Fb/c', encodedSlash: true });
    expect(normalizePath('/a%2fb')).toEqual({ match: '/a%2Fb', forward: '/a%2fb', encodedSlash: true });
    expect(normalizePath('/public/..%2fadmin')).toEqual({ match: '/public/..%2Fadmin', forward: '/public/..%2fadmin', encodedSlash: true });
  });

  it('does not treat a backslash as a separator, and marks the path', () => {
    expect(normalizePath('/public/..\\admin')).toEqual({ match: '/public/..\\admin', forward: '/public/..\\admin', encodedSlash: true });
  });

  it.each(['/a%5Cb', '/a%5cb', '/a\\b', '/x/%2F', '/%2f'])('marks %s as holding an encoded slash or backslash', (path) => {
    expect(normalizePath(path).encodedSlash).toBe(true);
  });

  it.each(['/a/b', '/a%20b', '/a/%2e%2e/b', '/a%2Eb', '/%252F'])('does not mark %s', (path) => {
    expect(normalizePath(path).encodedSlash).toBeUndefined();
  });

  it('resolves dot-segments after the encoded slash rule, so %2e%2e%2f is one ordinary segment', () => {
    expect(normalizePath('/a/%2e%2e%2fb').match).toBe('/a/..%2Fb');
  });

  it.each(['/bad%zz', '/%', '/a/%E0%A4%A', '/%C3%28'])('refuses malformed percent-encoding in %s with a 400', (path) => {
    expect(() => normalizePath(path)).toThrow(BadRequestError);
    try {
      normalizePath(path);
    } catch (err) {
      expect((err as BadRequestError).status).toBe(400);
    }
  });

  it.each(['/api/%00', '/api/a%00b/x', '/%00/..', '/a/%2e%00'])('refuses an encoded NUL in %s with a 400, as nginx does', (path) => {
    expect(() => normalizePath(path)).toThrow(/encoded NUL/);
  });

  it.each(['/api/..;/admin', '/api/.;/admin', '/api/..;x=1/admin', '/api/%2e%2e;/admin', '/api/..%3b/admin', '/..;'])('refuses the dot-segment with a path parameter in %s (read as .. by Tomcat and Jetty) with a 400', (path) => {
    expect(() => normalizePath(path)).toThrow(/dot-segment with a path parameter/);
  });

  it('keeps path parameters on other segments, and segments that only start with dots', () => {
    expect(normalizePath('/api/x;a=b/./y')).toEqual({ match: '/api/x;a=b/y', forward: '/api/x;a=b/y' });
    expect(normalizePath('/api/...;/y/.')).toEqual({ match: '/api/...;/y/', forward: '/api/...;/y/' });
  });

  it('returns the same object shape for paths that need no work', () => {
    const r = normalizePath('/users/42/orders');
    expect(r.match).toBe('/users/42/orders');
    expect(r.forward).toBe('/users/42/orders');
  });
});

describe('normalizePath properties', () => {
  const segment = fc.oneof(
    fc.constantFrom('', '.', '..', '%2e', '%2E%2e', '.%2e', 'a', 'b', 'admin', '%2F', '%2f', 'caf%C3%A9', '%20', '~', 'x.y', '...'),
    fc.stringMatching(/^[a-z0-9._~-]{1,6}$/),
  );
  const path = fc.array(segment, { maxLength: 10 }).map((segs) => '/' + segs.join('/'));

  it('never leaves a dot-segment or an empty segment (other than a trailing slash) in what it matches or forwards', () => {
    fc.assert(fc.property(path, (p) => {
      const { match, forward } = normalizePath(p);
      for (const out of [match, forward]) {
        expect(out.startsWith('/')).toBe(true);
        const segs = out.slice(1).split('/');
        segs.slice(0, -1).forEach((s) => expect(s).not.toBe(''));
        for (const s of segs) expect(['.', '..']).not.toContain(s);
      }
      for (const s of forward.slice(1).split('/')) {
        expect(decodeURIComponent(s.replace(/%2f/gi, '%252F'))).not.toMatch(/^\.\.?$/);
      }
    }));
  });

  it('keeps forward and match aligned segment for segment', () => {
    fc.assert(fc.property(path, (p) => {
      const { match, forward } = normalizePath(p);
      const m = match.split('/');
      const f = forward.split('/');
      expect(m.length).toBe(f.length);
      f.forEach((raw, i) => expect(decodeURIComponent(raw.replace(/%2f/gi, '%252F'))).toBe(m[i]));
    }));
  });

  it('is idempotent on the forwarded path (the encoded-slash mark is about the path as received)', () => {
    fc.assert(fc.property(path, (p) => {
      const once = normalizePath(p);
      const twice = normalizePath(once.forward);
      expect({ match: twice.match, forward: twice.forward }).toEqual({ match: once.match, forward: once.forward });
      // A forwarded path holding an encoded slash came from a received one holding it.
      if (twice.encodedSlash === true) expect(once.encodedSlash).toBe(true);
    }));
  });

  it('marks exactly the paths that hold %2F, %5C or a backslash as received', () => {
    fc.assert(fc.property(path, (p) => {
      expect(normalizePath(p).encodedSlash === true).toBe(/%2f|%5c|\\/i.test(p));
    }));
  });
});
