import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import type { StageDefinition } from '../stages/define.ts';
import { stageRegistry } from './build.ts';
import { configSchema, type GatewayConfig } from './schema.ts';
import { formatPath } from './paths.ts';
import { allowedKeys, unknownKeyHint } from './unknown-keys.ts';

/** A config file rxgate refuses; the message names the file and the key's path. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly file: string, readonly problems: readonly string[]) {
    super(`invalid config ${file}:\n` + problems.map((p) => `  - ${p}`).join('\n'));
  }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export { formatPath } from './paths.ts';

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string value (not in
 * keys, and after YAML parsing, so a variable can never inject YAML).
 */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: PropertyKey[] = [], problems: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${formatPath(path)}: environment variable ${name} is not set and has no default (\${${name}:-default})`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, i], problems));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, [...path, k], problems);
    return out;
  }
  return value;
}

function describeIssue(issue: z.core.$ZodIssue, schema: z.ZodType, prefix: readonly PropertyKey[] = []): string {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') {
    // What the object takes, from its schema: `(did you mean jwksUrl?)` or `(allowed: access)`.
    const allowed = allowedKeys(schema, path);
    return issue.keys.map((k) => `${formatPath([...path, k])}: unknown key${unknownKeyHint(k, allowed)}`).join('\n  - ');
  }
  if (issue.code === 'invalid_union') {
    // `retry: { … } | false` and the like: when one branch got past the
    // value's type, its issues say what is wrong, with their key path.
    const branches = unionBranches(issue.errors);
    const branch = branches.find((errs) => errs.some((e) => e.path.length > 0));
    if (branch !== undefined) return branch.map((e) => describeIssue(e, schema, path)).join('\n  - ');
    // No branch got that far: say what the key takes rather than zod's bare
    // "Invalid input" (`maxBodySize: 10mb`, `key: sub`, a missing `window`).
    const allowed = expectedOf(branches);
    if (allowed.length > 0) {
      const got = branches.flat().map((e) => /received (\w+)/.exec(e.message)?.[1]).find((r) => r !== undefined);
      if (got === 'undefined') return `${formatPath(path)}: required, not set (expected ${allowed.join(' or ')})`;
      return `${formatPath(path)}: expected ${allowed.join(' or ')}${got === undefined ? '' : `, got ${withArticle(got)}`}`;
    }
  }
  return `${formatPath(path)}: ${issue.message}`;
}

type Branch = readonly z.core.$ZodIssue[];

/** A type as the messages say it: `a number`, `an array`, `an integer` (zod's `int`), `null`. */
function withArticle(type: string): string {
  const word = type === 'int' ? 'integer' : type;
  return word === 'null' || word === 'undefined' ? word : `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}

/** A union's branches, a branch that is itself a union on the same value flattened into them. */
function unionBranches(errors: readonly Branch[]): Branch[] {
  return errors.flatMap((errs) => {
    const only = errs.length === 1 ? errs[0] : undefined;
    return only?.code === 'invalid_union' && only.path.length === 0 ? unionBranches(only.errors) : [errs];
  });
}

/** What the branches accept, when each failed on the value itself: `a number`, `"ip"`, `false`. */
function expectedOf(branches: readonly Branch[]): string[] {
  const out: string[] = [];
  for (const errs of branches) {
    for (const e of errs) {
      if (e.path.length > 0) continue;
      if (e.code === 'invalid_type') out.push(withArticle(e.expected));
      else if (e.code === 'invalid_value') out.push(...e.values.map((v) => JSON.stringify(v)));
    }
  }
  return [...new Set(out)];
}

/**
 * Parses and validates config text; throws ConfigError listing every
 * problem. `stages`: stages registered in code, whose options routes may set.
 */
export function parseConfig(text: string, file = '<config>', env: NodeJS.ProcessEnv = process.env, stages: readonly StageDefinition[] = []): GatewayConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => `YAML syntax: ${e.message}`));
  }
  const problems: string[] = [];
  const raw = substituteEnv(doc.toJS(), env, [], problems);
  if (problems.length > 0) throw new ConfigError(file, problems);
  const schema = configSchema(stageRegistry(stages));
  const result = schema.safeParse(raw);
  if (!result.success) throw new ConfigError(file, result.error.issues.map((issue) => describeIssue(issue, schema)));
  return result.data;
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, stages: readonly StageDefinition[] = []): GatewayConfig {
  return parseConfig(readConfigText(file), file, env, stages);
}

/** A config file's text, or a ConfigError saying why it cannot be read. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
}
