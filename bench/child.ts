/**
 * Child processes of the harness: started with an argv (never a shell),
 * output kept as a bounded tail for error reports, stopped by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Client } from 'undici';

const TAIL_BYTES = 4096;
const STOP_GRACE_MS = 3000;

/** Every child still running, so a SIGINT or a crash of the harness stops them. */
const running = new Set<ChildServer>();

/** What `bench/gc-probe.mjs` reports for the span between two SIGUSR2s. */
export interface GcStats {
  seq: number;
  scavenges: number;
  markCompacts: number;
  incremental: number;
  /** Sum of every collection's duration, ms. */
  pauseMs: number;
  maxPauseMs: number;
  maxMarkCompactMs: number;
  heapUsed: number;
  rss: number;
}

const GC_LINE = /^BENCH_GC (\{.*\})$/;

export class ChildServer {
  readonly process: ChildProcess;
  private tail = '';
  private exitInfo: string | null = null;
  private readonly exited: Promise<void>;
  /** A partial line of stderr, until its newline arrives. */
  private partial = '';
  private gc: GcStats | null = null;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
    cwd: string = process.cwd(),
    private readonly tailBytes: number = TAIL_BYTES,
  ) {
    // RXGATE_LOG_LEVEL overrides a config's log.level: the bench configs' own
    // level (warn, no access lines) must hold whatever the shell exports.
    const { RXGATE_LOG_LEVEL: _level, ...inherited } = process.env;
    this.process = spawn(command, args, {
      cwd,
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer): void => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-this.tailBytes);
    };
    this.process.stdout?.on('data', keep);
    this.process.stderr?.on('data', (chunk: Buffer) => {
      keep(chunk);
      this.scanGc(chunk.toString('utf8'));
    });
    this.exited = new Promise((resolve) => {
      this.process.once('error', (error) => {
        this.exitInfo = `spawn error: ${error.message}`;
        resolve();
      });
      this.process.once('exit', (code, signal) => {
        this.exitInfo = signal ? `killed by ${signal}` : `exit code ${code}`;
        resolve();
      });
    });
    void this.exited.then(() => running.delete(this));
    running.add(this);
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  /** Null while running; else how it ended. */
  get exit(): string | null {
    return this.exitInfo;
  }

  private scanGc(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = GC_LINE.exec(line);
      if (m?.[1]) this.gc = JSON.parse(m[1]) as GcStats;
    }
  }

  /**
   * Asks the child's GC probe (SIGUSR2) for the collections since the last
   * ask and waits for its line; null when the child has no probe or does not
   * answer within a second.
   */
  async gcSince(): Promise<GcStats | null> {
    const pid = this.process.pid;
    if (pid === undefined || this.exitInfo !== null) return null;
    const before = this.gc?.seq ?? 0;
    try {
      process.kill(pid, 'SIGUSR2');
    } catch {
      return null;
    }
    for (let waited = 0; waited < 1000; waited += 10) {
      if ((this.gc?.seq ?? 0) > before) return this.gc;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return null;
  }

  /** The last lines the child wrote to stdout/stderr. */
  output(lines = 15): string {
    return this.tail.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Everything kept (up to the tail size given to the constructor). */
  fullOutput(): string {
    return this.tail;
  }

  /** SIGTERM by PID, SIGKILL after a grace period. */
  async stop(): Promise<void> {
    const pid = this.process.pid;
    if (this.exitInfo !== null || pid === undefined) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
    });
    const late = await Promise.race([this.exited.then(() => false), graceOver]);
    clearTimeout(timer);
    if (late) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await this.exited;
    }
  }

  /** Resolves when the child exits (or was already gone). */
  wait(): Promise<void> {
    return this.exited;
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop()));
}

/** Last resort on `process.on('exit')`: synchronous SIGKILL by PID. */
export function killAllSync(): void {
  for (const child of running) {
    const pid = child.pid;
    if (pid === undefined || child.exit !== null) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A port the OS says is free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ProbeResult {
  status: number;
  bodyBytes: number;
  /** Response headers as received, lower-case names. */
  headers: Record<string, string | string[] | undefined>;
}

/** One GET through a fresh connection that is closed afterwards. */
export async function probe(
  origin: string,
  path: string,
  headers: Record<string, string>,
  timeoutMs = 2000,
): Promise<ProbeResult> {
  const client = new Client(origin, { connectTimeout: timeoutMs, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const response = await client.request({ method: 'GET', path, headers });
    const body = Buffer.from(await response.body.arrayBuffer());
    return { status: response.statusCode, bodyBytes: body.length, headers: response.headers };
  } finally {
    await client.destroy();
  }
}

export interface ReadyOptions {
  origin: string;
  path: string;
  headers: Record<string, string>;
  /** @default 10000 */
  timeoutMs?: number;
}

/**
 * Waits until the child answers an HTTP request (any status). Fails when the
 * child exits first or the deadline passes; the error carries its output.
 */
export async function waitReady(child: ChildServer, options: ReadyOptions): Promise<ProbeResult> {
  const deadline = performance.now() + (options.timeoutMs ?? 10_000);
  let lastError = 'no answer';
  while (performance.now() < deadline) {
    if (child.exit !== null) {
      throw new Error(`${child.name} exited (${child.exit}) before answering`);
    }
    try {
      return await probe(options.origin, options.path, options.headers);
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await Promise.race([child.wait(), new Promise((resolve) => setTimeout(resolve, 100))]);
  }
  throw new Error(`${child.name} did not answer within ${options.timeoutMs ?? 10_000} ms (${lastError})`);
}
