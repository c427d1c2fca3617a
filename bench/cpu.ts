/**
 * CPU time of a process and its descendants (nginx's worker is a child of
 * its master), from /proc. Linux only; elsewhere every reading is null and the
 * report leaves the CPU column empty.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

function ownTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may contain spaces).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
  return Number(fields[11]) + Number(fields[12]);
}

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (list) for (const child of list.split(' ')) out.push(Number(child));
    }
  } catch {
    // gone, or no CONFIG_PROC_CHILDREN
  }
  return out;
}

/** User + system CPU seconds of `pid` and its live descendants; null if unreadable. */
export function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined || process.platform !== 'linux') return null;
  try {
    let ticks = ownTicks(pid);
    for (const child of children(pid)) ticks += (cpuSeconds(child) ?? 0) * clockTicks();
    return ticks / clockTicks();
  } catch {
    return null;
  }
}

/** Resident set size of `pid` alone, in bytes; null if unreadable. */
export function rssBytes(pid: number | undefined): number | null {
  if (pid === undefined || process.platform !== 'linux') return null;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
