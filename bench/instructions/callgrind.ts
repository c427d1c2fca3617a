/**
 * Reads a callgrind profile (`--dump-instr=no`, the default) into self
 * instruction counts per function, and sorts each function into a part of
 * the process: V8's builtins, its runtime and GC, JIT code, libuv, uWS,
 * libc. Only the `Ir` event is read.
 */
import { readFileSync } from 'node:fs';

export interface FunctionCost {
  /** Demangled symbol, or `0x…` for code with no symbol (JIT). */
  name: string;
  /** The ELF object it lives in; `???` for JIT code. */
  object: string;
  ir: number;
  /** With what it calls (self plus every call's inclusive cost; recursion counts twice). */
  inclusive?: number;
}

/**
 * Self cost per (object, function). A cost line right after `calls=` is the
 * call's inclusive cost and is skipped: only the function's own
 * instructions count.
 */
export interface Profile {
  total: number;
  functions: FunctionCost[];
  /** Inclusive instructions of each call edge: callee key → caller key → Ir (keys: `object\0name`). */
  callers: Map<string, Map<string, number>>;
}

export function readProfile(path: string): Profile {
  const text = readFileSync(path, 'utf8');
  const names = { ob: new Map<string, string>(), fn: new Map<string, string>() };
  // `ob=(3) /usr/bin/node` defines id 3; `ob=(3)` refers to it.
  const resolve = (kind: 'ob' | 'fn', value: string): string => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(value);
    if (m === null) return value;
    const id = m[1] as string;
    if (m[2] !== undefined) names[kind].set(id, m[2]);
    return names[kind].get(id) ?? value;
  };
  const costs = new Map<string, FunctionCost>();
  let object = '???';
  let current: FunctionCost | null = null;
  let skipNext = false;
  let total = 0;
  const callers = new Map<string, Map<string, number>>();
  let calleeObject: string | null = null;
  let callee = '';
  /** The call edge the next cost line belongs to (its inclusive cost). */
  let edge: string | null = null;
  let currentKey = '';
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const c = line.charCodeAt(0);
    // A cost line starts with a digit, '+', '-' or '*'.
    if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42) {
      if (skipNext) {
        skipNext = false;
        if (edge !== null) {
          const space = line.indexOf(' ');
          const ir = space < 0 ? 0 : Number(line.slice(space + 1).split(' ')[0]);
          let by = callers.get(edge);
          if (by === undefined) callers.set(edge, (by = new Map()));
          by.set(currentKey, (by.get(currentKey) ?? 0) + ir);
          if (current !== null) current.inclusive = (current.inclusive ?? 0) + ir;
          edge = null;
        }
        continue;
      }
      const space = line.indexOf(' ');
      const ir = space < 0 ? 0 : Number(line.slice(space + 1).split(' ')[0]);
      if (current !== null && ir > 0) {
        current.ir += ir;
        total += ir;
      }
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'ob') object = resolve('ob', value);
    else if (key === 'cob') calleeObject = resolve('ob', value);
    else if (key === 'cfn') callee = resolve('fn', value);
    else if (key === 'calls') {
      skipNext = true;
      // Without a `cob=` the callee is in the caller's object.
      edge = `${calleeObject ?? object}\0${callee}`;
      calleeObject = null;
    } else if (key === 'fn') {
      const name = resolve('fn', value);
      const id = `${object}\0${name}`;
      currentKey = id;
      current = costs.get(id) ?? null;
      if (current === null) {
        current = { name, object, ir: 0 };
        costs.set(id, current);
      }
    }
  }
  // `inclusive` gathered the calls' costs so far: add the self cost.
  for (const f of costs.values()) f.inclusive = f.ir + (f.inclusive ?? 0);
  return { total, functions: [...costs.values()].filter((f) => f.ir > 0 || (f.inclusive ?? 0) > 0), callers };
}

/** The parts of the process the report splits instructions into. */
export const PARTS = [
  'JIT code (JS)',
  'V8 builtins',
  'V8 interpreter',
  'V8 GC',
  'V8 compiler',
  'V8 runtime',
  'node C++',
  'libuv',
  'uWS',
  'libc',
  'OpenSSL',
  'other',
] as const;
export type Part = (typeof PARTS)[number];

const GC =
  /Scavenge|RootVisitor|RootScavenge|IterateObjectCache|heap::base|Heap|Scaveng|MarkCompact|Marking|Marker|Sweep|Evacuat|Remembered|SlotSet|TypedSlot|MemoryChunk|Minor|Concurrent(Mark|Alloc)|PagedSpace|NewSpace|SemiSpace|LargeObject|GCTracer|Mark(Bit|ing)|RecordWrite|WriteBarrier|IncrementalMarking|Allocat(or|ion)Observer|LocalHeap|Safepoint/;

/** TurboFan, Maglev, Sparkplug, the parser and bytecode generator: work that stops once the code is warm. */
const COMPILER = /compiler::|maglev::|baseline::|Parser|Scanner|interpreter::Bytecode|BytecodeGenerator|Compil|Zone|AstValue|DeclarationScope|Deoptimiz/;

export function partOf(f: FunctionCost): Part {
  const { name, object } = f;
  if (object === '???' || /^0x[0-9a-f]+$/.test(name)) return 'JIT code (JS)';
  if (/uws_[^/]*\.node$/.test(object)) return 'uWS';
  if (/\/libc\.so|\/libm\.so|\/libpthread|ld-linux/.test(object)) return 'libc';
  if (name.startsWith('Builtins_')) {
    if (/Handler(Wide|ExtraWide)?$/.test(name) || name.startsWith('Builtins_InterpreterEntry')) return 'V8 interpreter';
    if (/RecordWrite|WriteBarrier/.test(name)) return 'V8 GC';
    return 'V8 builtins';
  }
  if (name.startsWith('uv_') || name.startsWith('uv__')) return 'libuv';
  if (/^(ossl_|OPENSSL_|EVP_|CRYPTO_|BN_|SHA|HMAC|RAND_|ERR_|OBJ_|ASN1_)/.test(name)) return 'OpenSSL';
  // The qualified name, without the argument list (which names v8:: types everywhere).
  const head = name.replace(/\(anonymous namespace\)/g, '').split('(')[0] as string;
  if (/(^|[\s<])node::/.test(head)) return 'node C++';
  if (/(^|[\s<])(v8|heap|cppgc)::/.test(head) || name.startsWith('Runtime_')) {
    if (GC.test(head)) return 'V8 GC';
    if (COMPILER.test(head)) return 'V8 compiler';
    return 'V8 runtime';
  }
  return 'other';
}

/** One entry of `--perf-basic-prof`'s `/tmp/perf-<pid>.map`: `start size name`. */
interface MapEntry {
  start: number;
  end: number;
  name: string;
}

/**
 * Names JIT addresses after V8's perf map. Code can be freed and its address
 * reused; the entry written last that covers an address wins.
 */
export function jitNamer(mapPath: string): (address: string) => string | null {
  let entries: MapEntry[] = [];
  try {
    entries = readFileSync(mapPath, 'utf8')
      .split('\n')
      .flatMap((line) => {
        const m = /^([0-9a-fA-F]+) ([0-9a-fA-F]+) (.*)$/.exec(line);
        if (m === null) return [];
        const start = parseInt(m[1] as string, 16);
        return [{ start, end: start + parseInt(m[2] as string, 16), name: m[3] as string }];
      });
  } catch {
    return () => null;
  }
  return (address) => {
    const a = parseInt(address, 16);
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as MapEntry;
      if (a >= e.start && a < e.end) return e.name;
    }
    return null;
  };
}
