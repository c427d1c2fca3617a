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

describe('Resources across a rebuild', () => {
  it('hands a tracked rebuild what it asks for again, and retires the rest to close later, newest first', async () => {
    const resources = new Resources();
    const closed: string[] = [];
    const pool = resources.get('service:a', () => ({ name: 'a' }), () => { closed.push('a'); });
    resources.get('service:b', () => 'b', () => { closed.push('b'); });
    resources.get('store:b', () => 'store b', () => { closed.push('store b'); });
    resources.onClose(() => { closed.push('hook 1'); });

    resources.track();
    expect(resources.get('service:a', () => ({ name: 'new a' }))).toBe(pool);
    resources.get('service:c', () => 'c', () => { closed.push('c'); });
    resources.onClose(() => { closed.push('hook 2'); });
    const retire = resources.retire();
    // Out of the registry at once (a later build makes them anew), closed only when asked.
    expect(resources.has('service:b')).toBe(false);
    expect(closed).toEqual([]);
    await retire();
    expect(closed).toEqual(['hook 1', 'store b', 'b']);
    await resources.close();
    expect(closed.slice(3)).toEqual(['hook 2', 'c', 'a']);
  });

  it('closes what an abandoned rebuild made and keeps what it found', async () => {
    const resources = new Resources();
    const closed: string[] = [];
    resources.get('service:a', () => 'a', () => { closed.push('a'); });
    resources.track();
    resources.get('service:a', () => 'again');
    resources.get('service:new', () => 'new', () => { closed.push('new'); });
    let started = 0;
    resources.beforeListen(async () => { started++; });
    await resources.abandon();
    expect(closed).toEqual(['new']);
    expect(resources.has('service:a')).toBe(true);
    expect(resources.has('service:new')).toBe(false);
    await resources.ready();
    expect(started).toBe(0);
  });

  it('keeps what a found object was made with: a rebuild that finds a store does not retire its client', async () => {
    // Before: the store's client was not asked for again, so every reload closed the Redis client under the stores.
    const resources = new Resources();
    const closed: string[] = [];
    const client = resources.get('redis:a', () => 'client', () => { closed.push('client'); });
    const store = resources.get('store', () => `store on ${resources.get('redis:a', () => 'other')}`, () => { closed.push('store'); });
    resources.get('other', () => resources.get('redis:b', () => 'client b', () => { closed.push('client b'); }), () => { closed.push('other'); });
    expect(store).toBe('store on client');
    resources.track();
    expect(resources.get('store', () => 'new store')).toBe(store);
    await resources.retire()();
    // A store closes before the client it uses.
    expect(closed).toEqual(['other', 'client b']);
    expect(resources.has('redis:a')).toBe(true);
    expect(resources.get('redis:a', () => 'new client')).toBe(client);
    // Twice over: the dependency is still known after a rebuild kept it.
    resources.track();
    resources.get('store', () => 'new store');
    await resources.retire()();
    expect(resources.has('redis:a')).toBe(true);
  });
});
