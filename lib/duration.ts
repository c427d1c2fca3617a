/** A duration in milliseconds, or a string such as `'250ms'`, `'30s'`, `'5m'`, `'1h'`, `'1d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}` | string;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses a duration once, at build time. Throws `TypeError` on anything else,
 * so a bad option fails when the stage is built, never per request.
 */
export function parseDuration(value: Duration, name = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`${name}: expected a non-negative number of ms, got ${value}`);
    return value;
  }
  const m = PATTERN.exec(value.trim());
  if (m === null) throw new TypeError(`${name}: expected a duration like 250ms, 30s or 5m, got ${JSON.stringify(value)}`);
  return Number(m[1]) * UNITS[m[2]!]!;
}
