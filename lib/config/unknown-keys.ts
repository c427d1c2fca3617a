import type { z } from 'zod';

/** The few zod definition fields the walk reads (zod 4's `_zod.def`). */
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  options?: readonly z.ZodType[];
  left?: z.ZodType;
  right?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  items?: readonly z.ZodType[];
  getter?: () => z.ZodType;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/**
 * The keys the object schemas at `path` in `schema` allow: every branch of a
 * union that has an object there counts. Read only when a config is refused.
 */
export function allowedKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const out = new Set<string>();
  const walk = (s: z.ZodType, i: number, depth: number): void => {
    if (depth > 64) return;
    const def = defOf(s);
    const next = (t: z.ZodType | undefined, at = i): void => {
      if (t !== undefined) walk(t, at, depth + 1);
    };
    switch (def.type) {
      case 'optional': case 'nullable': case 'default': case 'prefault': case 'catch': case 'readonly': case 'nonoptional':
        return next(def.innerType);
      case 'pipe':
        next(def.in);
        return next(def.out);
      case 'lazy':
        return next(def.getter?.());
      case 'union':
        for (const o of def.options ?? []) next(o);
        return;
      case 'intersection':
        next(def.left);
        return next(def.right);
      default:
    }
    if (i === path.length) {
      if (def.type === 'object') for (const k of Object.keys(def.shape ?? {})) out.add(k);
      return;
    }
    const key = path[i];
    if (def.type === 'object') next(def.shape?.[String(key)], i + 1);
    else if (def.type === 'array') next(def.element, i + 1);
    else if (def.type === 'record') next(def.valueType, i + 1);
    else if (def.type === 'tuple' && typeof key === 'number') next(def.items?.[key], i + 1);
  };
  walk(schema, 0, 0);
  return [...out];
}

/** Edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two neighbours (`nmae`, `name`: 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * What to add to "unknown key": `did you mean timeout?` for an allowed key
 * within two edits (one for keys under six letters), or the longest allowed
 * key that starts the given one or starts with it (`jwksUrl` for `jwksUrlCooldown`),
 * else the allowed keys.
 */
export function unknownKeyHint(key: string, allowed: readonly string[]): string {
  if (allowed.length === 0) return '';
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const a of allowed) {
    const d = editDistance(lower, a.toLowerCase());
    if (d < bestDistance) {
      best = a;
      bestDistance = d;
    }
  }
  // Two edits make any short key another one (`per` -> `key`): at most a third of its letters.
  if (best !== undefined && bestDistance <= Math.min(2, Math.floor(key.length / 3))) return ` (did you mean ${best}?)`;
  const near = allowed.filter((a) => a.length >= 3 && lower.length >= 3 && (a.toLowerCase().startsWith(lower) || lower.startsWith(a.toLowerCase())));
  const longest = near.sort((a, b) => b.length - a.length)[0];
  if (longest !== undefined) return ` (did you mean ${longest}?)`;
  // Every object says what it takes, however many keys (until session 10 only up to 10: `auth.jwt` got nothing, `retry.backoff` a list).
  return ` (allowed: ${[...allowed].sort().join(', ')})`;
}
