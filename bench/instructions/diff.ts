/**
 * Compares two or more runs of run.ts (`--out` JSON files): instructions per
 * request and by part for each, then the functions whose count differs most
 * between the first file and the last (B − A, per request).
 *
 *   node --import ./bin/loader/register.mjs bench/instructions/diff.ts a.json b.json [--top 40] [--inclusive] [--match dist/]
 */
import { readFileSync } from 'node:fs';
import { argValue } from '../args.ts';
import { PARTS, partOf, type Part } from './callgrind.ts';
import { mutator, steady, type InstructionReport } from './run.ts';

const n = (x: number): string => Math.round(x).toLocaleString('en-US');
const signed = (x: number): string => (x >= 0 ? `+${n(x)}` : n(x));

/** Parts again from the names, so older files sort the same way as new ones. */
function reparted(r: InstructionReport): InstructionReport {
  const parts = Object.fromEntries(PARTS.map((p) => [p, 0])) as Record<Part, number>;
  const functions = r.functions.map((f) => {
    const part = f.part === 'JIT code (JS)' ? f.part : partOf(f);
    parts[part] += f.perRequest;
    return { ...f, part };
  });
  return { ...r, parts, functions };
}

function main(): void {
  const files = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--top' && all[i - 1] !== '--match');
  if (files.length < 2) throw new TypeError('usage: diff.ts a.json b.json [c.json …] [--top 40]');
  const top = Number(argValue('top') ?? 40);
  // --inclusive: functions compared with what they call (a changed function's whole cost).
  const inclusive = process.argv.includes('--inclusive');
  const runs = files.map((f) => reparted(JSON.parse(readFileSync(f, 'utf8')) as InstructionReport));
  const first = runs[0] as InstructionReport;
  const last = runs[runs.length - 1] as InstructionReport;
  const out = [
    `| | ${runs.map((r, i) => `${String.fromCharCode(65 + i)}: ${r.target}`).join(' | ')} | last − first |`,
    `|---|${runs.map(() => '---:|').join('')}---:|`,
    `| instr/request | ${runs.map((r) => n(r.perRequest)).join(' | ')} | ${signed(last.perRequest - first.perRequest)} |`,
    `| without the compiler | ${runs.map((r) => n(steady(r))).join(' | ')} | ${signed(steady(last) - steady(first))} |`,
    `| without the compiler and GC | ${runs.map((r) => n(mutator(r))).join(' | ')} | ${signed(mutator(last) - mutator(first))} |`,
    ...PARTS.filter((p) => runs.some((r) => r.parts[p] >= 1)).map(
      (p) => `| ${p} | ${runs.map((r) => n(r.parts[p])).join(' | ')} | ${signed(last.parts[p] - first.parts[p])} |`,
    ),
    '',
    `| function (${inclusive ? 'with what it calls' : 'self'}), largest differences last − first | part | first | last | difference |`,
    '|---|---|---:|---:|---:|',
  ];
  const key = (f: { part: Part; name: string }): string => `${f.part}\0${f.name}`;
  const a = new Map(first.functions.map((f) => [key(f), f]));
  const b = new Map(last.functions.map((f) => [key(f), f]));
  const rows = [...new Set([...a.keys(), ...b.keys()])].map((k) => {
    const fa = a.get(k);
    const fb = b.get(k);
    const per = (f: (typeof fa)): number => (f === undefined ? 0 : inclusive ? ((f as { inclusivePerRequest?: number }).inclusivePerRequest ?? f.perRequest) : f.perRequest);
    const x = per(fa);
    const y = per(fb);
    return { name: (fa ?? fb)?.name ?? k, part: (fa ?? fb)?.part ?? 'other', x, y, d: y - x };
  });
  rows.sort((p, q) => Math.abs(q.d) - Math.abs(p.d));
  // --match TEXT: only functions whose name contains it.
  const match = argValue('match');
  if (match !== undefined) rows.splice(0, rows.length, ...rows.filter((r) => r.name.includes(match)));
  for (const r of rows.slice(0, top)) out.push(`| \`${r.name.slice(0, 100)}\` | ${r.part} | ${n(r.x)} | ${n(r.y)} | ${signed(r.d)} |`);
  process.stdout.write(`${out.join('\n')}\n`);
}

main();
