import { isGatewayError } from '../../errors.ts';
import type { GatewayResponse } from '../../types.ts';

/** What a call ended with, as far as the breaker cares: a response head, or an error before one. */
export type CallOutcome = { response: GatewayResponse; error?: undefined } | { error: unknown; response?: undefined };

/**
 * The default verdict: an error counts when it is `retryable` (connection
 * errors 502, no instance 503, timeouts 504), a response when its status is
 * 5xx other than 501. Anything else is no failure — a 4xx says the client
 * erred, not the upstream. (A client abort never reaches this: it is no
 * verdict at all.)
 */
export function defaultIsFailure(outcome: CallOutcome): boolean {
  if (outcome.response !== undefined) {
    const s = outcome.response.status;
    return s >= 500 && s <= 599 && s !== 501;
  }
  return isGatewayError(outcome.error) && outcome.error.retryable;
}

/**
 * A verdict that fails the listed response statuses (and retryable errors,
 * as the default does): what YAML's `failureStatuses` turns into.
 */
export function failOnStatuses(statuses: Iterable<number>): (outcome: CallOutcome) => boolean {
  const set = new Set(statuses);
  for (const s of set) {
    if (!Number.isInteger(s) || s < 100 || s > 599) throw new TypeError(`failureStatuses: expected HTTP statuses, got ${s}`);
  }
  return (outcome) => outcome.response !== undefined
    ? set.has(outcome.response.status)
    : defaultIsFailure(outcome);
}
