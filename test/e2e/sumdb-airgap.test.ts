// The checksum database across the air gap, through the CLI only: upstream is a static GOPROXY
// tree with a test checksum database (own ed25519 key) under /sumdb/<name>/ of the same server;
// ferry sync → keygen → export → import into a Go module tree and into a store served by
// `ferry serve`. The real go command (Debian go 1.19) with GOSUMDB=<test key> (never off)
// verifies every module through the imported files, keeps working when the log grows and a
// second, incremental bundle arrives, and refuses a tampered lookup.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { goEnv } from '../helpers/go-env.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../store/index.js';
import { FERRY_MAIN, runFerry, type FerryRun } from '../helpers/ferry-cli.js';
import { buildProxyTree, type ProxyTree, type TreeModule } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { sumdbIntercept, TestSumdb } from '../helpers/sumdb.js';

const run = promisify(execFile);

const GREET = 'example.com/Greet';
const WORDS = 'example.com/words';
const GREET_ESC = 'example.com/!greet';

const ROUND1: TreeModule[] = [
  { path: GREET, version: 'v1.0.0', require: [[WORDS, 'v0.1.0']], files: { 'greet.go': 'package greet\n\nimport "example.com/words"\n\nfunc Hello() string { return words.Hello + ", one" }\n' } },
  { path: WORDS, version: 'v0.1.0', files: { 'words.go': 'package words\n\nconst Hello = "hello"\n' } },
];
const ROUND2: TreeModule[] = [
  ...ROUND1,
  { path: GREET, version: 'v1.1.0', require: [[WORDS, 'v0.1.0']], files: { 'greet.go': 'package greet\n\nimport "example.com/words"\n\nfunc Hello() string { return words.Hello + ", two" }\n' } },
];

/** Expects a CLI run to have succeeded, showing its output when it did not. */
function ok(r: FerryRun, what: string): FerryRun {
  expect(r.code, `${what}: ${r.stderr}${r.stdout}`).toBe(0);
  return r;
}

/** The tree size of a signed tree note. */
function treeSize(note: string | Buffer): number {
  const m = /^go\.sum database tree\n(\d+)\n/.exec(note.toString());
  if (!m) throw new Error(`not a tree note: ${note.toString()}`);
  return Number(m[1]);
}

describe('checksum database across the air gap (CLI)', () => {
  let dir: string;
  let up: string;
  let tree: ProxyTree;
  let db: TestSumdb;
  let upstream: StaticServer;
  const seen: string[] = [];
  let cfg: string;
  let pub: string;
  const gomod = (): string => join(dir, 'gomod');
  const sdir = (): string => join(dir, 'istore');
  let bundle1 = '';
  let bundle2 = '';
  const serves: ChildProcess[] = [];

  function writeConfig(versions: readonly string[]): void {
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\n` +
        `goModules:\n  proxy: ${upstream.url}\n  sumdb: ${db.verifierKey}\n  modules:\n    - path: ${GREET}\n      versions: [${versions.join(', ')}]\n` +
        `export:\n  signingKey: ${join(dir, 'keys', 'ferry.key')}\n  out: ${join(dir, 'out')}\n`,
    );
  }

  /** Runs `ferry export` into its own directory and returns the one bundle tar it wrote. */
  async function exportBundle(name: string): Promise<string> {
    const out = join(dir, name);
    ok(await runFerry(['export', '-c', cfg, '--out', out]), `export ${name}`);
    const tars = readdirSync(out).filter((f) => f.endsWith('.tar'));
    expect(tars).toHaveLength(1);
    return join(out, tars[0]!);
  }

  async function startServe(storeDir: string): Promise<{ url: string; stdout: string; child: ChildProcess }> {
    const child = spawn(process.execPath, [FERRY_MAIN, 'serve', '--store', storeDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serves.push(child);
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /serving on (http:\/\/\S+)/.exec(out);
        if (m && out.includes('images:')) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`ferry serve exited ${String(code)}: ${err}`)));
    });
    return { url, stdout: out, child };
  }

  async function stopServe(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }


  /** `go mod download` then `go build` of a program using Greet at `version`; runs it on success. */
  async function goBuild(home: string, proxy: string, version: string): Promise<{ ok: boolean; out: string }> {
    const app = join(home, 'app');
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'go.mod'), `module example.com/app\n\ngo 1.19\n\nrequire ${GREET} ${version}\n`);
    writeFileSync(join(app, 'main.go'), 'package main\n\nimport (\n\t"fmt"\n\n\tgreet "example.com/Greet"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n');
    const env = goEnv(home, proxy, db.verifierKey);
    const before = { sumdb: seen.length, upstream: upstream.requests.length };
    try {
      const dl = await run('go', ['mod', 'download'], { cwd: app, env });
      const bin = join(home, 'app.bin');
      const b = await run('go', ['build', '-o', bin, '.'], { cwd: app, env });
      const out = await run(bin, []);
      return { ok: true, out: dl.stdout + dl.stderr + b.stdout + b.stderr + out.stdout };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      return { ok: false, out: `${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}` };
    } finally {
      // Nothing upstream is reachable "inside": the go command must not have gone there.
      expect(seen.length).toBe(before.sumdb);
      expect(upstream.requests.length).toBe(before.upstream);
    }
  }

  function cachedHead(home: string): number {
    return treeSize(readFileSync(join(home, 'gopath', 'pkg', 'sumdb', db.name, 'latest')));
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sumdb-airgap-'));
    up = join(dir, 'upstream');
    tree = await buildProxyTree(up, ROUND1);
    db = TestSumdb.create('sumdb.airgap.test');
    // Fillers first: round 2 grows the log across the first tile boundary (256 records).
    for (let i = 0; i < 240; i++) await db.addText(`example.com/filler${i} v1.0.0 h1:${Buffer.alloc(32, i % 256).toString('base64')}\n`);
    await db.addAll(tree.sums);
    upstream = await serveDir(up, { intercept: sumdbIntercept(() => db, seen) });
    cfg = join(dir, 'ferry.yaml');
    writeConfig(['v1.0.0']);
    mkdirSync(join(dir, 'keys'));
    ok(await runFerry(['keygen', '--out', join(dir, 'keys', 'ferry')]), 'keygen');
    pub = join(dir, 'keys', 'ferry.pub');
    ok(await runFerry(['sync', '-c', cfg]), 'sync 1');
    expect(seen).toContain('supported');
    bundle1 = await exportBundle('out1');
  });

  afterAll(async () => {
    for (const c of serves) await stopServe(c);
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('(a) import --gomod-dir: go verifies every module through the imported tree with GOSUMDB=<key>', async () => {
    ok(await runFerry(['import', bundle1, '--trust', pub, '--gomod-dir', gomod(), '--json']), 'import gomod 1');
    expect(readdirSync(join(gomod(), 'sumdb', db.name))).toEqual(expect.arrayContaining(['supported', 'latest', 'lookup', 'tile']));
    const home = join(dir, 'client-file');
    const r = await goBuild(home, pathToFileURL(gomod()).href, 'v1.0.0');
    expect(r.ok, r.out).toBe(true);
    expect(r.out).toContain('hello, one');
    expect(cachedHead(home)).toBe(db.size);
    const sum = readFileSync(join(home, 'app', 'go.sum'), 'utf8');
    expect(sum).toContain(`${GREET} v1.0.0 ${tree.sums.get(`${GREET}@v1.0.0`)!.h1Zip}`);
    expect(sum).toContain(`${WORDS} v0.1.0/go.mod ${tree.sums.get(`${WORDS}@v0.1.0`)!.h1Mod}`);
  });

  it('(b) import --store, then ferry serve --store answers the database; a DMZ store does not', async () => {
    ok(await runFerry(['import', bundle1, '--trust', pub, '--store', sdir(), '--json']), 'import store 1');
    const s = await startServe(sdir());
    try {
      expect(s.stdout).toContain(`checksum db: ${db.name}`);
      const supported = await fetch(`${s.url}/sumdb/${db.name}/supported`);
      expect(supported.status).toBe(200);
      const latest = await fetch(`${s.url}/sumdb/${db.name}/latest`);
      expect(latest.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(treeSize(Buffer.from(await latest.arrayBuffer()))).toBe(db.size);
      const home = join(dir, 'client-serve');
      const r = await goBuild(home, s.url, 'v1.0.0');
      expect(r.ok, r.out).toBe(true);
      expect(r.out).toContain('hello, one');
      expect(cachedHead(home)).toBe(db.size);
    } finally {
      await stopServe(s.child);
    }
    // The DMZ store keeps tiles and lookups it fetched, but never `supported`: its clients go
    // to the real database, so serving it answers 404 for the database.
    const dmz = await startServe(join(dir, 'store'));
    try {
      expect((await fetch(`${dmz.url}/sumdb/${db.name}/supported`)).status).toBe(404);
      expect(dmz.stdout).not.toContain('checksum db:');
    } finally {
      await stopServe(dmz.child);
    }
  });

  it('(c) the log grows and an incremental bundle arrives: clients with the old cached head move on', async () => {
    const oldSize = db.size;
    tree = await buildProxyTree(up, ROUND2);
    for (let i = 0; i < 20; i++) await db.addText(`example.com/more${i} v1.0.0 h1:${Buffer.alloc(32, 200 + i).toString('base64')}\n`);
    const g2 = tree.sums.get(`${GREET}@v1.1.0`)!;
    await db.add(GREET, 'v1.1.0', g2.h1Zip, g2.h1Mod);
    expect(db.size).toBeGreaterThan(256);
    writeConfig(['v1.0.0', 'v1.1.0']);
    ok(await runFerry(['sync', '-c', cfg]), 'sync 2');
    bundle2 = await exportBundle('out2');
    ok(await runFerry(['import', bundle2, '--trust', pub, '--gomod-dir', gomod(), '--json']), 'import gomod 2');
    ok(await runFerry(['import', bundle2, '--trust', pub, '--store', sdir(), '--json']), 'import store 2');
    expect(treeSize(readFileSync(join(gomod(), 'sumdb', db.name, 'latest')))).toBe(db.size);

    const fileHome = join(dir, 'client-file');
    expect(cachedHead(fileHome)).toBe(oldSize);
    const r1 = await goBuild(fileHome, pathToFileURL(gomod()).href, 'v1.1.0');
    expect(r1.ok, r1.out).toBe(true);
    expect(r1.out).toContain('hello, two');
    expect(cachedHead(fileHome)).toBe(db.size);

    const s = await startServe(sdir());
    try {
      const serveHome = join(dir, 'client-serve');
      expect(cachedHead(serveHome)).toBe(oldSize);
      const r2 = await goBuild(serveHome, s.url, 'v1.1.0');
      expect(r2.ok, r2.out).toBe(true);
      expect(r2.out).toContain('hello, two');
      expect(cachedHead(serveHome)).toBe(db.size);
      // A partial hash tile the store keeps only in its completed form is served as its prefix.
      const partial = await fetch(`${s.url}/sumdb/${db.name}/tile/8/0/000.p/5`);
      expect(partial.status).toBe(200);
      expect(Buffer.from(await partial.arrayBuffer()).equals((await db.tile('tile/8/0/000.p/5'))!)).toBe(true);
      expect((await fetch(`${s.url}/sumdb/${db.name}/tile/8/0/999`)).status).toBe(404);
    } finally {
      await stopServe(s.child);
    }
  });

  it('(c) an older bundle imported after a newer one never moves `latest` backwards', async () => {
    const newSize = db.size;
    const g = join(dir, 'gomod-reversed');
    const st = join(dir, 'istore-reversed');
    for (const target of [['--gomod-dir', g], ['--store', st]]) {
      // The second bundle first needs --force (its parent is not in the ledger yet).
      ok(await runFerry(['import', bundle2, '--trust', pub, ...target, '--force', '--json']), `import 2 ${target[0]!}`);
      ok(await runFerry(['import', bundle1, '--trust', pub, ...target, '--json']), `import 1 ${target[0]!}`);
    }
    expect(treeSize(readFileSync(join(g, 'sumdb', db.name, 'latest')))).toBe(newSize);
    // The first bundle's lookups fill the gaps the incremental one left.
    expect(readFileSync(join(g, 'sumdb', db.name, 'lookup', GREET_ESC + '@v1.0.0'), 'utf8')).toContain(`${GREET} v1.0.0 `);
    const store = Store.open(st, { readonly: true });
    try {
      expect(treeSize((await store.sumdb.readFile(db.name, 'latest'))!)).toBe(newSize);
      expect((await store.sumdb.readFile(db.name, `lookup/${GREET_ESC}@v1.0.0`))?.toString()).toContain(`${GREET} v1.0.0 `);
    } finally {
      store.close();
    }
    // A fresh client of the reversed tree verifies both versions.
    const r = await goBuild(join(dir, 'client-reversed'), pathToFileURL(g).href, 'v1.1.0');
    expect(r.ok, r.out).toBe(true);
  });

  it('(d) a tampered lookup in the tree is refused by the go command', async () => {
    const forged = join(dir, 'gomod-forged');
    cpSync(gomod(), forged, { recursive: true });
    const lookup = join(forged, 'sumdb', db.name, 'lookup', `${GREET_ESC}@v1.1.0`);
    const text = readFileSync(lookup, 'utf8');
    const h1 = tree.sums.get(`${GREET}@v1.1.0`)!.h1Zip;
    expect(text).toContain(h1);
    writeFileSync(lookup, text.replace(h1, tree.sums.get(`${GREET}@v1.0.0`)!.h1Zip));
    const r = await goBuild(join(dir, 'client-forged'), pathToFileURL(forged).href, 'v1.1.0');
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/verifying|SECURITY ERROR|cannot authenticate/);
  });
});
