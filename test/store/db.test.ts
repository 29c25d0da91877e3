// The index connection decides durability in one place: ordinary commits follow
// INDEX_SYNCHRONOUS, and durable() writes reach the disk before they return whatever it says.
import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BlobFiles } from '../../store/blobs.js';
import { StoreBundles } from '../../store/bundles.js';
import { StoreContent } from '../../store/content.js';
import { INDEX_SYNCHRONOUS, IndexDb, type Synchronous } from '../../store/db.js';
import { StoreSumdb } from '../../store/sumdb.js';
import { tempDir } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** `PRAGMA synchronous` as SQLite numbers it: 1 NORMAL, 2 FULL. */
const level = (db: IndexDb): number => db.sql.pragma('synchronous', { simple: true }) as number;

function open(synchronous?: Synchronous): IndexDb {
  const t = tempDir();
  const db = new IndexDb(join(t.dir, 'ferry.db'), { readonly: false, now: () => new Date(0), busyTimeoutMs: 1000, dir: t.dir, ...(synchronous ? { synchronous } : {}) });
  cleanups.push(() => {
    db.close();
    t.cleanup();
  });
  return db;
}

describe('index durability', () => {
  it('runs in WAL mode with synchronous = NORMAL unless told otherwise', () => {
    expect(INDEX_SYNCHRONOUS).toBe('NORMAL');
    const db = open();
    expect(db.sql.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(level(db)).toBe(1);
    expect(level(open('FULL'))).toBe(2);
  });

  it('flush fsyncs the WAL that holds the commits so far, and refuses to run inside a transaction', () => {
    const db = open('NORMAL');
    db.flush('test');
    db.write('test', () => db.setMeta('k', 'v'));
    const fsyncs = vi.spyOn(fs, 'fsyncSync');
    db.flush('test');
    expect(fsyncs).toHaveBeenCalledTimes(1);
    fsyncs.mockRestore();
    expect(() => db.write('outer', () => db.flush('inner'))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(db.getMeta('k')).toBe('v');
  });

  it('with NORMAL, a durable write commits with FULL and the connection returns to NORMAL', () => {
    const db = open('NORMAL');
    expect(level(db)).toBe(1);
    const during = db.durable('test', () => {
      db.setMeta('k', 'v');
      return level(db);
    });
    expect(during).toBe(2);
    expect(level(db)).toBe(1);
    expect(db.getMeta('k')).toBe('v');
  });

  it('bundle records, checksum-database heads and the removal of unused blob rows are durable writes', async () => {
    const db = open('NORMAL');
    const files = new BlobFiles(db.dir);
    files.init();
    cleanups.unshift(() => files.close());
    const content = new StoreContent(db, files, undefined);
    const durable = vi.spyOn(db, 'durable');

    new StoreBundles(db).add({ id: 'b1', sequence: 1, parentId: null, createdAt: 't', seqFrom: 0, seqTo: 0, files: [], blobs: [] });
    expect(new StoreBundles(db).get('b1')?.sequence).toBe(1);
    new StoreSumdb(db, content).putHead('sum.golang.org', { size: 1, hash: 'aGFzaA==', note: 'note' });
    const unused = await content.writeBlobBytes(undefined, Buffer.from('unused'));
    expect((await content.removeUnreferencedBlobs([unused.digest])).removed).toEqual([{ digest: unused.digest, size: 6 }]);

    expect(durable.mock.calls.map((c) => c[0])).toEqual(['addBundle', 'sumdbPutHead', 'deleteUnreferencedBlobs']);
    expect(level(db)).toBe(1);
  });

  it('refuses a durable write inside another transaction, which then commits nothing of it', () => {
    const db = open('NORMAL');
    expect(() => db.write('outer', () => db.durable('inner', () => db.setMeta('k', 'v')))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(db.getMeta('k')).toBeUndefined();
    expect(level(db)).toBe(1);
  });
});

describe('index page cache', () => {
  it('limitCache holds both schemas to the limit and the returned function restores what they were', () => {
    const db = open();
    const cache = (schema: string): number => db.sql.pragma(`${schema}.cache_size`, { simple: true }) as number;
    const before = [cache('main'), cache('temp')];
    const restore = db.limitCache(2048);
    expect([cache('main'), cache('temp')]).toEqual([-2048, -2048]);
    restore();
    expect([cache('main'), cache('temp')]).toEqual(before);
  });
});
