// `ferry init` through the built CLI: a commented starter (or an example) that passes
// `ferry config check`, written atomically and never over an existing file.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { assertBuilt, runFerry } from '../helpers/ferry-cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;

beforeAll(() => assertBuilt());
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-init-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The keys a YAML text names, commented-out ones included (`# key: value`, `#   - key: value`). */
function keysIn(text: string): Set<string> {
  const keys = new Set<string>();
  for (const m of text.matchAll(/^[ \t]*(?:#[ \t]*)?(?:-[ \t]+)?([A-Za-z][A-Za-z0-9]*):(?:[ \t]|$)/gm)) keys.add(m[1]!);
  return keys;
}

describe('ferry init', () => {
  it('writes the commented starter, which passes ferry config check', async () => {
    const r = await runFerry(['init'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${join(dir, 'ferry.yaml')}`);
    const text = readFileSync(join(dir, 'ferry.yaml'), 'utf8');
    expect(text).toBe(readFileSync(join(ROOT, 'examples/starter.yaml'), 'utf8'));
    expect(text).toMatch(/^# .*ferry init/m);
    const check = await runFerry(['config', 'check', 'ferry.yaml'], { cwd: dir });
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toBe(`${join(dir, 'ferry.yaml')}: ok (1 images, 1 Go module roots, store ${join(dir, 'ferry-store')})\n`);
  });

  it('never overwrites: a second init exits 2 naming the file and leaves it as it was', async () => {
    expect((await runFerry(['init', '-c', 'ferry.yaml'], { cwd: dir })).code).toBe(0);
    writeFileSync(join(dir, 'ferry.yaml'), 'version: 1 # mine\n');
    const again = await runFerry(['init', '-c', 'ferry.yaml', '--example', 'go-devenv'], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`ferry: ferry init: ${join(dir, 'ferry.yaml')} already exists; init never overwrites a file (name another with -c FILE)\n`);
    expect(readFileSync(join(dir, 'ferry.yaml'), 'utf8')).toBe('version: 1 # mine\n');
  });

  it('--example go-devenv --store DIR: the Go developer environment with that store, checked', async () => {
    const r = await runFerry(['init', '--example', 'go-devenv', '--store', 'data/store', '-c', 'etc/ferry.yaml'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const text = readFileSync(join(dir, 'etc/ferry.yaml'), 'utf8');
    // --store is relative to the working directory; the file says it relative to itself.
    expect(text).toMatch(/^store: \/.*\/data\/store$/m);
    expect((parse(text) as { store: string }).store).toBe(join(dir, 'data/store'));
    expect(text).toContain('golang.org/x/tools/gopls');
    const check = await runFerry(['config', 'check', 'etc/ferry.yaml'], { cwd: dir });
    expect(check.code).toBe(0);
    expect(check.stdout).toContain(`store ${join(dir, 'data/store')})`);

    mkdirSync(join(dir, 'b'));
    const below = await runFerry(['init', '--store', 'b/s p a c e', '-c', 'ferry.yaml'], { cwd: dir });
    expect(below.code).toBe(0);
    expect(readFileSync(join(dir, 'ferry.yaml'), 'utf8')).toMatch(/^store: "\.\/b\/s p a c e" +# content store and index$/m);
  });

  it('an unknown example is exit 2 naming the ones there are, and writes nothing', async () => {
    const r = await runFerry(['init', '--example', '../package'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--example \.\.\/package: no such example \(there are: .*go-devenv.*starter\)/);
    expect(() => readFileSync(join(dir, 'ferry.yaml'))).toThrow();
  });

  it('the starter shows every key of the README configuration reference', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const documented = keysIn(block!);
    const starter = keysIn(readFileSync(join(ROOT, 'examples/starter.yaml'), 'utf8'));
    expect(documented.size).toBeGreaterThan(30);
    expect([...documented].filter((k) => !starter.has(k))).toEqual([]);
  });
});
