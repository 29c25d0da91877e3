// The checksum-database client against a real node:http server and a file:// tree: the
// `supported` probe and its fallback to the direct URL, verified lookups, and the store's refusal
// to move a head backwards.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { parseSumdbSetting, SumdbClient, type SumdbSetting } from '../../sumdb/client.js';
import { Store } from '../../store/index.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { sumdbIntercept, TestSumdb } from '../helpers/sumdb.js';

type On = Extract<SumdbSetting, { off: false }>;

describe('SumdbClient', () => {
  let dir: string;
  let db: TestSumdb;
  let proxy: StaticServer;
  let direct: StaticServer;
  const seenProxy: string[] = [];
  const seenDirect: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sumdbc-'));
    db = TestSumdb.create('sum.corp.test');
    for (let i = 0; i < 20; i++) await db.add(`example.com/m${i}`, 'v1.0.0', `h1:zip${i}=`, `h1:mod${i}=`);
    proxy = await serveDir(join(dir, 'empty'), { intercept: sumdbIntercept(() => db, seenProxy) });
    // A server whose root is the database itself (the direct URL of `key URL`).
    direct = await serveDir(join(dir, 'empty'), {
      intercept: (req, res) => {
        req.url = `/sumdb/${db.name}${req.url ?? '/'}`;
        return sumdbIntercept(() => db, seenDirect)(req, res);
      },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await direct?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('uses the proxy when it answers supported, and verifies the record in the signed head', async () => {
    const c = new SumdbClient({ setting: parseSumdbSetting(db.verifierKey) as On, proxyUrl: proxy.url });
    const r = await c.lookup('example.com/m7', 'v1.0.0', undefined);
    expect(r).toMatchObject({ recordId: 7, h1Zip: 'h1:zip7=', h1Mod: 'h1:mod7=', advanced: true });
    expect(r.latest.n).toBe(20);
    expect(r.tiles).toEqual(['tile/8/0/000.p/20']);
    expect(seenProxy[0]).toBe('supported');
  });

  it('falls back to the direct URL when the proxy has no /sumdb/ (404)', async () => {
    const other = TestSumdb.create('sum.other.test');
    const c = new SumdbClient({ setting: parseSumdbSetting(`${other.verifierKey} ${direct.url}`) as On, proxyUrl: proxy.url });
    expect((await c.base()).viaProxy).toBe(false);
    const c2 = new SumdbClient({ setting: parseSumdbSetting(`${db.verifierKey} ${direct.url}`) as On, proxyUrl: `${proxy.url}/nothing-here` });
    const r = await c2.lookup('example.com/m3', 'v1.0.0', undefined);
    expect(r.recordId).toBe(3);
    expect(seenDirect).toContain('lookup/example.com/m3@v1.0.0');
  });

  it('reads a file:// proxy tree', async () => {
    const tree = join(dir, 'tree');
    for (const p of ['supported', 'lookup/example.com/m1@v1.0.0', 'tile/8/0/000.p/20']) {
      const file = join(tree, 'sumdb', db.name, ...p.split('/'));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, (await db.serve(p))!);
    }
    const c = new SumdbClient({ setting: parseSumdbSetting(db.verifierKey) as On, proxyUrl: pathToFileURL(tree).href });
    expect((await c.lookup('example.com/m1', 'v1.0.0', undefined)).h1Zip).toBe('h1:zip1=');
  });

  it('proves a grown head consistent, and calls a rewritten one inconsistent', async () => {
    const c = new SumdbClient({ setting: parseSumdbSetting(db.verifierKey) as On, proxyUrl: proxy.url });
    const first = await c.lookup('example.com/m2', 'v1.0.0', undefined);
    await db.add('example.com/new', 'v1.0.0', 'h1:n=', 'h1:nm=');
    const second = await c.lookup('example.com/new', 'v1.0.0', first.latest);
    expect(second.advanced).toBe(true);
    expect(second.latest.n).toBe(21);
    // An older head (the first) against the newer known one: proved, the known head is kept.
    expect((await c.mergeHeads(second.latest, first.latest)).n).toBe(21);
    const saved = db;
    try {
      db = await saved.fork(5, 'example.com/m5 v1.0.0 h1:evil=\nexample.com/m5 v1.0.0/go.mod h1:mod5=\n');
      await db.add('example.com/x', 'v1.0.0', 'h1:x=', 'h1:xm=');
      let err: unknown;
      try {
        await c.lookup('example.com/x', 'v1.0.0', second.latest);
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'SUMDB_INCONSISTENT'), String(err)).toBe(true);
    } finally {
      db = saved;
    }
  });

  it('the store keeps heads monotonic', () => {
    const store = Store.open(join(dir, 'store'));
    try {
      expect(store.sumdb.putHead('db', { size: 5, hash: 'aGFzaDU=', note: 'n5' })).toBe(true);
      expect(store.sumdb.putHead('db', { size: 5, hash: 'aGFzaDU=', note: 'n5' })).toBe(false);
      expect(store.sumdb.putHead('db', { size: 9, hash: 'aGFzaDk=', note: 'n9' })).toBe(true);
      for (const bad of [{ size: 7, hash: 'x' }, { size: 9, hash: 'other' }]) {
        let err: unknown;
        try {
          store.sumdb.putHead('db', { ...bad, note: 'n' });
        } catch (e) {
          err = e;
        }
        expect(isFerryError(err, 'SUMDB_INCONSISTENT')).toBe(true);
      }
      expect(store.sumdb.head('db')?.size).toBe(9);
      expect(store.sumdb.heads('db').map((h) => h.size)).toEqual([5, 9]);
    } finally {
      store.close();
    }
  });
});
