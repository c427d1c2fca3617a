import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientSlots, IdleSweep, type IdleWatched } from '../../lib/server/limits-cores.ts';
import { RequestBody } from '../../lib/server/request-body.ts';
import type { Exchange } from '../../lib/server/connection.ts';
import type { BodySink } from '../../lib/types.ts';

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
  function body(): { body: RequestBody; calls: string[] } {
    const calls: string[] = [];
    let rb: RequestBody;
    const exchange = {
      pipeBody: (sink: BodySink) => { calls.push('pipe'); expect(sink).toBe(rb); },
      resumeBody: () => { calls.push('resume'); },
      destroyBody: () => { calls.push('destroy'); },
    } as unknown as Exchange;
    rb = new RequestBody(exchange, null);
    return { body: rb, calls };
  }

  it('is read only while piped and its sink takes more; chunks mark it stirred', () => {
    const { body: b, calls } = body();
    expect(b.reading).toBe(false);
    let accept = true;
    const got: string[] = [];
    b.pipe({ write: (c) => { got.push(Buffer.from(c).toString()); return accept; }, end: () => got.push('end') });
    expect(b.reading).toBe(true);
    expect(b.write(Buffer.from('a'))).toBe(true);
    expect(b.stirred).toBe(true);
    accept = false;
    expect(b.write(Buffer.from('b'))).toBe(false);
    expect(b.reading).toBe(false);
    b.resume();
    expect(b.reading).toBe(true);
    b.end();
    expect(b.reading).toBe(false);
    expect(got).toEqual(['a', 'b', 'end']);
    expect(calls).toEqual(['pipe', 'resume']);
  });

  it('is not read once destroyed', () => {
    const { body: b, calls } = body();
    b.pipe({ write: () => true, end: () => undefined });
    b.destroy();
    expect(b.reading).toBe(false);
    expect(calls).toEqual(['pipe', 'destroy']);
  });
});
