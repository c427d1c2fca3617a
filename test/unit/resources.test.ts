import { describe, expect, it } from 'vitest';
import { Resources } from '../../lib/resources/registry.ts';

describe('Resources', () => {
  it('makes an object once per key and hands the same one to every later build', () => {
    const resources = new Resources();
    let made = 0;
    const first = resources.get('breaker:users', () => ({ n: ++made }));
    const again = resources.get('breaker:users', () => ({ n: ++made }));
    const other = resources.get('breaker:orders', () => ({ n: ++made }));
    expect(again).toBe(first);
    expect(other).not.toBe(first);
    expect(made).toBe(2);
    expect(resources.has('breaker:users')).toBe(true);
    expect(resources.has('breaker:nope')).toBe(false);
  });

  it('closes everything newest first, and one failing close does not keep the others open', async () => {
    const resources = new Resources();
    const closed: string[] = [];
    resources.get('client', () => 'client', () => { closed.push('client'); });
    resources.get('store', () => 'store', () => {
      closed.push('store');
      throw new Error('boom');
    });
    resources.onClose(() => { closed.push('hook'); });
    await resources.close();
    expect(closed).toEqual(['hook', 'store', 'client']);
    // Closed means emptied: the next get makes a new object.
    expect(resources.has('client')).toBe(false);
  });

  it('runs the work registered before listening once', async () => {
    const resources = new Resources();
    let runs = 0;
    resources.beforeListen(async () => { runs++; });
    await resources.ready();
    await resources.ready();
    expect(runs).toBe(1);
  });
});
