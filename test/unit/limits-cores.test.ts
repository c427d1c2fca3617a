import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientSlots, IdleSweep, type IdleWatched } from '../../lib/server/limits-cores.ts';
import { RequestBody } from '../../lib/server/request-body.ts';
import type { HttpResponse } from 'uWebSockets.js';

const ROUNDS = 4;

function watched(): IdleWatched & { fired: number } {
  const w = { stirred: false, reading: true, idleRounds: 0, fired: 0, owner: null as { idle(): void } | null };
  w.owner = { idle: () => { w.fired++; } };
  return w;
}

describe('IdleSweep', () => {
  it('tells the owner once a reading body has had no chunk for `rounds` sweeps in a row, and only once', () => {
    const sweep = new IdleSweep(ROUNDS);
    const body = watched();
    sweep.add(body);
    for (let i = 0; i < ROUNDS - 1; i++) sweep.sweep();
    expect(body.fired).toBe(0);
    sweep.sweep();
    expect(body.fired).toBe(1);
    expect(sweep.size).toBe(0);
    sweep.sweep();
    expect(body.fired).toBe(1);
  });

  it('starts counting again after a chunk, and never counts while the body is not being read', () => {
    const sweep = new IdleSweep(ROUNDS);
    const body = watched();
    sweep.add(body);
    for (let i = 0; i < 3; i++) sweep.sweep();
    body.stirred = true;
    for (let i = 0; i < ROUNDS; i++) sweep.sweep();
    expect(body.fired).toBe(0);
    body.reading = false;
    for (let i = 0; i < 10 * ROUNDS; i++) sweep.sweep();
    expect(body.fired).toBe(0);
    body.reading = true;
    for (let i = 0; i < ROUNDS; i++) sweep.sweep();
    expect(body.fired).toBe(1);
  });

  // Commands against a model: for each body, the sweeps since it last made progress.
  type Model = { idle: number[]; reading: boolean[]; fired: boolean[]; watched: boolean[] };
  type Real = { sweep: IdleSweep; bodies: Array<ReturnType<typeof watched>> };
  class Chunk implements fc.AsyncCommand<Model, Real> {
    constructor(readonly i: number) {}
    check = (): boolean => true;
    async run(m: Model, r: Real): Promise<void> {
      r.bodies[this.i]!.stirred = true;
      m.idle[this.i] = -1;
    }
    toString = (): string => `chunk(${this.i})`;
  }
  class Hold implements fc.AsyncCommand<Model, Real> {
    constructor(readonly i: number, readonly reading: boolean) {}
    check = (): boolean => true;
    async run(m: Model, r: Real): Promise<void> {
      r.bodies[this.i]!.reading = this.reading;
      m.reading[this.i] = this.reading;
    }
    toString = (): string => `${this.reading ? 'resume' : 'pause'}(${this.i})`;
  }
  class Sweep implements fc.AsyncCommand<Model, Real> {
    check = (): boolean => true;
    async run(m: Model, r: Real): Promise<void> {
      r.sweep.sweep();
      m.idle.forEach((n, i) => {
        if (!m.watched[i]) return;
        if (n === -1 || !m.reading[i]) m.idle[i] = 0;
        else if (++m.idle[i]! >= ROUNDS) {
          m.fired[i] = true;
          m.watched[i] = false;
        }
      });
      expect(r.bodies.map((b) => b.fired > 0)).toEqual(m.fired);
      expect(r.bodies.every((b) => b.fired <= 1)).toBe(true);
      expect(r.sweep.size).toBe(m.watched.filter(Boolean).length);
    }
    toString = (): string => 'sweep';
  }

  it('fires for exactly the bodies the model says, whatever chunks, pauses and sweeps come', async () => {
    const n = 3;
    const commands = fc.commands([
      fc.nat(n - 1).map((i) => new Chunk(i)),
      fc.tuple(fc.nat(n - 1), fc.boolean()).map(([i, reading]) => new Hold(i, reading)),
      fc.constant(new Sweep()),
      fc.constant(new Sweep()),
    ], { maxCommands: 60 });
    await fc.assert(fc.asyncProperty(commands, async (cmds) => {
      const real: Real = { sweep: new IdleSweep(ROUNDS), bodies: Array.from({ length: n }, watched) };
      for (const b of real.bodies) real.sweep.add(b);
      const model: Model = { idle: Array(n).fill(0), reading: Array(n).fill(true), fired: Array(n).fill(false), watched: Array(n).fill(true) };
      await fc.asyncModelRun(() => ({ model, real }), cmds);
    }), { numRuns: 200 });
  });
});

describe('ClientSlots', () => {
  it('gives each client up to max slots, takes them back, and forgets a client with none', () => {
    const slots = new ClientSlots(2);
    expect(slots.acquire('a')).toBe(true);
    expect(slots.acquire('a')).toBe(true);
    expect(slots.acquire('a')).toBe(false);
    expect(slots.acquire('b')).toBe(true);
    slots.release('a');
    expect(slots.inFlight('a')).toBe(1);
    expect(slots.acquire('a')).toBe(true);
    slots.release('a');
    slots.release('a');
    slots.release('a');
    expect(slots.inFlight('a')).toBe(0);
    expect(slots.acquire('a')).toBe(true);
  });
});

describe('RequestBody', () => {
  /** A body on a fake uWS response that records pause/resume; `gone` as the exchange says. */
  function body(): { body: RequestBody; calls: string[]; connection: { gone: boolean } } {
    const calls: string[] = [];
    const res = { pause: () => calls.push('pause'), resume: () => calls.push('resume') } as unknown as HttpResponse;
    const connection = { gone: false };
    return { body: new RequestBody(res, connection, null), calls, connection };
  }
  const chunk = (text: string): ArrayBuffer => new Uint8Array(Buffer.from(text)).buffer;

  it('queues chunks and pauses the client until piped, then passes them on in order and resumes', () => {
    const { body: b, calls } = body();
    b.onData(chunk('a'), false);
    b.onData(chunk('b'), false);
    expect(calls).toEqual(['pause']);
    expect(b.reading).toBe(false);
    const got: string[] = [];
    b.pipe({ write: (c) => { got.push(Buffer.from(c).toString()); return true; }, end: () => got.push('end') });
    expect(got).toEqual(['a', 'b']);
    expect(calls).toEqual(['pause', 'resume']);
    expect(b.reading).toBe(true);
    b.onData(chunk('c'), true);
    expect(got).toEqual(['a', 'b', 'c', 'end']);
    expect(b.reading).toBe(false);
    expect(b.bytesIn).toBe(3);
  });

  it('is read only while its sink takes more; a refused chunk pauses the client and marks it not reading', () => {
    const { body: b, calls } = body();
    let accept = false;
    const got: string[] = [];
    b.pipe({ write: (c) => { got.push(Buffer.from(c).toString()); return accept; }, end: () => got.push('end') });
    expect(b.reading).toBe(true);
    b.onData(chunk('a'), false);
    expect(b.stirred).toBe(true);
    expect(b.reading).toBe(false);
    expect(calls).toEqual(['pause']);
    accept = true;
    b.resume();
    expect(b.reading).toBe(true);
    expect(calls).toEqual(['pause', 'resume']);
    b.onData(chunk('b'), true);
    expect(got).toEqual(['a', 'b', 'end']);
  });

  it('is not read once destroyed, lets uWS drop the rest, and never touches a response uWS no longer owns', () => {
    const { body: b, calls } = body();
    b.onData(chunk('a'), false);
    const got: string[] = [];
    b.destroy();
    expect(b.reading).toBe(false);
    expect(calls).toEqual(['pause', 'resume']);
    b.onData(chunk('b'), true);
    b.pipe({ write: (c) => { got.push(Buffer.from(c).toString()); return true; }, end: () => got.push('end') });
    expect(got).toEqual([]);

    const other = body();
    other.body.onData(chunk('a'), false);
    other.connection.gone = true;
    other.body.destroy();
    expect(other.calls).toEqual(['pause']);
  });
});
