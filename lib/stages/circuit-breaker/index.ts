import { defined } from '../../config/defined.ts';
import type { Policy } from '../../types.ts';
import { defineStage, type StageContext } from '../define.ts';
import { Breaker, type BreakerTransition } from './breaker.ts';
import { circuitBreaker } from './circuit-breaker.ts';
import { failOnStatuses, type CallOutcome } from './outcome.ts';
import { BreakerRegistry } from './registry.ts';
import { circuitBreakerOptions, type CircuitBreakerConfig } from './schema.ts';

export { circuitBreaker, judged, type CircuitBreakerOptions, type CircuitBreakerPolicy, type CircuitFallback } from './circuit-breaker.ts';
export { Breaker, type BreakerOptions, type BreakerState, type BreakerTransition } from './breaker.ts';
export { BreakerRegistry } from './registry.ts';
export { defaultIsFailure, failOnStatuses, type CallOutcome } from './outcome.ts';
export type { TripRule } from './trip-rule.ts';

type Plan =
  | { kind: 'service'; policy: Policy }
  | { kind: 'instance'; registry: BreakerRegistry; isFailure?: (outcome: CallOutcome) => boolean };

/**
 * One breaker per service, shared by all its routes (a route with its own
 * `circuitBreaker` object gets its own), or with `perInstance: true` one per
 * upstream instance, which `forward` consults when it picks an instance.
 * Breakers live in the resource registry, so a rebuild keeps their state.
 */
function plan(options: CircuitBreakerConfig, ctx: StageContext): Plan {
  const { perInstance, failureStatuses, fallback, ...rest } = defined(options);
  const service = ctx.service.name;
  const own = ctx.route.circuitBreaker !== undefined;
  const key = `breaker:${service}${own ? `:${ctx.route.path}` : ''}:${JSON.stringify(options)}`;
  const onTransition = (t: BreakerTransition): void => {
    ctx.events.emit('breakerTransition', { service, breaker: t.key, from: t.from, to: t.to });
  };
  const runtime = ctx.runtime;
  const isFailure = failureStatuses !== undefined ? failOnStatuses(failureStatuses) : undefined;
  if (perInstance === true) {
    const registry = ctx.resources.get(`${key}:instances`, () => new BreakerRegistry({ ...rest, runtime, onTransition }));
    return isFailure === undefined ? { kind: 'instance', registry } : { kind: 'instance', registry, isFailure };
  }
  const breaker = ctx.resources.get(key, () => new Breaker({ ...rest, key: service, runtime, onTransition }));
  return {
    kind: 'service',
    policy: circuitBreaker(breaker, {
      ...(isFailure !== undefined ? { isFailure } : {}),
      ...(fallback !== undefined ? { fallback: defined(fallback) } : {}),
    }),
  };
}

/** `circuitBreaker` (route over service; on by default; `false` turns it off): 503 at once while the service is sick. */
export const circuitBreakerStage = defineStage({
  name: 'circuitBreaker',
  options: circuitBreakerOptions,
  service: true,
  onByDefault: true,
  build(options, ctx) {
    const p = plan(options, ctx);
    return p.kind === 'service' ? p.policy : null;
  },
});

/** `forward`'s options for per-instance breakers (`perInstance: true`); empty otherwise. */
export function instanceBreakers(value: unknown, ctx: StageContext): { breakers?: BreakerRegistry; isFailure?: (outcome: CallOutcome) => boolean } {
  if (value === false || value === undefined) return {};
  const options = circuitBreakerOptions.parse(value);
  if (options.perInstance !== true) return {};
  const p = plan(options, ctx);
  if (p.kind !== 'instance') return {};
  return p.isFailure === undefined ? { breakers: p.registry } : { breakers: p.registry, isFailure: p.isFailure };
}
