import { describe, expect, it } from 'vitest';
import * as errors from '../../lib/errors.ts';
import { ForbiddenError, GatewayError, errorResponseBody, isGatewayError, type ErrorCode } from '../../lib/errors.ts';

/**
 * A user's own error codes type-check without a cast, while rxgate's own
 * stay the closed `ErrorCode` set. The type-level lines are checked by
 * `tsc --noEmit -p .` (test/ is in tsconfig's include): each
 * `@ts-expect-error` fails the check if its line stops being an error.
 */

// The docs' example (docs/pipeline-in-code.md, "Errors of your own"), as written there.
class PaymentRequiredError extends GatewayError {
  readonly status = 402;
  readonly code = 'PAYMENT_REQUIRED';
}
class TenantSuspendedError extends ForbiddenError {}

// Every built-in error class's code is one of ErrorCode (a typo in lib/errors.ts fails tsc here).
type Builtin = { [K in Exclude<keyof typeof errors, 'GatewayError'>]: (typeof errors)[K] extends abstract new (...args: never[]) => infer I ? (I extends GatewayError ? I : never) : never }[Exclude<keyof typeof errors, 'GatewayError'>];
const builtinCodesAreClosed: Builtin['code'] extends ErrorCode ? true : false = true;
// ErrorCode itself stays closed.
// @ts-expect-error 'PAYMENT_REQUIRED' is no built-in code
const notBuiltin: ErrorCode = 'PAYMENT_REQUIRED';
// A built-in class's code keeps its literal type.
const forbidden: 'FORBIDDEN' = new TenantSuspendedError('suspended').code;

describe('error codes of a user\'s own', () => {
  it('answers a subclass of GatewayError with its own code, typed without a cast', () => {
    const err = new PaymentRequiredError('pay first', { headers: { 'x-billing': 'overdue' } });
    const code: 'PAYMENT_REQUIRED' = err.code;
    expect([isGatewayError(err), err.status, code, err.name]).toEqual([true, 402, 'PAYMENT_REQUIRED', 'PaymentRequiredError']);
    expect(JSON.parse(errorResponseBody(err))).toEqual({ error: { code: 'PAYMENT_REQUIRED', message: 'pay first' } });
    expect([builtinCodesAreClosed, notBuiltin, forbidden]).toEqual([true, 'PAYMENT_REQUIRED', 'FORBIDDEN']);
  });
});
