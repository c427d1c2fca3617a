import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Subscription } from 'rxjs';
import { after, systemRuntime, type Runtime } from '../runtime.ts';

export interface ConfigWatchOptions {
  /** Changes closer together than this make one call. */
  debounceMs: number;
  /** Called once per settled change of the file's content. */
  onChange: () => void;
  /** @default systemRuntime */
  runtime?: Runtime;
}

/**
 * Watches a config file for changes of its content. It watches the file's
 * directory, not the file: editors save by writing a new file and renaming
 * it over the old one, and a Kubernetes ConfigMap volume swaps a `..data`
 * symlink, neither of which a watch on the old inode would see. Events are
 * debounced, and a change that leaves the content as it was (a touch, a
 * second event for one write) calls nothing.
 *
 * `baseline`, for a watch that replaces another (a reload changed the
 * debounce): the content already applied, the one the previous watch
 * returned from `close()` or the one the reload read. A file that differs
 * from it calls once the debounce has passed, so a change that came while
 * the previous watch was still waiting (or before this one began to hear)
 * is not lost. Without it, the content now is the baseline.
 */
export class ConfigWatcher {
  private readonly watcher: FSWatcher;
  private timer: Subscription | null = null;
  private last: string | null;

  constructor(private readonly file: string, private readonly options: ConfigWatchOptions, baseline?: string | null) {
    const now = read(file);
    this.last = baseline === undefined ? now : baseline;
    const name = basename(file);
    this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === name || changed.startsWith('..')) this.schedule();
    });
    // A directory that goes away (or a watch the OS refuses later) is logged by the caller's reloads, not fatal.
    this.watcher.on('error', () => {});
    if (now !== this.last) this.schedule();
  }

  /** Stops watching; returns the content last acted on, for a watch that takes over (a change still waiting is its to call). */
  close(): string | null {
    this.timer?.unsubscribe();
    this.timer = null;
    this.watcher.close();
    return this.last;
  }

  private schedule(): void {
    this.timer?.unsubscribe();
    this.timer = after(this.options.runtime ?? systemRuntime, this.options.debounceMs, () => this.settled());
  }

  private settled(): void {
    this.timer = null;
    const now = read(this.file);
    // Half-written or gone: its next change calls again (a reload would refuse it anyway).
    if (now === null || now === this.last) return;
    this.last = now;
    this.options.onChange();
  }
}

/** The file's content, or null when it cannot be read. */
export function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
