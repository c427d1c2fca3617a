import { afterEach, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import type { StoragePlan } from '../../lib/stages/cache/policy.ts';
import { READ_AHEAD_DEFAULT, readAhead } from '../../lib/stages/cache/read-ahead.ts';
import { StoreTee } from '../../lib/stages/cache/tee.ts';
import type { Body, BodySink, GatewayResponse } from '../../lib/types.ts';

/**
 * The stored miss's body reads the upstream at the upstream's pace while it
 * may be stored, not at its client's (review RD, D1): the entry is stored
 * when the upstream ends, the client is fed what was read at its own pace,
 * and past `maxEntrySize` the upstream waits for the client again.
 */

const plan: StoragePlan = {
  freshness: { storedAt: 0, initialAge: 0, freshUntil: 60_000, staleWhileRevalidate: 0, staleIfError: 0 },
  headers: [],
  vary: [],
};
const res: GatewayResponse = { status: 200, headers: [], body: null };

/** An upstream body the test drives: `send` gives the tee a chunk and answers what its write said. */
function upstream() {
  let sink: BodySink | null = null;
  const source = {
    resumed: 0,
    destroyed: false,
    length: null,
    pipe: (s: BodySink) => { sink = s; },
    resume: () => { source.resumed++; },
    destroy: () => { source.destroyed = true; },
    send: (text: string): boolean => sink!.write(Buffer.from(text)),
    end: (): void => sink!.end(),
  };
  return source satisfies Body;
}

/** A client whose sink takes chunks but says wait while `slow`. */
function client() {
  const got: string[] = [];
  const c = { got, slow: true, ended: false, sink: { write: (chunk: Uint8Array) => (got.push(Buffer.from(chunk).toString()), !c.slow), end: () => { c.ended = true; } } };
  return c;
}

function setup(limit: number, readOn: boolean | (() => boolean) = false) {
  const up = upstream();
  const events: string[] = [];
  let entry: CacheEntry | undefined;
  const tee = new StoreTee(up, limit, {
    stored: (e) => { entry = e; events.push('stored'); },
    dropped: () => events.push('dropped'),
    readOn: () => (typeof readOn === 'function' ? readOn() : readOn),
  }, res, plan, true);
  const c = client();
  tee.pipe(c.sink);
  return { up, tee, c, events, entry: () => entry };
}

describe('StoreTee reads the upstream at its own pace while the body may be stored', () => {
  it('reads on while its client waits, stores the entry when the upstream ends, then feeds the client the rest in order', () => {
    const { up, tee, c, events, entry } = setup(100);
    // The client says wait after the first chunk; the upstream is never told to (before: false, the client's answer).
    expect([up.send('one '), up.send('two '), up.send('three')]).toEqual([true, true, true]);
    up.end();
    // Stored (and so the waiters told) while the client has one chunk of three.
    expect([events, c.got, c.ended]).toEqual([['stored'], ['one '], false]);
    expect(Buffer.concat(entry()!.body!.chunks).toString()).toBe('one two three');
    c.slow = false;
    tee.resume();
    expect([c.got.join(''), c.ended, events, up.resumed]).toEqual(['one two three', true, ['stored'], 0]);
    // A resume after the end ends nothing twice.
    let ends = 0;
    c.sink.end = () => { ends++; };
    tee.resume();
    expect(ends).toBe(0);
  });

  it('past maxEntrySize drops the copy and makes the upstream wait for the client again, then passes the rest through', () => {
    const { up, tee, c, events } = setup(25);
    expect([up.send('aaaaaaaaaa'), up.send('bbbbbbbbbb')]).toEqual([true, true]); // 20 bytes read ahead of the client
    expect(up.send('cccccccccc')).toBe(false); // 30 > 25: not stored, so not read ahead further
    expect([events, c.got]).toEqual([['dropped'], ['aaaaaaaaaa']]);
    c.slow = false;
    tee.resume();
    expect([c.got.join(''), up.resumed]).toEqual(['aaaaaaaaaabbbbbbbbbbcccccccccc', 1]);
    expect(up.send('dd')).toBe(true);
    up.end();
    expect([c.got.join(''), c.ended, events]).toEqual(['aaaaaaaaaabbbbbbbbbbccccccccccdd', true, ['dropped']]);
  });

  it('a client that goes away: reads on into the entry when its owner says others wait, else drops it and stops the upstream', () => {
    const kept = setup(100, true);
    kept.up.send('one ');
    kept.tee.destroy();
    expect([kept.up.send('two'), kept.up.destroyed]).toEqual([true, false]);
    kept.up.end();
    expect([kept.events, Buffer.concat(kept.entry()!.body!.chunks).toString()]).toEqual([['stored'], 'one two']);
    const alone = setup(100, false);
    alone.up.send('one ');
    alone.tee.destroy();
    expect([alone.events, alone.up.destroyed]).toEqual([['dropped'], true]);
  });
});

describe('the process-wide read-ahead budget (review RG, H1)', () => {
  afterEach(() => { readAhead.max = READ_AHEAD_DEFAULT; });

  it('a second slow leader past the budget makes its upstream wait for its client, and the bytes held return to 0', () => {
    readAhead.max = 15;
    const [used, refused] = [readAhead.used, readAhead.refused];
    const a = setup(100);
    const b = setup(100);
    // Each client takes its first chunk and says wait; the next is read ahead of it.
    expect([a.up.send('a'), a.up.send('aaaaaaaaaa')]).toEqual([true, true]);
    expect(readAhead.used - used).toBe(10);
    // B's read-ahead would pass the budget: its upstream is told to wait (before: true, 20 bytes held).
    expect([b.up.send('b'), b.up.send('bbbbbbbbbb')]).toEqual([true, false]);
    expect([readAhead.used - used, readAhead.refused - refused]).toEqual([20, 1]);
    // A's client takes its queue: A's bytes leave the budget.
    a.c.slow = false;
    a.tee.resume();
    expect([readAhead.used - used, a.c.got.join('')]).toEqual([10, 'aaaaaaaaaaa']);
    // B's client takes its queue: its upstream goes on, and the copy is still stored at the end.
    b.c.slow = false;
    b.tee.resume();
    expect([readAhead.used - used, b.up.resumed]).toEqual([0, 1]);
    expect(b.up.send('!')).toBe(true);
    b.up.end();
    expect([b.events, Buffer.concat(b.entry()!.body!.chunks).toString(), b.c.ended]).toEqual([['stored'], 'bbbbbbbbbbb!', true]);
    // A client that goes away with chunks read ahead gives them back too.
    const c = setup(100);
    c.up.send('c');
    c.up.send('cccc');
    expect(readAhead.used - used).toBe(4);
    c.tee.destroy();
    expect(readAhead.used - used).toBe(0);
  });

  it('reads nothing ahead with maxReadAhead 0: the upstream waits as soon as the client does, and no refusal is counted (review RL, L3)', () => {
    readAhead.max = 0;
    const [used, refused] = [readAhead.used, readAhead.refused];
    const s = setup(100);
    // The client takes the chunk and says wait. Before: `used <= max` held (0 <= 0), one more chunk was read and queued.
    expect(s.up.send('a')).toBe(false);
    expect([readAhead.used - used, readAhead.refused - refused]).toEqual([0, 0]);
    s.c.slow = false;
    s.tee.resume();
    expect([s.up.resumed, s.up.send('b'), s.c.got.join('')]).toEqual([1, true, 'ab']);
    s.up.end();
    expect([s.events, s.c.ended]).toEqual([['stored'], true]);
  });
});

describe('a stored miss whose client\'s writer refuses the last chunk (the flaky cache-slow-leader-waiters case)', () => {
  it('completes the exchange once the writer, having sent the last byte it refused, resumes the body (not before: a drain would cut it)', () => {
    const queued = setup(100);
    let completed = 0;
    queued.up.send('one ');
    queued.up.send('two');
    queued.up.end();
    expect(queued.tee.completesLater({ complete: () => { completed++; } })).toBe(true); // 'two' is still queued
    queued.tee.resume(); // the writer takes 'two' and says wait: it is still the writer's to send
    expect([queued.c.got.join(''), completed]).toEqual(['one two', 0]);
    queued.tee.resume(); // onWritable's tryEnd sent the rest: the writer resumes the body (eb8e431)
    expect(completed).toBe(1);
    const direct = setup(100);
    direct.up.send('only');
    direct.up.end();
    expect(direct.tee.completesLater({ complete: () => { completed++; } })).toBe(true);
    direct.tee.resume();
    expect(completed).toBe(2);
  });
});

describe('a leader read on for waiters after its client left (review RG, L2)', () => {
  it('stops reading the upstream at its next chunk once every waiter has left too', () => {
    let waiters = 1;
    const { up, tee, events } = setup(100, () => waiters > 0);
    up.send('one ');
    tee.destroy(); // the leading client leaves; one waiter waits
    expect([up.send('two '), up.destroyed]).toEqual([true, false]);
    waiters = 0; // the waiter leaves (its client gone, or its deadline)
    // Before: true, and the upstream was read for nobody up to its end or maxEntrySize.
    expect([up.send('three'), up.destroyed, events]).toEqual([false, true, ['dropped']]);
  });
});
