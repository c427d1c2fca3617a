/**
 * What the functions of a run.ts report (`--out` JSON) whose names match a
 * pattern call, each callee with its inclusive instructions per request:
 * the breakdowns of docs/performance-instructions.md (ninth round).
 *
 *   node --import ./bin/loader/register.mjs bench/instructions/callees.ts bare.json 'handle dist|sendTo'
 */
import { readFileSync } from 'node:fs';
import type { InstructionReport } from './run.ts';

type Entry = InstructionReport['functions'][number] & { inclusivePerRequest?: number; callees?: { name: string; perRequest: number }[] };

const n = (x: number): string => Math.round(x).toLocaleString('en-US');

function main(): void {
  const [file, pattern] = process.argv.slice(2);
  if (file === undefined || pattern === undefined) throw new TypeError('usage: callees.ts report.json PATTERN');
  const match = new RegExp(pattern);
  const report = JSON.parse(readFileSync(file, 'utf8')) as InstructionReport;
  for (const f of report.functions as Entry[]) {
    if (!match.test(f.name)) continue;
    console.log(`${f.name}: self ${n(f.perRequest)}, with what it calls ${n(f.inclusivePerRequest ?? f.perRequest)}`);
    for (const c of f.callees ?? []) console.log(`  ${n(c.perRequest).padStart(7)}  ${c.name}`);
  }
}

main();
