import { defined } from '../../config/defined.ts';
import type { Policy } from '../../types.ts';
import { defineStage, type StageContext } from '../define.ts';
import { Breaker, type BreakerTransition } from './breaker.ts';
import { circuitBreaker } from './circuit-breaker.ts';
import { failOnStatuses } from './outcome.ts';
import { circuitBreakerOptions, type CircuitBreakerConfig } from './schema.ts';

export { circuitBreaker, judged, type CircuitBreakerOptions, type CircuitBreakerPolicy, type CircuitFallback } from './circuit-breaker.ts';
export { Breaker, type BreakerOptions, type BreakerState, type BreakerTransition } from './breaker.ts';
export { BreakerRegistry } from './registry.ts';
export { defaultIsFailure, failOnStatuses, type CallOutcome } from './outcome.ts';
export type { TripRule } from './trip-rule.ts';

/**
 * One breaker per service, shared by all its routes (a route with its own
 * `circuitBreaker` object gets its own). Breakers live in the resource
 * registry, so a rebuild keeps their state. `perInstance: true` builds no
 * stage: it configures the service's outlier ejection (`serviceFor`), the
 * one per-instance mechanism.
 */
function serviceBreaker(options: CircuitBreakerConfig, ctx: StageContext): Policy | null {
  const { perInstance, failureStatuses, fallback, ...rest } = defined(options);
  if (perInstance === true) return null;
  const service = ctx.service.name;
  const own = ctx.route.circuitBreaker !== undefined;
  const key = `breaker:${service}${own ? `:${ctx.route.path}` : ''}:${JSON.stringify(options)}`;
  const onTransition = (t: BreakerTransition): void => {
    // A reload that replaced this breaker took its key out of the registry, or put another breaker under it
    // (a reload back to these options); it still settles the requests it admitted.
    const replaced = ctx.resources.peek(key) !== breaker;
    ctx.events.emit('breakerTransition', { service, breaker: t.key, from: t.from, to: t.to, ...(replaced ? { replaced } : {}) });
  };
  const runtime = ctx.runtime;
  const isFailure = failureStatuses !== undefined ? failOnStatuses(failureStatuses) : undefined;
  const breaker = ctx.resources.get(key, () => {
    // A reload that changes the options makes a new, closed breaker: say so, or its state series keeps the old one's.
    ctx.events.emit('breakerBuilt', { service, breaker: service });
    return new Breaker({ ...rest, key: service, runtime, onTransition });
  });
  return circuitBreaker(breaker, {
    ...(isFailure !== undefined ? { isFailure } : {}),
    ...(fallback !== undefined ? { fallback: defined(fallback) } : {}),
  });
}

/** `circuitBreaker` (route over service; on by default; `false` turns it off): 503 at once while the service is sick. */
export const circuitBreakerStage = defineStage({
  name: 'circuitBreaker',
  options: circuitBreakerOptions,
  service: true,
  onByDefault: true,
  build: serviceBreaker,
});
