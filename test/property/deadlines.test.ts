import fc from 'fast-check';
import { VirtualTimeScheduler } from 'rxjs';
import { describe, it } from 'vitest';
import { Deadlines, type Deadline } from '../../lib/stages/timeout/deadlines.ts';

/**
 * The timeout stage's deadline list against a model on virtual time:
 * whatever the order of joins, leaves and time passing, every entry that
 * stays expires exactly once at exactly its deadline, none that left
 * expires, and no timer is left pending once the list is empty.
 */
const MS = 10;

interface Entry extends Deadline { id: number; expiredAt: number | null }
interface Model { live: Map<number, number>; next: number; lapse: boolean; emptiedAt: number }
interface Real { scheduler: VirtualTimeScheduler; list: Deadlines; entries: Map<number, Entry>; expiredCount: number }

function check(m: Model, r: Real): void {
  const now = r.scheduler.now();
  for (const [id, deadline] of m.live) {
    const e = r.entries.get(id)!;
    if (deadline <= now) {
      if (e.expiredAt !== deadline) throw new Error(`entry ${id} due at ${deadline} expired at ${e.expiredAt} (now ${now})`);
      m.live.delete(id);
    } else if (e.expiredAt !== null) throw new Error(`entry ${id} expired early`);
  }
  if (r.list.size !== m.live.size) throw new Error(`list holds ${r.list.size}, model ${m.live.size}`);
  if (m.live.size > 0) m.emptiedAt = Infinity;
  else if (m.emptiedAt === Infinity) m.emptiedAt = now;
  const pending = r.scheduler.actions.length;
  if (m.live.size > 0 && pending !== 1) throw new Error(`${pending} timers pending`);
  // Lapsing: the timer left pending on an empty list is gone within MS of it emptying.
  if (m.live.size === 0 && pending !== 0 && (!m.lapse || pending > 1 || now >= m.emptiedAt + MS)) throw new Error('a timer is pending with the list empty');
}

class Join implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, r: Real): void {
    const id = m.next++;
    const e: Entry = {
      id, deadline: 0, prevDeadline: null, nextDeadline: null, expiredAt: null,
      expire() {
        if (this.expiredAt !== null) throw new Error(`entry ${id} expired twice`);
        this.expiredAt = r.scheduler.now();
      },
    };
    r.entries.set(id, e);
    r.list.add(e);
    m.live.set(id, r.scheduler.now() + MS);
    check(m, r);
  }
  toString = () => 'join';
}

class Clear implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, r: Real): void {
    r.list.clear();
    m.live.clear();
    if (r.scheduler.actions.length !== 0) throw new Error('a timer is pending after clear');
    m.emptiedAt = -Infinity;
    check(m, r);
  }
  toString = () => 'clear';
}

class Leave implements fc.Command<Model, Real> {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.live.size > 0;
  run(m: Model, r: Real): void {
    const ids = [...m.live.keys()];
    const id = ids[this.pick % ids.length]!;
    r.list.remove(r.entries.get(id)!);
    r.list.remove(r.entries.get(id)!);
    m.live.delete(id);
    check(m, r);
  }
  toString = () => `leave(${this.pick})`;
}

class Pass implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const until = r.scheduler.now() + this.ms;
    r.scheduler.maxFrames = until;
    r.scheduler.flush();
    // flush stops at the last action it ran: move the clock to `until` with an empty action.
    r.scheduler.schedule(() => {}, until - r.scheduler.now());
    r.scheduler.flush();
    check(m, r);
  }
  toString = () => `pass(${this.ms})`;
}

const commands = fc.commands([
  fc.constant(new Join()),
  fc.nat(50).map((n) => new Leave(n)),
  fc.integer({ min: 0, max: 2 * MS }).map((n) => new Pass(n)),
  fc.constant(new Clear()),
], { maxCommands: 60 });

function setup(lapse: boolean) {
  const scheduler = new VirtualTimeScheduler();
  scheduler.maxFrames = 0;
  const list = new Deadlines(scheduler, () => scheduler.now(), MS, lapse);
  return { model: { live: new Map(), next: 0, lapse, emptiedAt: -Infinity }, real: { scheduler, list, entries: new Map(), expiredCount: 0 } };
}

describe('Deadlines', () => {
  it('expires exactly the entries still on it, each once at its deadline, with one timer at most', () => {
    fc.assert(fc.property(commands, (cmds) => {
      fc.modelRun(() => setup(false), cmds);
    }), { numRuns: 300 });
  });

  it('with lapse, does the same, leaving the timer pending on an empty list for at most its limit', () => {
    fc.assert(fc.property(commands, (cmds) => {
      fc.modelRun(() => setup(true), cmds);
    }), { numRuns: 300 });
  });
});
