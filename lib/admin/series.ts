/** How many seconds of history each route keeps for the admin page's plots. */
export const SERIES_SECONDS = 600; // 10 min

/** What the admin page plots for one route: one slot per second, oldest first. */
export interface SeriesView {
  requests: number[];
  errors: number[];
  /** Latency quantiles in ms, null in a second without requests. */
  p50: Array<number | null>;
  p99: Array<number | null>;
}

/**
 * Per-second counts for the last `seconds`: requests, 5xx answers, and
 * latency bucket counts (`bounds.length + 1` per second), oldest first.
 * What workers send the main thread, which adds them up before `summarize`.
 */
export interface SeriesWindow {
  requests: number[];
  errors: number[];
  buckets: number[][];
}

/**
 * One route's ring buffer of per-second request and error counts and
 * latency bucket counts, for the last SERIES_SECONDS. `record` is written
 * by the hot path (a few array increments, no allocation); seconds come
 * from the clock time the caller passes, so virtual time works. Counts are
 * 32-bit (a route's ring is ~36 KB with 13 buckets).
 */
export class RouteSeries {
  private readonly requests = new Uint32Array(SERIES_SECONDS);
  private readonly errors = new Uint32Array(SERIES_SECONDS);
  private readonly buckets: Uint32Array;
  private readonly width: number;
  /** The latest second written (clock ms / 1000, floored). */
  private head = -Infinity;

  constructor(readonly bounds: readonly number[]) {
    this.width = bounds.length + 1;
    this.buckets = new Uint32Array(SERIES_SECONDS * this.width);
  }

  /** One answer at clock time `nowMs`, in latency bucket `bucket`; `error`: a 5xx. */
  record(nowMs: number, bucket: number, error: boolean): void {
    const sec = Math.floor(nowMs / 1000);
    if (sec > this.head) this.advance(sec);
    else if (this.head - sec >= SERIES_SECONDS) return;
    const slot = sec % SERIES_SECONDS;
    this.requests[slot]!++;
    if (error) this.errors[slot]!++;
    this.buckets[slot * this.width + bucket]!++;
  }

  /** The last `seconds` (at most SERIES_SECONDS) up to clock time `nowMs`, oldest first. */
  window(nowMs: number, seconds: number): SeriesWindow {
    const n = Math.max(1, Math.min(SERIES_SECONDS, Math.floor(seconds)));
    const now = Math.floor(nowMs / 1000);
    if (now > this.head) this.advance(now);
    const out: SeriesWindow = { requests: [], errors: [], buckets: [] };
    for (let sec = now - n + 1; sec <= now; sec++) {
      if (sec < 0 || this.head - sec >= SERIES_SECONDS) {
        out.requests.push(0);
        out.errors.push(0);
        out.buckets.push(new Array<number>(this.width).fill(0));
        continue;
      }
      const slot = sec % SERIES_SECONDS;
      out.requests.push(this.requests[slot]!);
      out.errors.push(this.errors[slot]!);
      out.buckets.push(Array.from(this.buckets.subarray(slot * this.width, (slot + 1) * this.width)));
    }
    return out;
  }

  /** Clears the seconds after `head` up to `sec` (all of them after a long gap). */
  private advance(sec: number): void {
    const from = Math.max(this.head + 1, sec - SERIES_SECONDS + 1);
    for (let s = from; s <= sec; s++) {
      const slot = s % SERIES_SECONDS;
      this.requests[slot] = 0;
      this.errors[slot] = 0;
      this.buckets.fill(0, slot * this.width, (slot + 1) * this.width);
    }
    this.head = sec;
  }
}

/** Adds windows of the same length (one per worker) slot by slot. */
export function mergeWindows(windows: readonly SeriesWindow[]): SeriesWindow {
  const first = windows[0]!;
  const out: SeriesWindow = {
    requests: first.requests.slice(),
    errors: first.errors.slice(),
    buckets: first.buckets.map((b) => b.slice()),
  };
  for (const w of windows.slice(1)) {
    for (let i = 0; i < out.requests.length && i < w.requests.length; i++) {
      out.requests[i]! += w.requests[i]!;
      out.errors[i]! += w.errors[i]!;
      const row = out.buckets[i]!;
      const other = w.buckets[i]!;
      for (let j = 0; j < row.length; j++) row[j]! += other[j] ?? 0;
    }
  }
  return out;
}

/** A window's requests, errors and p50/p99 latency (ms) per second. */
export function summarize(window: SeriesWindow, bounds: readonly number[]): SeriesView {
  return {
    requests: window.requests,
    errors: window.errors,
    p50: window.buckets.map((b) => quantile(b, bounds, 0.5)),
    p99: window.buckets.map((b) => quantile(b, bounds, 0.99)),
  };
}

/**
 * The `q` quantile of bucket counts, in ms, interpolated within its bucket
 * as Prometheus's `histogram_quantile` does (bounds in seconds); the highest
 * bound when it falls above every bound; null without observations.
 */
export function quantile(counts: readonly number[], bounds: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (below + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1]! * 1000;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return (lower + (upper - lower) * ((rank - below) / c)) * 1000;
    }
    below += c;
  }
  return bounds[bounds.length - 1]! * 1000;
}
