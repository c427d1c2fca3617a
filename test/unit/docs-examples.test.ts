import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { requireHeader } from '../../examples/require-header.ts';

/**
 * Every ```yaml block in README.md and docs/ is a whole rxgate config that
 * validates (schema and cross-key checks), so the reference cannot drift from
 * the code. A block that is YAML but no rxgate config (Kubernetes manifests…)
 * starts with the line `# not an rxgate config`.
 */
const root = resolve(import.meta.dirname, '../..');
const NOT_A_CONFIG = '# not an rxgate config';

function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  const found = [join(root, 'README.md')];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) found.push(path);
    }
  };
  walk(docs);
  return found;
}

interface Block { file: string; line: number; text: string }

function yamlBlocks(file: string): Block[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```yaml\s*$/.test(lines[i]!)) continue;
    const indent = lines[i]!.indexOf('`');
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
    const text = lines.slice(start, end).map((l) => l.slice(Math.min(indent, l.search(/\S|$/)))).join('\n');
    blocks.push({ file: file.slice(root.length + 1), line: start + 1, text });
    i = end;
  }
  return blocks;
}

const files = markdownFiles();
const blocks = files.flatMap(yamlBlocks);
const configs = blocks.filter((b) => !b.text.trimStart().startsWith(NOT_A_CONFIG));

describe('documentation examples', () => {
  it('finds the docs and their YAML examples', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(configs.length).toBeGreaterThan(10);
  });

  it.each(configs.map((b) => [`${b.file}:${b.line}`, b] as const))('%s is a valid config', (_name, block) => {
    // No environment: every ${VAR} in an example needs a default.
    expect(() => parseConfig(block.text, `${block.file}:${block.line}`, {}, [requireHeader])).not.toThrow();
  });

  it('links between pages point at files that exist', () => {
    const broken: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\]\(([^)#\s]+\.md)(#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(resolve(dirname(file), target))) broken.push(`${file.slice(root.length + 1)} → ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
