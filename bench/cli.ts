/** The command line of `npm run bench`. */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { TARGETS } from './targets.ts';

export interface Cli {
  quick: boolean;
  durationSec: number;
  connections: number;
  rounds: number;
  warmupSec: number;
  /** Seconds of load right before each measured round of a target (not measured). */
  roundWarmupSec: number;
  targets: string[] | null;
  workers: number;
  generator: 'wrk' | 'autocannon' | undefined;
  out: string | null;
  overhead: boolean;
  help: boolean;
  /** Arguments after `--overhead`, passed to bench/overhead.ts. */
  rest: string[];
}

export const USAGE = `usage: npm run bench -- [options]
  --quick               CI smoke run: 2 s per target, 1 round, no warmup; does not write latest.md
  --duration N          seconds per target per round (default 10)
  --connections N       keep-alive connections (default 50)
  --rounds N            interleaved rounds, median reported (default 3)
  --warmup N            seconds of warmup per target before round 1 (default 3)
  --round-warmup N      seconds of unmeasured load right before each measured round (default 1)
  --targets a,b,c       subset of: ${TARGETS.map((t) => t.name).join(', ')}
  --workers N           worker threads for the 'workers' target (default: cores)
  --generator NAME      wrk (default when installed) or autocannon
  --out FILE            markdown report path (default bench/results/latest.md)
  --overhead [...]      run the pipeline overhead micro-benchmark instead (bench/overhead.ts)
  --scenario NAME [...] run a scenario instead: slow-instance (bench/slow-instance.ts: --duration S, --connections N),
                        websocket (bench/websocket.ts: --duration S, --connections N, --sse-clients N)`;

function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} needs a positive integer, got ${value}`);
  return n;
}

export function parseCli(argv: readonly string[]): Cli {
  const cli: Cli = {
    quick: false,
    durationSec: 10,
    connections: 50,
    rounds: 3,
    warmupSec: 3,
    roundWarmupSec: 1,
    targets: null,
    workers: availableParallelism(),
    generator: undefined,
    out: null,
    overhead: false,
    help: false,
    rest: [],
  };
  const given = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const name = (eq >= 0 ? arg.slice(0, eq) : arg).replace(/^--/, '');
    const value = (): string => (eq >= 0 ? arg.slice(eq + 1) : (argv[++i] ?? ''));
    given.add(name);
    switch (name) {
      case 'quick':
        cli.quick = true;
        break;
      case 'duration':
        cli.durationSec = positiveInt(name, value().replace(/s$/, ''));
        break;
      case 'connections':
        cli.connections = positiveInt(name, value());
        break;
      case 'rounds':
        cli.rounds = positiveInt(name, value());
        break;
      case 'warmup': {
        const v = value().replace(/s$/, '');
        cli.warmupSec = v === '0' ? 0 : positiveInt(name, v);
        break;
      }
      case 'round-warmup': {
        const v = value().replace(/s$/, '');
        cli.roundWarmupSec = v === '0' ? 0 : positiveInt(name, v);
        break;
      }
      case 'targets':
        cli.targets = value().split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case 'workers':
        cli.workers = positiveInt(name, value());
        break;
      case 'generator': {
        const v = value();
        if (v !== 'wrk' && v !== 'autocannon') throw new TypeError(`--generator must be wrk or autocannon, got ${v}`);
        cli.generator = v;
        break;
      }
      case 'out':
        cli.out = resolve(value());
        break;
      case 'overhead':
        cli.overhead = true;
        cli.rest = argv.slice(i + 1);
        return cli;
      case 'help':
      case 'h':
      case '-h':
        cli.help = true;
        break;
      default:
        throw new TypeError(`unknown option ${arg}\n${USAGE}`);
    }
  }
  if (cli.quick) {
    if (!given.has('duration')) cli.durationSec = 2;
    if (!given.has('rounds')) cli.rounds = 1;
    if (!given.has('warmup')) cli.warmupSec = 0;
    if (!given.has('round-warmup')) cli.roundWarmupSec = 0;
  }
  return cli;
}
