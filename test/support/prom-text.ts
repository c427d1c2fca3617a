/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * black-box tests of /metrics: it throws on anything a scraper could
 * refuse or misread, and on the naming conventions Prometheus documents
 * (https://prometheus.io/docs/practices/naming/) that an SRE's alert rules
 * rely on.
 */

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`…). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<Family['type'], readonly string[]> = {
  counter: [''], gauge: [''], untyped: [''],
  histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'],
};

/** Parses `text`, throwing with the line at fault on anything not strictly valid. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition does not end with a newline');
  for (const line of lines.slice(0, -1)) {
    const fail = (why: string): never => {
      throw new Error(`${why}: ${JSON.stringify(line.slice(0, 200))}`);
    };
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (m === null) continue; // a comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string];
      if (!NAME.test(name)) fail('a bad metric name');
      const family = families.get(name) ?? { name, type: 'untyped' as const, help: '', samples: [] };
      const key = `${kind} ${name}`;
      if (seen.has(key)) fail(`${kind} twice for one family`);
      seen.add(key);
      if (kind === 'TYPE') {
        if (family.samples.length > 0) fail('TYPE after its samples');
        if (!(rest in SUFFIXES)) fail('an unknown type');
        family.type = rest as Family['type'];
      } else family.help = rest;
      families.set(name, family);
      continue;
    }
    if (line === '') continue; // the format ignores empty lines (prom-client writes one between families)
    const sample = parseSample(line, fail);
    const family = familyOf(families, sample.name);
    if (family === undefined) fail('a sample of no declared family');
    family!.samples.push(sample);
    const id = sample.name + JSON.stringify(Object.entries(sample.labels).sort());
    if (seen.has(id)) fail('the same series twice');
    seen.add(id);
  }
  return families;
}

function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  for (const [name, family] of families) {
    for (const suffix of SUFFIXES[family.type]) if (sample === name + suffix) return family;
  }
  return undefined;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line);
  if (m === null) fail('not a sample line');
  const [, name, body, raw] = m as unknown as [string, string, string | undefined, string];
  const labels: Record<string, string> = {};
  if (body !== undefined) {
    let i = 1;
    while (i < body.length - 1) {
      const eq = body.indexOf('="', i);
      if (eq < 0) fail('a label without ="');
      const label = body.slice(i, eq);
      if (!LABEL.test(label) || label in labels) fail(`a bad or repeated label ${label}`);
      let value = '';
      let j = eq + 2;
      for (; j < body.length && body[j] !== '"'; j++) {
        if (body[j] === '\\') {
          const next = body[++j];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else fail('a bad escape in a label value');
        } else value += body[j];
      }
      if (body[j] !== '"') fail('an unterminated label value');
      labels[label] = value;
      i = j + 1;
      if (body[i] === ',') i++;
      else if (i !== body.length - 1) fail('labels not separated by commas');
    }
  }
  // Prometheus reads values with Go's ParseFloat, which takes any case of NaN (prom-client writes `Nan`).
  const nan = raw.toLowerCase() === 'nan';
  const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : nan ? NaN : Number(raw);
  if (!nan && Number.isNaN(value)) fail('a value that is not a number');
  return { name, labels, value };
}

/**
 * The naming and shape rules an exposition's rxgate families must keep:
 * counters end in `_total`, nothing else does; histograms of time are in
 * seconds; no value is NaN; a histogram's buckets rise to a `+Inf` bucket
 * equal to its `_count`. Returns the breaches (empty: none).
 */
export function conventionBreaches(families: Map<string, Family>, prefix = 'rxgate_'): string[] {
  const out: string[] = [];
  for (const f of families.values()) {
    if (!f.name.startsWith(prefix)) continue;
    if (f.help === '') out.push(`${f.name}: no HELP`);
    if (f.type === 'counter' && !f.name.endsWith('_total')) out.push(`${f.name}: a counter not named _total`);
    // prom-client's own gauges nodejs_active_{handles,requests,resources}_total break this rule; not ours to rename.
    if (f.type !== 'counter' && f.name.endsWith('_total') && !f.name.startsWith(`${prefix}process_nodejs_active_`)) out.push(`${f.name}: a ${f.type} named _total`);
    if (/_(ms|milliseconds|us|microseconds|minutes|hours)(_|$)/.test(f.name)) out.push(`${f.name}: not in base units`);
    if (f.type === 'histogram' && /duration|latency|time/.test(f.name) && !f.name.endsWith('_seconds')) out.push(`${f.name}: a time histogram not in _seconds`);
    for (const s of f.samples) if (Number.isNaN(s.value)) out.push(`${s.name}${JSON.stringify(s.labels)}: NaN`);
    if (f.type === 'histogram') out.push(...histogramBreaches(f));
  }
  return out;
}

function histogramBreaches(f: Family): string[] {
  const out: string[] = [];
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith('_bucket')) entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    else if (s.name.endsWith('_count')) entry.count = s.value;
  }
  for (const [key, { buckets, count }] of series) {
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i]![0] <= buckets[i - 1]![0] || buckets[i]![1] < buckets[i - 1]![1]) out.push(`${f.name}${key}: buckets not rising`);
    }
    if (buckets.at(-1)?.[0] !== Infinity) out.push(`${f.name}${key}: no +Inf bucket`);
    else if (buckets.at(-1)![1] !== count) out.push(`${f.name}${key}: +Inf bucket ${buckets.at(-1)![1]} is not _count ${count}`);
  }
  return out;
}

/** Every series of the families named with `prefix` (excluding process metrics), as `name{labels}` strings. */
export function seriesOf(families: Map<string, Family>, prefix = 'rxgate_', exclude = 'rxgate_process_'): string[] {
  const out: string[] = [];
  for (const f of families.values()) {
    if (!f.name.startsWith(prefix) || f.name.startsWith(exclude)) continue;
    for (const s of f.samples) out.push(s.name + JSON.stringify(s.labels));
  }
  return out;
}
