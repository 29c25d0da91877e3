// The checksum database end to end: a test database (own ed25519 key, real notes and tiles)
// served upstream under the GOPROXY; Ferry verifies at sync, refuses what the database does not
// vouch for, and writes `sumdb/<name>/` files with which the real go command (Debian go 1.19),
// pointed at the written tree as GOPROXY with GOSUMDB=<test key>, verifies everything offline.
import { execFile } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { goEnv } from '../helpers/go-env.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumdbBundleEntries } from '../../bundle/sumdb.js';
import { parseConfig, type Config } from '../../config/index.js';
import { createSumChecker, type SumChecker } from '../../sync/sumdb.js';
import { runSync } from '../../sync/index.js';
import { proxyPath } from '../../gomod/index.js';
import type { Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree, writeModuleZip, type ProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { sumdbIntercept, TestSumdb } from '../helpers/sumdb.js';

const run = promisify(execFile);
const logger = pino({ level: 'silent' });
const FAST = { retries: 0 };

const GREET = 'example.com/greet';
const WORDS = 'example.com/Words';
const EVIL = 'example.com/evil';
const LATE = 'example.com/late';

describe('checksum database', () => {
  let dir: string;
  let tree: ProxyTree;
  let server: StaticServer;
  let db: TestSumdb;
  let current: TestSumdb;
  const seen: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sumdb-'));
    const up = join(dir, 'upstream');
    tree = await buildProxyTree(up, [
      { path: GREET, version: 'v1.0.0', files: { 'greet.go': 'package greet\n\nfunc Hello() string { return "hello" }\n' } },
      { path: WORDS, version: 'v1.1.0', files: { 'words.go': 'package words\n\nfunc Word() string { return "ferry" }\n' } },
      { path: EVIL, version: 'v1.0.0' },
      { path: LATE, version: 'v0.1.0' },
    ]);
    db = TestSumdb.create('sumdb.ferry.test');
    // Fillers first, so that the records sit beyond the first tile and proofs use level-1 tiles.
    for (let i = 0; i < 300; i++) await db.addText(`example.com/filler${i} v1.0.0 h1:${Buffer.alloc(32, i % 256).toString('base64')}\n`);
    const s = (k: string): { h1Zip: string; h1Mod: string } => tree.sums.get(k)!;
    await db.add(GREET, 'v1.0.0', s(`${GREET}@v1.0.0`).h1Zip, s(`${GREET}@v1.0.0`).h1Mod);
    await db.add(EVIL, 'v1.0.0', s(`${EVIL}@v1.0.0`).h1Zip, s(`${EVIL}@v1.0.0`).h1Mod);
    // Upstream now serves an evil zip that differs from what the database vouches for.
    await writeModuleZip(join(up, ...proxyPath(EVIL, 'zip', 'v1.0.0').split('/')), EVIL, 'v1.0.0', { 'go.mod': `module ${EVIL}\n`, 'doc.go': 'package evil // changed\n' });
    current = db;
    server = await serveDir(up, { intercept: sumdbIntercept(() => current, seen) });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function config(name: string, modules: readonly string[], extra = ''): Config {
    const file = join(dir, `${name}.yaml`);
    const list = modules.map((m) => `    - path: ${m.split('@')[0]}\n      versions: [${m.split('@')[1]}]\n      deps: false\n`).join('');
    const text = `version: 1\nstore: ./${name}\ngoModules:\n  proxy: ${server.url}\n  sumdb: ${db.verifierKey}\n${extra}  modules:\n${list}`;
    writeFileSync(file, text);
    return parseConfig(text, file);
  }

  async function sync(cfg: Config, store: Store): Promise<{ checker: SumChecker; failures: ReadonlyArray<{ code: string; message: string; module?: string }> }> {
    const checker = createSumChecker({ store, config: cfg, retry: FAST })!;
    const s = await runSync({ config: cfg, store, logger, sumCheck: checker, retry: FAST });
    return { checker, failures: s.failures };
  }

  /** Writes the store's module files and the checksum-database entries as a static GOPROXY tree. */
  async function exportTree(store: Store, out: string): Promise<string[]> {
    const versions = store.modules.list();
    const lists = new Map<string, string[]>();
    for (const v of versions) {
      const put = async (kind: 'info' | 'mod' | 'zip', digest: string | null): Promise<void> => {
        if (digest === null) return;
        const file = join(out, ...proxyPath(v.module, kind, v.version).split('/'));
        mkdirSync(dirname(file), { recursive: true });
        await pipeline(store.content.readBlob(digest as Digest), createWriteStream(file));
      };
      await put('info', v.infoDigest);
      await put('mod', v.modDigest);
      await put('zip', v.zipDigest);
      lists.set(v.module, [...(lists.get(v.module) ?? []), v.version]);
    }
    for (const [m, vs] of lists) writeFileSync(join(out, ...proxyPath(m, 'list').split('/')), vs.map((v) => `${v}\n`).join(''));
    const entries = await sumdbBundleEntries(store, versions.map((v) => ({ module: v.module, version: v.version })));
    for (const e of entries) {
      const file = join(out, e.path.replace(/^gomod\//, ''));
      mkdirSync(dirname(file), { recursive: true });
      await pipeline(await e.open({}), createWriteStream(file));
    }
    return entries.map((e) => e.path);
  }


  async function goBuild(home: string, proxy: string, requires: ReadonlyArray<[string, string]>, imports: readonly string[]): Promise<{ ok: boolean; out: string }> {
    const app = join(home, 'app');
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'go.mod'), `module example.com/app\n\ngo 1.19\n\nrequire (\n${requires.map(([m, v]) => `\t${m} ${v}\n`).join('')})\n`);
    const body = imports.map((p, i) => `\t_ = p${i}.${p === GREET ? 'Hello' : 'Word'}()\n`).join('');
    writeFileSync(join(app, 'main.go'), `package main\n\nimport (\n${imports.map((p, i) => `\tp${i} "${p}"\n`).join('')})\n\nfunc main() {\n${body}}\n`);
    const env = goEnv(home, proxy, db.verifierKey);
    try {
      const dl = await run('go', ['mod', 'download', '-x'], { cwd: app, env });
      const b = await run('go', ['build', '-o', join(home, 'app.bin'), '.'], { cwd: app, env });
      return { ok: true, out: dl.stdout + dl.stderr + b.stdout + b.stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      return { ok: false, out: `${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }

  it('verifies at sync, carries lookups and tiles, and the go command verifies them offline as the head moves', async () => {
    const cfg1 = config('store-main', [`${GREET}@v1.0.0`]);
    const store = Store.open(cfg1.store);
    try {
      const first = await sync(cfg1, store);
      expect(first.failures).toEqual([]);
      expect(seen).toContain('supported');
      expect(seen.some((p) => p.startsWith('lookup/example.com/greet@v1.0.0'))).toBe(true);
      expect(seen.some((p) => p.startsWith('tile/8/1/'))).toBe(true);
      expect(store.sumdb.head(db.name)?.size).toBe(302);
      expect(store.sumdb.getRecord(db.name, GREET, 'v1.0.0')?.recordId).toBe(300);
      const c1 = await first.checker.complete();
      expect(c1).toMatchObject({ database: db.name, treeSize: 302, records: 1 });

      // Bundle 1, written as the imported tree; a go client with an empty cache verifies greet.
      const tree1 = join(dir, 'tree1');
      const paths1 = await exportTree(store, tree1);
      expect(paths1).toContain(`gomod/sumdb/${db.name}/supported`);
      expect(paths1).toContain(`gomod/sumdb/${db.name}/lookup/example.com/greet@v1.0.0`);
      expect(paths1.some((p) => p.includes('/tile/8/0/001.p/46'))).toBe(true);
      const home = join(dir, 'client');
      const r1 = await goBuild(home, pathToFileURL(tree1).href, [[GREET, 'v1.0.0']], [GREET]);
      expect(r1.out).not.toMatch(/SECURITY|verifying/);
      expect(r1.ok, r1.out).toBe(true);
      const cached = join(home, 'gopath', 'pkg', 'sumdb', db.name, 'latest');
      expect(readFileSync(cached, 'utf8')).toContain('go.sum database tree\n302\n');
      expect(readFileSync(join(home, 'app', 'go.sum'), 'utf8')).toContain(`${GREET} v1.0.0 ${tree.sums.get(`${GREET}@v1.0.0`)!.h1Zip}`);

      // The log grows; Ferry proves the new head consistent with the one it kept.
      for (let i = 0; i < 40; i++) await db.addText(`example.com/more${i} v1.0.0 h1:${Buffer.alloc(32, i).toString('base64')}\n`);
      const w = tree.sums.get(`${WORDS}@v1.1.0`)!;
      await db.add(WORDS, 'v1.1.0', w.h1Zip, w.h1Mod);
      const cfg2 = config('store-main', [`${GREET}@v1.0.0`, `${WORDS}@v1.1.0`]);
      const second = await sync(cfg2, store);
      expect(second.failures).toEqual([]);
      expect(store.sumdb.head(db.name)?.size).toBe(343);
      expect(store.sumdb.heads(db.name).map((h) => [h.size, h.exported])).toEqual([[302, true], [343, false]]);
      await second.checker.complete();

      // Bundle 2 imported over bundle 1: the same client (cached head 302) moves to 343 and
      // verifies the new module, proving consistency with the tiles carried.
      const paths2 = await exportTree(store, tree1);
      expect(paths2).toContain(`gomod/sumdb/${db.name}/lookup/example.com/!words@v1.1.0`);
      const r2 = await goBuild(home, pathToFileURL(tree1).href, [[GREET, 'v1.0.0'], [WORDS, 'v1.1.0']], [GREET, WORDS]);
      expect(r2.ok, r2.out).toBe(true);
      expect(readFileSync(cached, 'utf8')).toContain('go.sum database tree\n343\n');

      // The same tree served over HTTP to a fresh client works too.
      const http = await serveDir(tree1);
      try {
        const r3 = await goBuild(join(dir, 'client-http'), http.url, [[WORDS, 'v1.1.0']], [WORDS]);
        expect(r3.ok, r3.out).toBe(true);
      } finally {
        await http.stop();
      }

      // A lookup whose record was altered is refused by the go command: verification is real.
      const forged = join(dir, 'forged');
      cpSync(tree1, forged, { recursive: true });
      const lookup = join(forged, 'sumdb', db.name, 'lookup', 'example.com', '!words@v1.1.0');
      writeFileSync(lookup, readFileSync(lookup, 'utf8').replace(w.h1Zip, tree.sums.get(`${GREET}@v1.0.0`)!.h1Zip));
      const r4 = await goBuild(join(dir, 'client-forged'), pathToFileURL(forged).href, [[WORDS, 'v1.1.0']], [WORDS]);
      expect(r4.ok).toBe(false);
      expect(r4.out).toMatch(/cannot authenticate record data|verifying/);
    } finally {
      store.close();
    }
  });

  it('refuses a zip that differs from the database record, and stores nothing for it', async () => {
    const cfg = config('store-evil', [`${EVIL}@v1.0.0`]);
    const store = Store.open(cfg.store);
    try {
      const { failures } = await sync(cfg, store);
      expect(failures.map((f) => f.code)).toEqual(['SUMDB_MISMATCH']);
      expect(failures[0]!.message).toMatch(/example\.com\/evil@v1\.0\.0: verifying module: checksum mismatch/);
      expect(store.modules.get(EVIL, 'v1.0.0')).toBeUndefined();
      expect(store.sumdb.getRecord(db.name, EVIL, 'v1.0.0')).toBeUndefined();
    } finally {
      store.close();
    }
  });

  it('skips modules matching noSumCheck, and refuses versions the database does not know', async () => {
    const cfg = config('store-nosum', [`${LATE}@v0.1.0`], '  noSumCheck: ["example.com/la*"]\n');
    const store = Store.open(cfg.store);
    try {
      expect((await sync(cfg, store)).failures).toEqual([]);
      expect(store.modules.get(LATE, 'v0.1.0')).toBeDefined();
    } finally {
      store.close();
    }
    const cfg2 = config('store-unknown', [`${LATE}@v0.1.0`]);
    const store2 = Store.open(cfg2.store);
    try {
      const { failures } = await sync(cfg2, store2);
      expect(failures.map((f) => f.code)).toEqual(['SUMDB_INVALID']);
      expect(failures[0]!.message).toMatch(/not found in checksum database sumdb\.ferry\.test/);
      expect(store2.modules.get(LATE, 'v0.1.0')).toBeUndefined();
    } finally {
      store2.close();
    }
  });

  it('refuses a note signed by another key, and a head inconsistent with the last one, loudly', async () => {
    const cfg = config('store-attack', [`${GREET}@v1.0.0`]);
    const store = Store.open(cfg.store);
    try {
      expect((await sync(cfg, store)).failures).toEqual([]);
      const kept = store.sumdb.head(db.name)!;

      const late = tree.sums.get(`${LATE}@v0.1.0`)!;
      current = await db.impostor();
      await current.add(LATE, 'v0.1.0', late.h1Zip, late.h1Mod);
      const cfgLate = config('store-attack', [`${GREET}@v1.0.0`, `${LATE}@v0.1.0`]);
      const signed = await sync(cfgLate, store);
      expect(signed.failures.map((f) => f.code)).toEqual(['SUMDB_INVALID']);
      expect(signed.failures[0]!.message).toMatch(/reading tree note: note has no verifiable signatures/);

      // Same key, rewritten history: a fork of the log the store has seen.
      const forked = await db.fork(0, 'example.com/filler0 v1.0.0 h1:rewritten=\n');
      await forked.add(LATE, 'v0.1.0', late.h1Zip, late.h1Mod);
      current = forked;
      const fork = await sync(cfgLate, store);
      expect(fork.failures.map((f) => f.code), fork.failures[0]?.message).toEqual(['SUMDB_INCONSISTENT']);
      expect(fork.failures[0]!.message).toMatch(/SECURITY ERROR.*tree#\d+ is not a prefix of tree#\d+/s);
      expect(store.sumdb.head(db.name)).toEqual(kept);
      expect(store.modules.get(LATE, 'v0.1.0')).toBeUndefined();
      expect(existsSync(store.dir)).toBe(true);
    } finally {
      current = db;
      store.close();
    }
  });
});
