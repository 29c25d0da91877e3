// A version's .info, .mod and zip must agree before sync stores it (as go would refuse them), and
// a version whose zip the proxy does not have (404/410, its .info and .mod there) is carried with
// .info and .mod only, counted and named in the report, while any other failure on the zip still
// fails the root. A real static GOPROXY tree over HTTP on 127.0.0.1.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { createSumChecker } from '../../sync/sumdb.js';
import { proxyPath } from '../../gomod/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree, type ProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { sumdbIntercept, TestSumdb } from '../helpers/sumdb.js';

const logger = pino({ level: 'silent' });
const at = (m: string, v: string, kind: 'info' | 'mod' | 'zip'): string => `/${proxyPath(m, kind, v)}`;

describe('Go module metadata at sync', () => {
  let dir: string;
  let tree: ProxyTree;
  let server: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-modmeta-'));
    const up = join(dir, 'upstream');
    tree = await buildProxyTree(up, [
      // The zip's go.mod adds a requirement the served .mod does not have.
      { path: 'example.com/twofaced', version: 'v1.0.0', gomod: 'module example.com/twofaced\n', files: { 'go.mod': 'module example.com/twofaced\n\nrequire example.com/extra v1.0.0\n', 'a.go': 'package a\n' } },
      // No go.mod in the zip: the .mod must be the synthesized one.
      { path: 'example.com/legacy', version: 'v1.0.0', zipGoMod: false, gomod: 'module example.com/legacy\n' },
      { path: 'example.com/legacybad', version: 'v1.0.0', zipGoMod: false, require: [['example.com/extra', 'v1.0.0']] },
      { path: 'example.com/extra', version: 'v1.0.0' },
      // A root whose requirement's zip the proxy lacks (404), and one whose zip is gone (410).
      { path: 'example.com/app', version: 'v1.0.0', require: [['example.com/lib', 'v1.0.0'], ['example.com/gone', 'v1.0.0']] },
      { path: 'example.com/lib', version: 'v1.0.0' },
      { path: 'example.com/gone', version: 'v1.0.0' },
      // An .info that answers for another version.
      { path: 'example.com/twoinfo', version: 'v1.0.0' },
      // A zip the proxy refuses to give (403): not "not here", a failure.
      { path: 'example.com/denied', version: 'v1.0.0' },
    ]);
    rmSync(join(up, ...proxyPath('example.com/lib', 'zip', 'v1.0.0').split('/')));
    writeFileSync(join(up, ...proxyPath('example.com/twoinfo', 'info', 'v1.0.0').split('/')), '{"Version":"v1.0.1","Time":"2024-01-01T00:00:00Z"}\n');
    server = await serveDir(up, {
      intercept: (req, res) => {
        if (req.url === at('example.com/gone', 'v1.0.0', 'zip')) {
          res.writeHead(410, { 'content-type': 'text/plain' }).end('gone\n');
          return true;
        }
        if (req.url === at('example.com/denied', 'v1.0.0', 'zip')) {
          res.writeHead(403, { 'content-type': 'text/plain' }).end('no\n');
          return true;
        }
        return false;
      },
    });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function config(modules: string, storeName: string): ReturnType<typeof parseConfig> {
    const file = join(dir, `${storeName}.yaml`);
    const text = `version: 1\nstore: ./${storeName}\ngoModules:\n  proxy: ${server.url}\n  sumdb: off\n  modules:\n${modules}`;
    writeFileSync(file, text);
    return parseConfig(text, file);
  }

  it('refuses a zip whose go.mod is not the .mod, and a .mod that says more than go synthesizes for a zip without one', async () => {
    const cfg = config(['twofaced', 'legacy', 'legacybad'].map((m) => `    - path: example.com/${m}\n      versions: [v1.0.0]\n`).join(''), 'store-meta');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      const byModule = new Map(s.failures.map((f) => [f.module, f]));
      expect([...byModule.keys()].sort()).toEqual(['example.com/legacybad', 'example.com/twofaced']);
      expect(byModule.get('example.com/twofaced')).toMatchObject({ code: 'MODULE_INVALID', message: expect.stringContaining("example.com/twofaced@v1.0.0: the zip's go.mod") });
      expect(byModule.get('example.com/legacybad')).toMatchObject({ code: 'MODULE_INVALID', message: expect.stringContaining('the zip has no go.mod') });
      expect(store.modules.get('example.com/twofaced', 'v1.0.0')).toBeUndefined();
      expect(store.modules.get('example.com/legacybad', 'v1.0.0')).toBeUndefined();
      expect(store.modules.get('example.com/legacy', 'v1.0.0')).toMatchObject({ h1Zip: tree.sums.get('example.com/legacy@v1.0.0')?.h1Zip });
    } finally {
      store.close();
    }
  });

  it('refuses an .info for another version', async () => {
    const cfg = config('    - path: example.com/twoinfo\n      versions: [v1.0.0]\n', 'store-info');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures).toMatchObject([{ module: 'example.com/twoinfo', version: 'v1.0.0', code: 'VERSION_INVALID', message: expect.stringContaining('v1.0.1') }]);
      expect(store.modules.list()).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('carries .info and .mod of a version whose zip the proxy does not have, and says so', async () => {
    const cfg = config('    - path: example.com/app\n      versions: [v1.0.0]\n', 'store-modonly');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures).toEqual([]);
      expect(s.ok).toBe(true);
      expect(s.modules).toMatchObject({ versionsNew: 3, modOnly: 2 });
      expect(s.moduleResults[0]).toMatchObject({ ok: true, modOnly: ['example.com/gone@v1.0.0', 'example.com/lib@v1.0.0'] });
      expect(s.warnings).toEqual([
        { source: 'example.com/app', module: 'example.com/gone', version: 'v1.0.0', message: expect.stringContaining('example.com/gone@v1.0.0: the proxy has no zip') },
        { source: 'example.com/app', module: 'example.com/lib', version: 'v1.0.0', message: expect.stringContaining('example.com/lib@v1.0.0: the proxy has no zip') },
      ]);
      for (const m of ['example.com/lib', 'example.com/gone']) {
        const row = store.modules.get(m, 'v1.0.0');
        expect(row, m).toMatchObject({ zipDigest: null, h1Zip: null, h1Mod: tree.sums.get(`${m}@v1.0.0`)?.h1Mod });
        expect(store.content.hasBlob(row!.infoDigest)).toBe(true);
        expect(store.content.hasBlob(row!.modDigest)).toBe(true);
      }
      expect(store.modules.get('example.com/app', 'v1.0.0')?.zipDigest).toMatch(/^sha256:/);
      expect((await store.fsck()).problems).toEqual([]);

      // The next pass still names them: they are carried, and still without a zip.
      const again = await runSync({ config: config('    - path: example.com/app\n      versions: [v1.0.0]\n', 'store-modonly'), store, logger });
      expect(again.ok).toBe(true);
      expect(again.modules.versionsNew).toBe(0);
    } finally {
      store.close();
    }
  });

  it('fails the root when the zip answer is an error rather than "not here"', async () => {
    const cfg = config('    - path: example.com/denied\n      versions: [v1.0.0]\n', 'store-denied');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.ok).toBe(false);
      expect(s.failures).toMatchObject([{ module: 'example.com/denied', version: 'v1.0.0' }]);
      expect(s.failures[0]!.code).not.toBe('NOT_FOUND');
      expect(s.modules.modOnly).toBe(0);
      expect(store.modules.list()).toEqual([]);
    } finally {
      store.close();
    }
  });
});

describe('a version without a zip and the checksum database', () => {
  let dir: string;
  let server: StaticServer;
  let db: TestSumdb;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-modmeta-sumdb-'));
    const up = join(dir, 'upstream');
    const tree = await buildProxyTree(up, [
      { path: 'example.com/nozip', version: 'v1.0.0' },
      { path: 'example.com/nozipbad', version: 'v1.0.0' },
    ]);
    for (const m of ['example.com/nozip', 'example.com/nozipbad']) rmSync(join(up, ...proxyPath(m, 'zip', 'v1.0.0').split('/')));
    db = TestSumdb.create('sumdb.ferry.test');
    const s = (k: string): { h1Zip: string; h1Mod: string } => tree.sums.get(`${k}@v1.0.0`)!;
    await db.add('example.com/nozip', 'v1.0.0', s('example.com/nozip').h1Zip, s('example.com/nozip').h1Mod);
    // The database vouches for another go.mod than the one the proxy serves.
    await db.add('example.com/nozipbad', 'v1.0.0', s('example.com/nozipbad').h1Zip, s('example.com/nozip').h1Mod);
    server = await serveDir(up, { intercept: sumdbIntercept(() => db) });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('checks its go.mod line: carried when it matches, refused when it does not', async () => {
    const file = join(dir, 'ferry.yaml');
    const roots = ['nozip', 'nozipbad'].map((m) => `    - path: example.com/${m}\n      versions: [v1.0.0]\n`).join('');
    const text = `version: 1\nstore: ./store\ngoModules:\n  proxy: ${server.url}\n  sumdb: ${db.verifierKey}\n  modules:\n${roots}`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    try {
      const checker = createSumChecker({ store, config: cfg, retry: { retries: 0 } })!;
      const s = await runSync({ config: cfg, store, logger, sumCheck: checker, retry: { retries: 0 } });
      expect(s.failures).toMatchObject([{ module: 'example.com/nozipbad', code: 'SUMDB_MISMATCH', message: expect.stringContaining('verifying go.mod') }]);
      expect(s.modules.modOnly).toBe(1);
      expect(store.modules.get('example.com/nozip', 'v1.0.0')).toMatchObject({ zipDigest: null, h1Zip: null });
      expect(store.modules.get('example.com/nozipbad', 'v1.0.0')).toBeUndefined();
      expect(store.sumdb.listRecords('sumdb.ferry.test').map((r) => r.module)).toEqual(['example.com/nozip']);
    } finally {
      store.close();
    }
  });
});
