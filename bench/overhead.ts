/**
 * Pipeline overhead micro-benchmark: what one pass-through stage costs per
 * request, in time and in bytes allocated, for the shapes stages are written
 * in. No network: N policies around a terminal handler that returns
 * `of(response)`, subscribed once per request, all synchronous.
 *
 *   npm run bench -- --overhead [--quick] [--batch N] [--repeats N]
 *
 * Method. Time: the median over `repeats` batches of `batch` requests of
 * (batch wall time / batch), after a warmup that lets V8 optimise. Bytes: run
 * with `--expose-gc` and a fixed 64 MiB young generation
 * (`--min-semi-space-size=64 --max-semi-space-size=64`, set by `run.ts`);
 * collect, read `heapUsed`, run a batch small enough to fit in the young
 * generation, read `heapUsed` again; the delta over the batch is what the
 * requests allocated (nothing is freed without a GC). Batches are sized from
 * a first estimate to produce at most 8 MiB; a batch during which a GC ran
 * anyway (new-space usage went down) is discarded. Medians over repeats.
 * Cases are interleaved (A B C … A B C …) so machine noise hits all alike. Node 20 has no allocation counter
 * (`total_allocated_bytes`), hence this method.
 */
import { getHeapSpaceStatistics } from 'node:v8';
import { defer, map, Observable, of, tap, type Observer } from 'rxjs';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../lib/types.ts';

type Kind = 'call' | 'map' | 'tap' | 'defer' | 'observable';

const noop = (): void => {};

/** The shapes a pass-through stage is written in. */
const POLICIES: Record<Kind, { label: string; policy: Policy }> = {
  call: { label: '`(next) => (req) => next(req)` (no RxJS operator)', policy: (next) => (req) => next(req) },
  map: { label: '`next(req).pipe(map(identity))`', policy: (next) => (req) => next(req).pipe(map((res) => res)) },
  tap: { label: '`next(req).pipe(tap(noop))`', policy: (next) => (req) => next(req).pipe(tap(noop)) },
  defer: { label: '`defer(() => next(req))`', policy: (next) => (req) => defer(() => next(req)) },
  observable: {
    label: '`new Observable((s) => next(req).subscribe(s))` (hand-written operator)',
    policy: (next) => (req) => new Observable<GatewayResponse>((subscriber) => next(req).subscribe(subscriber)),
  },
};

const DEPTHS = [0, 1, 4, 8, 16];

function argNumber(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  const n = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} needs a positive integer`);
  return n;
}

function request(): GatewayRequest {
  return {
    id: 'bench-0001',
    method: 'GET',
    path: '/bench',
    query: '',
    normalizedPath: '/bench',
    headers: { host: '127.0.0.1', accept: 'application/json' },
    remoteAddress: '127.0.0.1',
    protocol: 'http',
    body: null,
    params: {},
    receivedAt: 0,
    locals: {}, attempt: { number: 1, tried: [], instance: null },
  };
}

function build(kind: Kind, depth: number): Handler {
  const response: GatewayResponse = { status: 200, headers: ['content-type', 'application/json'], body: null };
  let handler: Handler = () => of(response);
  for (let i = 0; i < depth; i++) handler = POLICIES[kind].policy(handler);
  return handler;
}

/** One request: subscribe, take the response, complete. */
function makeRunner(handler: Handler, req: GatewayRequest): { run(n: number): void; responses(): number } {
  let seen = 0;
  const observer: Observer<GatewayResponse> = {
    next: () => {
      seen += 1;
    },
    error: (err: unknown) => {
      throw err;
    },
    complete: noop,
  };
  return {
    run(n) {
      for (let i = 0; i < n; i++) handler(req).subscribe(observer);
    },
    responses: () => seen,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function newSpaceUsed(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_used_size ?? 0;
}

/**
 * Bytes one batch allocated, or null when a GC ran during it: every object
 * these requests allocate is small and short-lived, so it lands in new space,
 * which only grows between collections and shrinks when one runs.
 */
function allocated(run: (n: number) => void, batch: number): number | null {
  const before = newSpaceUsed();
  const heapBefore = process.memoryUsage().heapUsed;
  run(batch);
  const heapAfter = process.memoryUsage().heapUsed;
  const after = newSpaceUsed();
  if (after < before || heapAfter < heapBefore) return null;
  return (heapAfter - heapBefore) / batch;
}

/** Requests per allocation batch: at most 8 MiB of garbage, far below the 64 MiB young generation. */
function allocBatchFor(run: (n: number) => void, gc: () => void, limit: number): number {
  gc();
  const probe = allocated(run, 100) ?? 4096;
  return Math.max(100, Math.min(limit, Math.floor((8 * 2 ** 20) / Math.max(probe, 1))));
}

interface Row {
  kind: Kind;
  depth: number;
  ns: number;
  bytes: number | null;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const batch = argNumber(argv, 'batch', quick ? 5_000 : 50_000);
  const repeats = argNumber(argv, 'repeats', quick ? 3 : 9);
  const warmup = quick ? 20_000 : 200_000;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) process.stderr.write('no --expose-gc: bytes/request not measured (run via `npm run bench -- --overhead`)\n');

  const req = request();
  const cases = (Object.keys(POLICIES) as Kind[]).flatMap((kind) =>
    DEPTHS.map((depth) => ({ kind, depth, runner: makeRunner(build(kind, depth), req), ns: [] as number[], bytes: [] as number[] })),
  );
  // Warm every shape first, then interleave the measurements (A B C … A B C …)
  // so a busy machine slows every case alike.
  for (const c of cases) c.runner.run(warmup);
  for (let r = 0; r < repeats; r++) {
    for (const c of cases) {
      const t0 = process.hrtime.bigint();
      c.runner.run(batch);
      c.ns.push(Number(process.hrtime.bigint() - t0) / batch);
    }
  }
  const allocBatches = new Map<(typeof cases)[number], number>();
  if (gc !== undefined) {
    for (const c of cases) allocBatches.set(c, allocBatchFor(c.runner.run, gc, batch));
    for (let attempt = 0; attempt < repeats * 3; attempt++) {
      for (const c of cases) {
        if (c.bytes.length >= repeats) continue;
        gc();
        const bytes = allocated(c.runner.run, allocBatches.get(c) ?? 1000);
        if (bytes !== null) c.bytes.push(bytes);
      }
    }
  }
  const rows: Row[] = cases.map((c) => {
    const made = c.runner.responses();
    if (made === 0) throw new Error(`${c.kind}×${c.depth}: no response`);
    return { kind: c.kind, depth: c.depth, ns: median(c.ns), bytes: c.bytes.length > 0 ? median(c.bytes) : null };
  });
  const deepest = DEPTHS[DEPTHS.length - 1] ?? 1;
  const lines = [
    `### Pipeline overhead (${new Date().toISOString()}, Node ${process.version})`,
    '',
    `Per request through N pass-through stages around \`() => of(response)\`; median of ${repeats} batches of ${batch} (time), and of batches allocating ≤ 8 MiB each (bytes; heap-used delta with no GC in between).`,
    '',
    `| stage shape | ${DEPTHS.map((d) => `N=${d}`).join(' | ')} | per stage (N=0→${deepest}) |`,
    `|---|${DEPTHS.map(() => '---:').join('|')}|---:|`,
  ];
  for (const kind of Object.keys(POLICIES) as Kind[]) {
    const mine = rows.filter((r) => r.kind === kind);
    const cell = (r: Row): string => `${r.ns.toFixed(0)} ns${r.bytes === null ? '' : `, ${Math.round(r.bytes)} B`}`;
    const first = mine[0];
    const last = mine[mine.length - 1];
    const slope =
      first && last
        ? `${((last.ns - first.ns) / deepest).toFixed(0)} ns` +
          (first.bytes !== null && last.bytes !== null ? `, ${Math.round((last.bytes - first.bytes) / deepest)} B` : '')
        : '—';
    lines.push(`| ${POLICIES[kind].label} | ${mine.map(cell).join(' | ')} | ${slope} |`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
