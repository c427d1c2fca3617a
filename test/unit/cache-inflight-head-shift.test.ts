import { expect, it } from 'vitest';
import { fnv1a } from '../../lib/hash.ts';
import { Inflight } from '../../lib/stages/cache/inflight.ts';

it('keeps a led key\'s head mark when the key shifts back after an earlier key of its run settles', () => {
  const home = (k: string) => fnv1a(k) & 63;
  const a = 'GET api.test/a';
  let b = '';
  for (let i = 0; b === ''; i++) if (home(`GET api.test/b${i}`) === home(a)) b = `GET api.test/b${i}`;
  const inflight = new Inflight<string>();
  const settleA = inflight.lead(a);
  const settleB = inflight.lead(b); // probes on: one slot past A's
  settleB(undefined); // B's leader has its upstream head
  settleA(null); // A settles: B shifts back into A's slot
  const told: Array<string | null | undefined> = [];
  inflight.join(b, (v) => told.push(v));
  expect(told).toEqual([undefined]); // told at once: B's leader has its head
  settleB('entry');
  expect(told).toEqual([undefined, 'entry']);
});
