// scripts/setup.mjs, the set-up `npm test`, `npm run demo` and `npm run bench` run first on a
// fresh clone: its decisions, made on real files in a temp directory with real mtimes, and the
// steps it would run (recorded by a runner that installs nothing).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NEEDS, setup, type SetupCommand, type StepRunner } from '../../scripts/setup.mjs';

const SCRIPT = fileURLToPath(new URL('../../scripts/setup.mjs', import.meta.url));
let dir: string;
let bin: string;

/** Writes a file with an mtime `age` seconds in the past (larger = older). */
function file(rel: string, age: number, text = ''): void {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  const t = Date.now() / 1000 - age;
  utimesSync(p, t, t);
}

/** An executable stand-in for a command on the test's PATH. */
function tool(name: string): void {
  const p = join(bin, name);
  writeFileSync(p, '#!/bin/sh\nexit 0\n');
  chmodSync(p, 0o755);
}

/** A checkout as a clone leaves it, then installed and built, in that order. */
function checkout(): void {
  file('package.json', 1000, JSON.stringify({ name: 'ferry', engines: { node: '>=20.18.1' } }));
  file('tsconfig.json', 1000, '{}');
  file('tsconfig.build.json', 1000, JSON.stringify({ include: ['cli', 'net'] }));
  file('scripts/postbuild.mjs', 1000);
  file('cli/main.ts', 1000);
  file('net/deep/request.ts', 1000);
  file('package-lock.json', 1000, '{}');
  file('node_modules/.package-lock.json', 500, '{}');
  for (const f of ['dist/ferry.mjs', 'dist/ferry.cjs', 'dist/cli/main.js']) file(f, 100);
}

function allTools(command: SetupCommand): void {
  for (const c of NEEDS[command].commands) tool(c);
}

interface Outcome {
  readonly status: number;
  readonly steps: string[];
  readonly out: string;
}

/** Runs setup with the given PATH; steps are recorded, and `onStep` may act for one (e.g. "install" a tool). */
function run(command: SetupCommand, opts: { isRoot?: boolean; onStep?: (step: string) => number; nodeVersion?: string } = {}): Outcome {
  const steps: string[] = [];
  let out = '';
  const runner: StepRunner = (f, args) => {
    const step = [f.endsWith('node') ? 'node' : f, ...args.map((a) => (a.endsWith('npm-cli.js') ? 'npm' : a))].join(' ');
    steps.push(step);
    return opts.onStep?.(step) ?? 0;
  };
  const status = setup({
    root: dir,
    command,
    env: { PATH: bin, npm_execpath: '' },
    isRoot: opts.isRoot ?? false,
    run: runner,
    write: (s) => (out += s),
    ...(opts.nodeVersion ? { nodeVersion: opts.nodeVersion } : {}),
  });
  return { status, steps, out };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-setup-'));
  bin = join(dir, '.bin');
  mkdirSync(bin);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('scripts/setup.mjs', () => {
  it('does nothing and prints nothing when the tools, node_modules and dist/ are in place', () => {
    checkout();
    allTools('demo');
    expect(run('demo')).toEqual({ status: 0, steps: [], out: '' });
  });

  it('runs npm ci when node_modules is missing (a fresh clone), then builds only if npm ci did not', () => {
    checkout();
    rmSync(join(dir, 'node_modules'), { recursive: true });
    rmSync(join(dir, 'dist'), { recursive: true });
    allTools('demo');
    // npm ci runs `prepare`, which builds: the build is decided again afterwards.
    const r = run('demo', {
      onStep: (s) => {
        if (s === 'npm ci --no-audit --no-fund') {
          file('node_modules/.package-lock.json', 10, '{}');
          for (const f of ['dist/ferry.mjs', 'dist/ferry.cjs', 'dist/cli/main.js']) file(f, 5);
        }
        return 0;
      },
    });
    expect(r.status).toBe(0);
    expect(r.steps).toEqual(['npm ci --no-audit --no-fund']);
    expect(r.out).toContain('node_modules is missing');
  });

  it('runs npm ci when package-lock.json is newer than the installed node_modules', () => {
    checkout();
    allTools('test');
    file('package-lock.json', 50, '{}');
    const r = run('test');
    expect(r.steps).toEqual(['npm ci --no-audit --no-fund']);
    expect(r.out).toContain('package-lock.json is newer than node_modules');
  });

  it('never reinstalls a node_modules that is a link to another checkout', () => {
    checkout();
    allTools('test');
    const other = join(dir, 'other-node_modules');
    mkdirSync(other);
    rmSync(join(dir, 'node_modules'), { recursive: true });
    symlinkSync(other, join(dir, 'node_modules'));
    const r = run('test');
    expect(r.status).toBe(0);
    expect(r.steps).toEqual([]);
    expect(r.out).toContain('node_modules is a link');
  });

  it('builds when a source file anywhere under a built folder is newer than dist/, or dist/ is missing', () => {
    checkout();
    allTools('demo');
    file('net/deep/request.ts', 10);
    let r = run('demo');
    expect(r.steps).toEqual(['npm run build --silent']);
    expect(r.out).toContain('dist/ is older than net/deep/request.ts');

    checkout();
    file('scripts/postbuild.mjs', 10);
    expect(run('demo').out).toContain('dist/ is older than scripts/postbuild.mjs');

    checkout();
    rmSync(join(dir, 'dist/ferry.cjs'));
    r = run('demo');
    expect(r.steps).toEqual(['npm run build --silent']);
    expect(r.out).toContain('dist/ferry.cjs is missing');
  });

  it('does not build for npm test (scripts/test.mjs builds itself) and ignores files outside the built folders', () => {
    checkout();
    allTools('demo');
    file('net/deep/request.ts', 10);
    expect(run('test').steps).toEqual([]);
    checkout();
    file('test/some.test.ts', 10);
    file('README.md', 10);
    expect(run('demo').steps).toEqual([]);
  });

  it('as a user, names the exact apt-get install for the missing Debian packages and exits 2 without running anything', () => {
    checkout();
    tool('apt-get');
    tool('openssl');
    tool('curl');
    const r = run('test');
    expect(r.status).toBe(2);
    expect(r.steps).toEqual([]);
    expect(r.out).toBe('setup: npm test needs docker-registry, skopeo, go, chromium; run as root: apt-get install -y docker-registry skopeo golang-go chromium\n');
  });

  it('as root, installs the missing packages with apt-get, non-interactively, then goes on', () => {
    checkout();
    tool('apt-get');
    for (const c of ['docker-registry', 'skopeo', 'curl']) tool(c);
    const r = run('demo', {
      isRoot: true,
      onStep: (s) => {
        if (s.startsWith('apt-get install')) ['go', 'python3'].forEach(tool);
        return 0;
      },
    });
    expect(r.status).toBe(0);
    expect(r.steps).toEqual(['apt-get update -qq', 'apt-get install -y -qq golang-go python3']);
    expect(r.out).toBe('setup: installing golang-go python3 (apt-get)\n');
  });

  it('as root, fails (exit 1) when apt-get fails or the commands are still missing after it', () => {
    checkout();
    tool('apt-get');
    let r = run('test', { isRoot: true, onStep: (s) => (s.startsWith('apt-get update') ? 100 : 0) });
    expect(r.status).toBe(1);
    expect(r.out).toContain('apt-get update failed (exit 100)');
    r = run('test', { isRoot: true });
    expect(r.status).toBe(1);
    expect(r.out).toContain('still not on PATH after apt-get install: docker-registry, skopeo, go, openssl, curl');
  });

  it('without apt-get, names the commands and their Debian packages and exits 2', () => {
    checkout();
    const r = run('demo', { isRoot: true });
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/^setup: npm run demo needs docker-registry, skopeo, go, curl, python3 on PATH \(Debian packages: docker-registry skopeo golang-go curl python3\)/);
  });

  it('refuses a Node.js older than package.json engines allow', () => {
    checkout();
    allTools('demo');
    const r = run('demo', { nodeVersion: '18.19.0' });
    expect(r.status).toBe(2);
    expect(r.out).toBe('setup: Ferry needs Node.js 20.18.1 or newer; this is 18.19.0\n');
  });

  it('run as a script: a usage error is exit 2, and --dry-run says what it would do', () => {
    const bad = spawnSync(process.execPath, [SCRIPT, 'deploy'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('usage: node scripts/setup.mjs test|demo|bench');
    const dry = spawnSync(process.execPath, [SCRIPT, 'demo', '--dry-run'], { encoding: 'utf8', env: { ...process.env, PATH: bin } });
    expect(dry.status).toBe(2);
    expect(dry.stderr).toContain('setup: npm run demo needs docker-registry');
  });
});
