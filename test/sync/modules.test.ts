// Go module sync against a real static GOPROXY tree served over HTTP on 127.0.0.1.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { hashZip, IN_MEMORY_ZIP, proxyPath } from '../../gomod/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree, makeBadZip, type ProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const logger = pino({ level: 'silent' });
const PSEUDO = 'v0.0.0-20240102030405-abcdefabcdef';

describe('Go module sync', () => {
  let dir: string;
  let tree: ProxyTree;
  let server: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-modsync-'));
    tree = await buildProxyTree(join(dir, 'upstream'), [
      // The root: its newest version retracts itself, so latest is v1.2.0.
      { path: 'example.com/Root', version: 'v1.1.0', require: [['example.com/shared', 'v1.0.0']] },
      { path: 'example.com/Root', version: 'v1.2.0', require: [['example.com/shared', 'v1.1.0'], ['example.com/leaf', 'v0.3.0']] },
      { path: 'example.com/Root', version: 'v1.3.0', require: [['example.com/shared', 'v1.1.0']], retract: ['v1.3.0 // broken release'] },
      { path: 'example.com/shared', version: 'v1.0.0', require: [['example.com/leaf', 'v0.2.0']] },
      { path: 'example.com/shared', version: 'v1.1.0', require: [['example.com/leaf', 'v0.3.0']] },
      { path: 'example.com/leaf', version: 'v0.2.0' },
      { path: 'example.com/leaf', version: 'v0.3.0' },
      { path: 'example.com/old', version: 'v2.0.0+incompatible', zipGoMod: false, gomod: 'module example.com/old\n' },
      { path: 'example.com/pseudo', version: PSEUDO },
      // Bad upstream content.
      { path: 'example.com/evil', version: 'v1.0.0' },
      { path: 'example.com/cased', version: 'v1.0.0' },
      { path: 'example.com/huge', version: 'v1.0.0' },
      { path: 'example.com/liar', version: 'v1.0.0', gomod: 'module example.com/somebody-else\n' },
      // Bigger than IN_MEMORY_ZIP even deflated: these stream through a temp file.
      { path: 'example.com/bulky', version: 'v1.0.0', files: { 'doc.go': 'package bulky\n', 'data.bin': randomBytes(IN_MEMORY_ZIP + 1024) } },
      { path: 'example.com/bulkyevil', version: 'v1.0.0' },
    ]);
    const up = join(dir, 'upstream');
    const zipAt = (m: string): string => join(up, ...proxyPath(m, 'zip', 'v1.0.0').split('/'));
    await makeBadZip(zipAt('example.com/evil'), [{ name: 'example.com/evil@v1.0.0/../evil.go', data: 'package evil\n' }]);
    await makeBadZip(zipAt('example.com/cased'), [
      { name: 'example.com/cased@v1.0.0/README', data: 'a' },
      { name: 'example.com/cased@v1.0.0/readme', data: 'b' },
    ]);
    await makeBadZip(zipAt('example.com/huge'), [{ name: 'example.com/huge@v1.0.0/big.bin', data: 'x', declaredSize: 600 * 1024 * 1024 }]);
    await makeBadZip(join(up, ...proxyPath('example.com/bulkyevil', 'zip', 'v1.0.0').split('/')), [
      { name: 'example.com/bulkyevil@v1.0.0/data.bin', data: randomBytes(IN_MEMORY_ZIP + 1024).toString('latin1') },
      { name: 'example.com/bulkyevil@v1.0.0/../evil.go', data: 'package evil\n' },
    ]);
    server = await serveDir(up);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function config(modules: string, storeName = 'store'): ReturnType<typeof parseConfig> {
    const file = join(dir, `${storeName}.yaml`);
    const text = `version: 1\nstore: ./${storeName}\ngoModules:\n  proxy: ${server.url}\n  sumdb: off\n  modules:\n${modules}`;
    writeFileSync(file, text);
    return parseConfig(text, file);
  }

  it('carries the whole closure with .info, .mod, .zip and h1 equal to go.sum hashes', async () => {
    const cfg = config(
      `    - path: example.com/Root\n      versions: latest\n    - path: example.com/old\n      versions: [v2.0.0+incompatible]\n    - path: example.com/pseudo\n      versions: [${PSEUDO}]\n`,
    );
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures).toEqual([]);
      const got = store.modules.list().map((m) => `${m.module}@${m.version}`).sort();
      // latest skips the retracted v1.3.0; no pruning: both shared versions and both leaves.
      expect(got).toEqual(
        [
          'example.com/Root@v1.2.0',
          'example.com/shared@v1.1.0',
          'example.com/leaf@v0.3.0',
          'example.com/old@v2.0.0+incompatible',
          `example.com/pseudo@${PSEUDO}`,
        ].sort(),
      );
      for (const m of store.modules.list()) {
        const want = tree.sums.get(`${m.module}@${m.version}`);
        expect(m.h1Zip, `${m.module}@${m.version}`).toBe(want?.h1Zip);
        expect(m.h1Mod).toBe(want?.h1Mod);
        expect(m.zipDigest).toMatch(/^sha256:/);
        expect(store.content.hasBlob(m.infoDigest)).toBe(true);
      }
    } finally {
      store.close();
    }
  });

  it('a range follows every selected version through its own requirements', async () => {
    const cfg = config(`    - path: example.com/Root\n      versions: ">=1.0.0 <2"\n`, 'store-range');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures).toEqual([]);
      const got = store.modules.list().map((m) => `${m.module}@${m.version}`).sort();
      expect(got).toEqual(
        [
          'example.com/Root@v1.1.0',
          'example.com/Root@v1.2.0',
          'example.com/shared@v1.0.0',
          'example.com/shared@v1.1.0',
          'example.com/leaf@v0.2.0',
          'example.com/leaf@v0.3.0',
        ].sort(),
      );
      // A second sync with nothing new upstream asks only for the list.
      const before = server.requests.length;
      const again = await runSync({ config: cfg, store, logger });
      expect(again.ok).toBe(true);
      expect(again.modules.versionsNew).toBe(0);
      const asked = server.requests.slice(before).map((r) => r.path);
      expect(asked).toEqual(['/example.com/!root/@v/list']);
    } finally {
      store.close();
    }
  });

  it('refuses bad upstream content, naming module@version and the rule, and stores nothing of it', async () => {
    const cfg = config(
      ['evil', 'cased', 'huge', 'liar'].map((m) => `    - path: example.com/${m}\n      versions: [v1.0.0]\n`).join(''),
      'store-bad',
    );
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.ok).toBe(false);
      const byModule = new Map(s.failures.map((f) => [f.module, f]));
      expect(byModule.get('example.com/evil')?.message).toMatch(/example\.com\/evil@v1\.0\.0.*\.\./);
      expect(byModule.get('example.com/evil')?.code).toBe('ZIP_INVALID');
      expect(byModule.get('example.com/cased')?.message).toMatch(/example\.com\/cased@v1\.0\.0.*case/i);
      expect(byModule.get('example.com/huge')?.message).toMatch(/example\.com\/huge@v1\.0\.0.*(large|size|limit)/i);
      expect(byModule.get('example.com/liar')?.code).toBe('GOMOD_INVALID');
      expect(byModule.get('example.com/liar')?.message).toContain('example.com/somebody-else');
      expect(store.modules.list()).toEqual([]);
      expect(store.stats().blobs).toBe(0);
    } finally {
      store.close();
    }
  });

  it('a zip too big to hold in memory streams through a temp file: stored intact, or refused with nothing left behind', async () => {
    const cfg = config(['bulky', 'bulkyevil'].map((m) => `    - path: example.com/${m}\n      versions: [v1.0.0]\n`).join(''), 'store-bulky');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures.map((f) => [f.module, f.code])).toEqual([['example.com/bulkyevil', 'ZIP_INVALID']]);
      expect(s.failures[0]?.message).toMatch(/example\.com\/bulkyevil@v1\.0\.0.*\.\./);
      const upstream = join(dir, 'upstream', ...proxyPath('example.com/bulky', 'zip', 'v1.0.0').split('/'));
      const row = store.modules.get('example.com/bulky', 'v1.0.0');
      expect(row?.zipDigest).toBe(`sha256:${createHash('sha256').update(readFileSync(upstream)).digest('hex')}`);
      expect(row?.h1Zip).toBe(await hashZip(upstream));
      expect(store.modules.get('example.com/bulkyevil', 'v1.0.0')).toBeUndefined();
      expect(readdirSync(join(cfg.store, 'tmp'))).toEqual([]);
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });
});
