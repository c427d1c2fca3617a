import { Resolver } from 'node:dns';
import { z } from 'zod';
import { parseDuration } from '../duration.ts';

/** Schema pieces every stage's options share. */

const durationPattern = /^\d+(\.\d+)?(ms|s|m|h|d)$/;

/** `250ms`, `30s`, `5m`, `1h`, `1d`, or a number of milliseconds. */
export const duration = z.union([
  z.number().nonnegative(),
  z.string().regex(durationPattern, 'expected a duration like 250ms, 30s or 5m'),
]);

/**
 * The longest delay Node's timers take (2^31-1 ms, 24.8 days): a longer one
 * fires at once (TimeoutOverflowWarning, then 1 ms): `hedge.after: 720h`
 * sent its hedge at once, two upstream requests for one. nginx and Envoy
 * keep their timers in 64 bits; here a longer value is refused on the keys
 * that feed a timer. `timeouts.*` go through deadline lists, which arm for
 * at most this and again for what is left, so they may be longer.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Whether a duration fits a timer (true for what is no duration: the duration schema says so). */
export function fitsTimer(d: number | string): boolean {
  try {
    return parseDuration(d) <= MAX_TIMER_MS;
  } catch {
    return true;
  }
}

/** True of every key it is on (some have a default, some take false or 0 for none: their docs say which). */
export const TIMER_BOUND = "must be at most 24.8 days (2^31-1 ms, Node's timer limit)";

/** A duration that feeds a timer (a timeout, an interval, a backoff): at most `MAX_TIMER_MS`. */
export const timerDuration = duration.refine(fitsTimer, TIMER_BOUND);

/** A period or a timeout that must run (health probes, a discovery file's reads): more than 0 and at most `MAX_TIMER_MS`. */
export const positiveTimer = timerDuration.refine((d) => {
  try {
    return parseDuration(d) > 0;
  } catch {
    return true;
  }
}, 'must be more than 0');

/** An HTTP method, upper-cased. */
export const method = z.string().regex(/^[A-Za-z]+$/, 'expected an HTTP method').transform((m) => m.toUpperCase());

/** A header name (an RFC 9110 token), as written. */
export const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header name');

/** A port to listen on; 0 picks a free one. */
export const listenPort = z.number().int().min(0).max(65535);

/** A port to connect (or redirect) to. */
export const port = z.number().int().min(1).max(65535);

/** An HTTP status code. */
export const status = z.number().int().min(100).max(599);

/** An absolute http:// or https:// URL. */
export const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an http:// or https:// URL');

/** What `Resolver.setServers` takes (it throws at start otherwise): an IP, with `:port` (`[::1]:53` for IPv6). */
export const dnsServer = z.string().refine((s) => {
  try {
    new Resolver().setServers([s]);
    return true;
  } catch {
    return false;
  }
}, 'expected an IP address, with :port if not 53 ([::1]:5353 for IPv6)');

/** A JavaScript regular expression's source, refused here when it does not compile (the router would at start). */
export const regexSource = z.string().superRefine((source, ctx) => {
  try {
    new RegExp(source);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});
