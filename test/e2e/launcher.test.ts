// The launcher (dist/ferry.mjs) starts the bundle from V8's code cache written at build time:
// the cache must be one the running Node.js accepts (else every start silently compiles), and a
// missing or damaged cache must only cost time, never a start.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FERRY_MAIN } from '../helpers/ferry-cli.js';

const DIST = dirname(FERRY_MAIN);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the launcher and its code cache', () => {
  it('has a cache that Node.js accepts', () => {
    // Compiled as the launcher compiles it, in a process of its own.
    const check = `
      const { readFileSync } = await import('node:fs');
      const { Script } = await import('node:vm');
      const file = ${JSON.stringify(join(DIST, 'ferry.cjs'))};
      const source = readFileSync(file, 'latin1');
      const s = new Script(source, { filename: file, cachedData: readFileSync(file + '.cache') });
      console.log(s.cachedDataRejected ? 'rejected' : 'accepted');`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', check], { encoding: 'utf8' });
    expect(out.trim()).toBe('accepted');
  });

  it('is ASCII and wrapped as a CommonJS module, as the launcher compiles it', () => {
    // Read as latin1 it is an external string (outside the heap), the same text only in ASCII.
    const bytes = readFileSync(join(DIST, 'ferry.cjs'));
    expect(bytes.every((b) => b < 0x80)).toBe(true);
    expect(bytes.subarray(0, 64).toString('latin1')).toMatch(/^\(function \(exports, require, module, __filename, __dirname\) \{/);
  });

  it.each([
    ['without a cache', undefined],
    ['with a damaged cache', Buffer.from('not a code cache')],
  ])('starts %s', (_label, cache) => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-launcher-'));
    dirs.push(dir);
    copyFileSync(FERRY_MAIN, join(dir, 'ferry.mjs'));
    copyFileSync(join(DIST, 'ferry.cjs'), join(dir, 'ferry.cjs'));
    if (cache) writeFileSync(join(dir, 'ferry.cjs.cache'), cache);
    // The bundle's external packages (better-sqlite3, pino-pretty) resolve from here.
    symlinkSync(join(DIST, '..', 'node_modules'), join(dir, 'node_modules'));
    const out = execFileSync(process.execPath, [join(dir, 'ferry.mjs'), '--version'], { encoding: 'utf8' });
    expect(out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
