import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { GatewayEvents } from '../../lib/observe/events.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { observe } from '../../lib/observe/wire.ts';

describe('GatewayEvents', () => {
  it('delivers each event to its listeners until they stop listening', () => {
    const events = new GatewayEvents();
    const seen: string[] = [];
    const stop = events.on('rateLimited', (e) => seen.push(e.route));
    events.emit('rateLimited', { route: 'a' });
    events.emit('retryRefused', { service: 's', route: 'a', requestId: '1' });
    stop();
    events.emit('rateLimited', { route: 'b' });
    expect(seen).toEqual(['a']);
  });

  it('mirrors events on node:diagnostics_channel as rxgate:<type>', () => {
    const events = new GatewayEvents();
    const seen: unknown[] = [];
    const listener = (message: unknown): void => {
      seen.push(message);
    };
    diagnostics.subscribe('rxgate:breakerTransition', listener);
    try {
      events.emit('breakerTransition', { service: 'users', breaker: 'users', from: 'closed', to: 'open' });
    } finally {
      diagnostics.unsubscribe('rxgate:breakerTransition', listener);
    }
    events.emit('breakerTransition', { service: 'users', breaker: 'users', from: 'open', to: 'half-open' });
    expect(seen).toEqual([{ service: 'users', breaker: 'users', from: 'closed', to: 'open' }]);
  });

  it('keeps two gateways\' counts apart, and observe() turns events into metrics', async () => {
    const a = new GatewayEvents();
    const b = new GatewayEvents();
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    observe(a, metrics, silentLogger);
    a.emit('rateLimited', { route: '/x' });
    a.emit('rateLimited', { route: '/x' });
    b.emit('rateLimited', { route: '/x' });
    a.emit('retry', { service: 'users', route: '/x', attempt: 1 });
    a.emit('degraded', { reason: 'redis_error' });
    a.emit('breakerTransition', { service: 'users', breaker: 'users', from: 'closed', to: 'open' });
    const text = await metrics.registry.metrics();
    expect(text).toContain('rxgate_rate_limited_total{route="/x"} 2');
    expect(text).toContain('rxgate_retries_total{service="users"} 1');
    expect(text).toContain('rxgate_degraded_total{reason="redis_error"} 1');
    expect(text).toContain('rxgate_circuit_state{service="users"} 2');
    expect(text).toContain('rxgate_circuit_transitions_total{service="users",to="open"} 1');
  });
});
