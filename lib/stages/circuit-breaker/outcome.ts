import { isGatewayError } from '../../errors.ts';
import type { GatewayResponse } from '../../types.ts';

/** What a call ended with, as far as the breaker cares: a response head, or an error before one. */
export type CallOutcome = { response: GatewayResponse; error?: undefined } | { error: unknown; response?: undefined };

/**
 * The default verdict: only what the gateway itself saw go wrong counts — an
 * error that is `retryable` (connection refused or reset 502, no instance
 * 503, timeout 504). Upstream responses never count, whatever their status:
 * one endpoint answering 500 says nothing about the rest of the service, and
 * must not open a breaker that every route shares. List statuses with
 * `failOnStatuses` to count them. (A client abort never reaches this: it is
 * no verdict at all.)
 */
export function defaultIsFailure(outcome: CallOutcome): boolean {
  return outcome.response === undefined && isGatewayError(outcome.error) && outcome.error.retryable;
}

/**
 * A verdict that fails the listed response statuses, and retryable errors as
 * the default does: what YAML's `failureStatuses` turns into.
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
