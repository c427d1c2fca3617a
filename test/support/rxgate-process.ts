import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { inject } from 'vitest';
import type { CliFrom } from './cli-from.ts';
import { until } from './wait.ts';

/**
 * An rxgate process run as bin/rxgate.mjs runs it, with its JSON log lines
 * parsed as they come: from dist/ when the global setup found it the build of
 * the current sources, else on the sources through the repository's
 * TypeScript loader (test/support/cli-from.ts; the run says which).
 */

const ROOT = join(import.meta.dirname, '../..');
const here = (path: string): string => pathToFileURL(join(ROOT, path)).href;

/** Where this run's rxgate processes load rxgate from. */
export const CLI_FROM: CliFrom = inject('rxgateCli') ?? 'loader';

/** The CLI and the package's entry a runner imports, and node's arguments that go before the runner. */
export const CLI = CLI_FROM === 'dist'
  ? { cli: here('dist/cli.js'), index: here('dist/index.js'), node: [] as string[] }
  : { cli: here('lib/cli.ts'), index: here('lib/index.ts'), node: ['--import', join(ROOT, 'bin/loader/register.mjs')] };

export interface RxgateProcess {
  proc: ChildProcess;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Every log line so far, parsed, in order. */
  readonly lines: ReadonlyArray<Record<string, unknown>>;
  /** Resolves with the `count`th line whose `msg` is `msg` (rejects if the process exits first). */
  logged(msg: string, count?: number): Promise<Record<string, unknown>>;
  /** Everything written to stdout so far, log lines and anything else (V8's traces) in order. */
  stdout(): string;
}

/** A directory for config files and the runner; `remove()` kills what is left and deletes it. */
export interface RxgateRuns {
  dir: string;
  /** Writes `yaml` to a new file in `dir` and returns its path. */
  file(yaml: string): string;
  /** Starts rxgate with `args` (e.g. `--config FILE`), `env` over this process's environment (a variable set to undefined is unset), and `nodeFlags` for node itself. */
  start(args: string[], env?: Record<string, string | undefined>, nodeFlags?: string[]): RxgateProcess;
  remove(): void;
}

export function rxgateRuns(): RxgateRuns {
  const dir = mkdtempSync(join(tmpdir(), 'rxgate-run-'));
  const run = join(dir, 'run.mjs');
  writeFileSync(run, `import { runCli } from ${JSON.stringify(CLI.cli)};
await runCli(process.argv.slice(2), { module: ${JSON.stringify(CLI.index)} });
`);
  const children = new Set<ChildProcess>();
  let files = 0;
  return {
    dir,
    file(yaml) {
      const path = join(dir, `gw-${files++}.yaml`);
      writeFileSync(path, yaml);
      return path;
    },
    start(args, env = {}, nodeFlags = []) {
      const full: NodeJS.ProcessEnv = { ...process.env };
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete full[k];
        else full[k] = v;
      }
      const proc = spawn(process.execPath, [...nodeFlags, ...CLI.node, run, ...args], { env: full, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(proc);
      return watchLines(proc);
    },
    remove() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function watchLines(proc: ChildProcess): RxgateProcess {
  const lines: Array<Record<string, unknown>> = [];
  const waiting: Array<{ msg: string; count: number; resolve(line: Record<string, unknown>): void }> = [];
  const check = (): void => {
    for (let i = waiting.length - 1; i >= 0; i--) {
      const w = waiting[i]!;
      const found = lines.filter((l) => l['msg'] === w.msg)[w.count - 1];
      if (found !== undefined) {
        waiting.splice(i, 1);
        w.resolve(found);
      }
    }
  };
  let buffered = '';
  let all = '';
  proc.stdout!.on('data', (d: Buffer) => {
    all += d.toString();
    buffered += d.toString();
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line (the demo's banner).
      }
    }
    check();
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    proc, exited, lines,
    stdout: () => all,
    logged: (msg, count = 1) => new Promise((resolve, reject) => {
      waiting.push({ msg, count, resolve });
      check();
      void exited.then((code) => reject(new Error(`rxgate exited (${code}) before logging "${msg}" ${count} time(s): ${stderr}`)));
    }),
  };
}

/** A port nothing listens on now (for an admin listener whose port no log line tells). */
export { freePort } from './global-setup.ts';

/** Resolves once `GET {admin}/ready` answers 200 (a process whose log level hides its listening lines); a refused connection counts as not yet. */
export async function readyAt(admin: string): Promise<void> {
  const status = (): Promise<number> => request(`${admin}/ready`).then(async (res) => { await res.body.dump(); return res.statusCode; }, () => 0);
  await until(async () => await status() === 200, { timeout: 30_000, interval: 50 });
}
