import { z } from 'zod';
import type { StageDefinition } from '../stages/define.ts';
import { stageRegistry } from './build.ts';
import { configSchema } from './schema.ts';

/**
 * The YAML config's JSON Schema (draft 2020-12), generated from the zod
 * schema of the built-in stages plus `stages`: what `rxgate schema` prints
 * and `rxgate.schema.json` ships. It describes what you write (durations as
 * `'30s'` or ms); the cross-key checks (a route's service exists, a listed
 * stage has options) stay with `rxgate --check`. Pipeline lists enumerate the
 * registered stage names so editors complete them.
 */
export function configJsonSchema(stages: readonly StageDefinition[] = []): Record<string, unknown> {
  const registry = stageRegistry(stages);
  const schema = z.toJSONSchema(configSchema(registry), { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
  const stageName = { type: 'string', enum: [...registry.names] };
  const routes = schema.properties?.['routes']?.items;
  for (const list of [schema.properties?.['pipeline'], routes?.properties?.['pipeline']]) {
    if (list?.items === undefined) throw new TypeError('configJsonSchema: the config schema has no pipeline list where expected');
    list.items = stageName;
  }
  dropZodFormats(schema);
  return { $schema: schema.$schema, title: 'rxgate gateway config', ...schema };
}

// zod names its string checks as `format` beside the `pattern` that does the
// check ("starts_with"); they are no JSON Schema formats, and validators refuse
// unknown ones.
const ZOD_FORMATS = new Set(['starts_with', 'ends_with', 'includes', 'regex']);

function dropZodFormats(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) dropZodFormats(item);
  } else if (typeof node === 'object' && node !== null) {
    const obj = node as Record<string, unknown>;
    if (typeof obj['format'] === 'string' && ZOD_FORMATS.has(obj['format']) && 'pattern' in obj) delete obj['format'];
    for (const value of Object.values(obj)) dropZodFormats(value);
  }
}

interface JsonSchemaNode {
  $schema?: string;
  properties?: Record<string, JsonSchemaNode | undefined>;
  items?: JsonSchemaNode;
  [key: string]: unknown;
}
