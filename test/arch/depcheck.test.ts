// Checks the import rules between top-level folders (../shared/STYLE.md "Layout").
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Which top-level folders each folder may import (errors/ is open to all). */
const allowed: Record<string, readonly string[]> = {
  errors: [],
  oci: ['errors'],
  net: ['errors'],
  registry: ['errors', 'oci', 'net'],
  gomod: ['errors'],
  goproxy: ['errors', 'gomod', 'net'],
  sumdb: ['errors', 'gomod', 'net'],
  store: ['errors', 'oci'],
  config: ['errors', 'oci'],
  bundle: ['errors', 'oci', 'store', 'gomod', 'sumdb'],
  importer: ['errors', 'oci', 'bundle', 'registry', 'gomod', 'sumdb', 'store', 'net'],
  serve: ['errors', 'store', 'importer', 'oci', 'gomod'],
  sync: ['errors', 'oci', 'net', 'registry', 'gomod', 'goproxy', 'sumdb', 'store', 'config'],
  daemon: ['errors', 'sync', 'bundle', 'store', 'config'],
  cli: ['errors', 'oci', 'net', 'registry', 'gomod', 'goproxy', 'sumdb', 'store', 'config', 'sync', 'daemon', 'bundle', 'importer', 'serve'],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT_RE = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

describe('import rules', () => {
  for (const [folder, may] of Object.entries(allowed)) {
    it(`${folder}/ imports only ${may.length ? may.join(', ') : 'node built-ins and packages'}`, () => {
      const dir = join(root, folder);
      let files: string[] = [];
      try {
        files = sources(dir);
      } catch {
        return;
      }
      const violations: string[] = [];
      for (const file of files) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(IMPORT_RE)) {
          const spec = m[1] ?? m[2] ?? '';
          if (!spec.startsWith('.')) continue;
          const target = relative(root, resolve(dirname(file), spec));
          const top = target.split(/[\\/]/)[0] ?? '';
          if (top === folder) continue;
          if (!may.includes(top)) violations.push(`${relative(root, file)} imports ${spec} (${top}/)`);
        }
      }
      expect(violations).toEqual([]);
    });
  }

  it('nothing imports cli/ or test/ from source folders', () => {
    const bad: string[] = [];
    for (const folder of Object.keys(allowed)) {
      if (folder === 'cli') continue;
      let files: string[] = [];
      try {
        files = sources(join(root, folder));
      } catch {
        continue;
      }
      for (const file of files) {
        for (const m of readFileSync(file, 'utf8').matchAll(IMPORT_RE)) {
          const spec = m[1] ?? m[2] ?? '';
          if (!spec.startsWith('.')) continue;
          const top = relative(root, resolve(dirname(file), spec)).split(/[\\/]/)[0];
          if (top === 'cli' || top === 'test') bad.push(`${relative(root, file)} imports ${spec}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
