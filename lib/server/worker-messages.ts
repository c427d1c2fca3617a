import type { ControlKeys } from '../lifecycle/controls.ts';
import type { CertificateExpiry } from './tls.ts';
import type { ReloadResult, ReloadTrigger } from '../lifecycle/reload.ts';

// What the main thread (workers.ts) and a worker thread (worker-main.ts) pass each other.

export interface WorkerData {
  /** Arguments for the worker's own `runCli` (config file, port…). */
  argv: string[];
  /** Module whose `defaultPipeline` export builds each route's handler. */
  pipelineModule: string;
  /** Which worker this is, from 0 (its log lines); a crashed worker's replacement takes its slot. */
  slot?: number;
  /**
   * Set by the pool: this thread's gateway leaves to the main thread what
   * every worker would log alike (the certificate-expiry lines,
   * lib/observe/certificates.ts), and reports what it serves instead.
   */
  pool?: true;
  /** The config's text to build from instead of reading the file (a replacement runs what the workers serve); a reload gets its text from the main thread too. */
  configText?: string;
}

/** What the main thread asks a worker (worker-main.ts answers with the same `id`). */
export type WorkerQuery =
  // `before`: the wall-clock ms past which the scrape no longer waits for this answer (it has left this worker out).
  | { type: 'rxgate:metrics'; id: number; before?: number }
  | { type: 'rxgate:overview'; id: number }
  | { type: 'rxgate:windows'; id: number; seconds: number }
  // `hold`: build and serve it, but keep or undo it only when `rxgate:settle` says (every worker applies a reload, or none).
  | { type: 'rxgate:reload'; id: number; trigger: ReloadTrigger; text?: string; hold?: boolean }
  | { type: 'rxgate:settle'; id: number; keep: boolean; message?: string };

/**
 * A worker's answer to a `WorkerQuery`, its word that it listens
 * (`rxgate:ready`), that it crashed (`rxgate:crashed`, `error` the stack),
 * its question whether it may listen (`rxgate:may-listen`: built, about
 * to listen; the main thread answers `ListenAnswer`), or, drained after a
 * crash, its metrics as they end (`rxgate:final`, `value`).
 */
export interface WorkerReply {
  type: 'rxgate:reply' | 'rxgate:ready' | 'rxgate:crashed' | 'rxgate:may-listen' | 'rxgate:final';
  id: number;
  value?: unknown;
  error?: string;
}

/** A worker's answer to `rxgate:reload`: what its reload did, and the keys of the config it serves since. */
export interface WorkerReloaded {
  result: ReloadResult;
  config: ControlKeys;
  /** The listener's certificates it serves since (none without TLS): the main thread logs their expiry once per change. */
  certificates?: CertificateExpiry[];
}

/** What a worker's `rxgate:ready` carries as its `value`: the listener's certificates it serves (see `WorkerReloaded`). */
export interface WorkerListening {
  certificates: CertificateExpiry[];
}

/** The workers' reload as one: the result `reload` returns, and the keys the workers serve since (null: none applied it). */
export interface PoolReloaded {
  result: ReloadResult;
  config: ControlKeys | null;
}

/** The main thread's answer to `rxgate:may-listen`: no once the gateway stops (a worker then exits without listening). */
export interface ListenAnswer {
  type: 'rxgate:listen';
  ok: boolean;
}

/** What the main thread tells every worker. */
export type WorkerCommand = 'drain' | 'stop';
