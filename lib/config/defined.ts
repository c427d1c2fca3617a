/**
 * A parsed options object as the factories take it: keys whose value may be
 * `undefined` become optional keys without `undefined`, at every depth
 * (`exactOptionalPropertyTypes`).
 */
export type Defined<T> = T extends readonly unknown[] ? T
  : T extends (...args: never[]) => unknown ? T
  : T extends object
    ? { [K in keyof T as undefined extends T[K] ? never : K]: Defined<T[K]> }
      & { [K in keyof T as undefined extends T[K] ? K : never]?: Defined<Exclude<T[K], undefined>> }
    : T;

/**
 * Drops the keys whose value is `undefined`, at every depth of plain
 * objects: zod marks absent optional keys `| undefined`, and the factories'
 * options say "absent", not "undefined".
 */
export function defined<T>(value: T): Defined<T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    return value as Defined<T>;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = defined(v);
  return out as Defined<T>;
}
