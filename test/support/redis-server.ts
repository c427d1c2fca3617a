import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Starts a real `redis-server` on `port` (loopback, no persistence) and
 * resolves once it accepts connections. The shared test server comes from
 * global-setup; tests that kill Redis start one of their own with this and
 * stop it by PID with `stopRedisServer`.
 */
export async function startRedisServer(port: number): Promise<ChildProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`redis-server exited early (${code}): ${out}`)));
  });
  return proc;
}

/** Stops a redis-server started here by PID (SIGKILL simulates a crash) and waits for it to exit. */
export async function stopRedisServer(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  process.kill(proc.pid, signal);
  await exited;
}
