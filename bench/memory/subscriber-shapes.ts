/**
 * What constructing one of the stages' InnerSubscribers costs as the number
 * of InnerSubscriber subclasses a process constructs grows. Each subclass
 * gives its instances their own hidden class, so the base class's field
 * initialisers see one receiver shape per subclass; past four they are
 * megamorphic, and V8 (Node 20) runs a megamorphic class-field *define*
 * (ES2022 fields, as esbuild and tsc emit them here) through the runtime.
 * The full route constructs five kinds per request (rate limit, cache,
 * breaker, retry, timeout), the policies route four. docs/gc-promotion.md.
 *
 *   node --import ./bin/loader/register.mjs bench/memory/subscriber-shapes.ts [root of another checkout]
 *
 * Prints ns per construction (min of 30 batches) for 1…8 subclasses, each
 * count in a process of its own (feedback is per process).
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Subscriber } from 'rxjs';
import type * as subscriber from '../../lib/subscriber.ts';

const [, self, first, second] = process.argv;
if (first !== undefined && first.startsWith('--n=')) {
  // child: one tree, one count
  const n = Number(first.slice(4));
  const { InnerSubscriber } = (await import(pathToFileURL(resolve(second!, 'lib/subscriber.ts')).href)) as typeof subscriber;
  const Inner = InnerSubscriber as unknown as abstract new (d: Subscriber<unknown>) => object;
  const classes = Array.from({ length: n }, (_, i) => class extends Inner {
    readonly tag = i;
    protected onNext(): void {}
  });
  const downstream = { add: () => {} } as unknown as Subscriber<unknown>;
  let kept: object | null = null;
  let best = Infinity;
  for (let b = 0; b < 30; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 20_000; i++) kept = new classes[i % n]!(downstream);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 20_000);
  }
  if (kept === null) throw new Error('nothing constructed');
  console.log(best.toFixed(0));
} else {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const trees = [root, ...(first === undefined ? [] : [resolve(first)])];
  console.log(`| subclasses | ${trees.join(' | ')} |\n|---:|${trees.map(() => '---:').join('|')}|`);
  for (const n of [1, 2, 4, 5, 6, 8]) {
    const row = trees.map((t) => execFileSync(process.execPath, [...process.execArgv, self!, `--n=${n}`, t], { encoding: 'utf8' }).trim());
    console.log(`| ${n} | ${row.map((ns) => `${ns} ns`).join(' | ')} |`);
  }
}
