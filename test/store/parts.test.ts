// The store's narrow parts share one connection, so a write that spans table families commits
// whole or not at all. A trigger added from a second connection makes the last statement of
// each such transaction fail, and nothing the transaction wrote before it may remain.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType, type Digest } from '../../oci/index.js';
import type { ModuleVersionInput, Store } from '../../store/index.js';
import { blob, tempStore } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function setup(): { store: Store; sql: Database.Database } {
  const t = tempStore();
  const sql = new Database(join(t.dir, 'ferry.db'));
  cleanups.push(() => {
    sql.close();
    t.cleanup();
  });
  return { store: t.store, sql };
}

/** Makes every insert into (or update of) `table` fail until the returned function drops the trigger. */
function refuse(sql: Database.Database, table: string, on: 'INSERT' | 'UPDATE' = 'INSERT'): () => void {
  sql.exec(`CREATE TRIGGER refuse_${table} BEFORE ${on} ON ${table} BEGIN SELECT RAISE(ABORT, '${table} refused by the test'); END`);
  return () => sql.exec(`DROP TRIGGER refuse_${table}`);
}

function version(info: Digest, mod: Digest, zip: Digest): ModuleVersionInput {
  return { module: 'example.com/m', version: 'v1.0.0', time: '2024-01-01T00:00:00Z', infoDigest: info, modDigest: mod, zipDigest: zip, h1Zip: 'h1:z=', h1Mod: 'h1:m=', root: 'example.com/m' };
}

describe('transactions that span parts', () => {
  it('a module version, its placed blob rows and its journal entry commit together', async () => {
    const { store, sql } = setup();
    const files = [blob('{"Version":"v1.0.0"}'), blob('module example.com/m\n'), blob('zip')];
    for (const f of files) await store.content.writeBlobBytes(f.digest, f.bytes, { index: false });
    const placed = files.map((f) => ({ digest: f.digest, size: f.bytes.length }));
    const row = version(files[0]!.digest, files[1]!.digest, files[2]!.digest);

    const allow = refuse(sql, 'journal');
    expect(() => store.modules.put(row, { blobs: placed })).toThrow(expect.objectContaining({ code: 'STORE_IO' }));
    for (const f of files) expect(store.content.hasBlob(f.digest)).toBe(false);
    expect(store.modules.get('example.com/m', 'v1.0.0')).toBeUndefined();
    expect(store.journal.currentSeq()).toBe(0);

    // The files are still in place and known to be: the same call succeeds once the journal takes it.
    allow();
    expect(store.modules.put(row, { blobs: placed })).toEqual({ changed: true, seq: 1 });
    for (const f of files) expect(store.content.hasBlob(f.digest)).toBe(true);
  });

  it('a tag move and its journal entry commit together', async () => {
    const { store, sql } = setup();
    const m = blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: {}, layers: [] }));
    await store.content.putManifest({ digest: m.digest, mediaType: MediaType.OciManifest, bytes: m.bytes, references: [] });
    const tag = { registry: 'r.example', repository: 'lab/app', tag: 'v1', source: 'app', target: 'mirror/app', digest: m.digest, mediaType: MediaType.OciManifest, platforms: null, keptDigests: [] };

    const allow = refuse(sql, 'journal');
    expect(() => store.tags.set(tag)).toThrow(expect.objectContaining({ code: 'STORE_IO' }));
    expect(store.tags.get(tag)).toBeUndefined();
    allow();
    expect(store.tags.set(tag)).toEqual({ changed: true, seq: 1 });
    expect(store.tags.get(tag)?.digest).toBe(m.digest);
  });

  it("a run's end, its sources' outcomes and their module lists commit together", () => {
    const { store, sql } = setup();
    const run = store.runs.start('sync');
    const list = blob('v1.0.0\n').digest;
    const end = { status: 'ok' as const, sources: [{ source: 'example.com/m', ok: true, moduleList: { module: 'example.com/m', listDigest: list } }] };

    const allow = refuse(sql, 'runs', 'UPDATE');
    expect(() => store.runs.finish(run, end)).toThrow(expect.objectContaining({ code: 'STORE_IO' }));
    expect(store.runs.sourceStates()).toEqual([]);
    expect(store.modules.getList('example.com/m')).toBeUndefined();
    expect(store.runs.last(1)[0]?.status).toBe('running');
    allow();
    store.runs.finish(run, end);
    expect(store.modules.getList('example.com/m')?.listDigest).toBe(list);
  });

  it('a bundle record and the blobs and module files it carried commit together', () => {
    const { store, sql } = setup();
    const b = { id: 'b1', sequence: 1, parentId: null, createdAt: '2025-01-01T00:00:00.000Z', seqFrom: 0, seqTo: 1, files: [], blobs: [blob('x').digest], moduleFiles: ['m/@v/v1.0.0.zip'] };

    const allow = refuse(sql, 'bundle_module_files');
    expect(() => store.bundles.add(b)).toThrow(expect.objectContaining({ code: 'STORE_IO' }));
    expect(store.bundles.list()).toEqual([]);
    expect(store.bundles.blobs('b1')).toEqual([]);
    allow();
    store.bundles.add(b);
    expect(store.bundles.get('b1')?.moduleFiles).toEqual(['m/@v/v1.0.0.zip']);
  });
});

describe('parts, not a compatibility surface', () => {
  it('Store keeps only its lifecycle (open, flush, close) and whole-store checks; the rest lives on the parts', () => {
    const { store } = setup();
    const own = Object.getOwnPropertyNames(Object.getPrototypeOf(store) as object).filter((n) => n !== 'constructor').sort();
    // flush: lifecycle too (every commit so far on disk), for the whole index, not one part.
    expect(own).toEqual(['close', 'flush', 'fsck', 'stats']);
    for (const part of ['content', 'journal', 'tags', 'modules', 'runs', 'bundles', 'sumdb'] as const) expect(store[part]).toBeDefined();
  });
});

describe('writes another part makes inside its own transaction', () => {
  it('refuse to run outside one (INTERNAL), leaving nothing behind', () => {
    const { store } = setup();
    const d = blob('x').digest;
    expect(() => store.journal.appendModule({ at: 't', digest: d, source: 'm', module: 'm', version: 'v1.0.0' })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => store.modules.writeList('m', d)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => store.content.insertRows([{ digest: d, size: 1 }], 't')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(store.journal.currentSeq()).toBe(0);
    expect(store.modules.getList('m')).toBeUndefined();
    expect(store.content.hasBlob(d)).toBe(false);
  });
});
