// The SQLite index through the Store facade: manifests, tags and the journal, Go modules,
// runs, sources, bundles, stats and migrations, against real temp directories.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType, type Descriptor, type Digest } from '../../oci/index.js';
import { SCHEMA_VERSION, Store, type SetTagInput } from '../../store/index.js';
import { blob, manualClock, tempDir } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function setup(): { store: Store; dir: string; clock: ReturnType<typeof manualClock> } {
  const t = tempDir();
  const clock = manualClock();
  const store = Store.open(t.dir, { now: clock.now });
  cleanups.push(() => {
    store.close();
    t.cleanup();
  });
  return { store, dir: t.dir, clock };
}

/** Stores an image manifest with its config and one layer; returns its digest and descriptor. */
async function storeImage(store: Store, name: string, platform?: { os: string; architecture: string }): Promise<Descriptor> {
  const config = blob(`{"config":"${name}"}`);
  const layer = blob(`layer of ${name}`);
  await store.content.writeBlobBytes(config.digest, config.bytes);
  await store.content.writeBlobBytes(layer.digest, layer.bytes);
  const refs: Descriptor[] = [
    { mediaType: MediaType.OciConfig, digest: config.digest, size: config.bytes.length },
    { mediaType: MediaType.OciLayout, digest: layer.digest, size: layer.bytes.length },
  ];
  const m = blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: refs[0], layers: [refs[1]] }));
  await store.content.putManifest({ digest: m.digest, mediaType: MediaType.OciManifest, bytes: m.bytes, references: refs });
  return { mediaType: MediaType.OciManifest, digest: m.digest, size: m.bytes.length, ...(platform ? { platform } : {}) };
}

function tagInput(digest: Digest, over: Partial<SetTagInput> = {}): SetTagInput {
  return {
    registry: 'docker.io',
    repository: 'library/golang',
    tag: '1.22',
    source: 'golang',
    target: 'mirror/library/golang',
    digest,
    mediaType: MediaType.OciManifest,
    platforms: null,
    keptDigests: [],
    ...over,
  };
}

describe('manifests', () => {
  it('records a manifest blob and its references in order, with child platforms', async () => {
    const { store } = setup();
    const amd = await storeImage(store, 'amd64', { os: 'linux', architecture: 'amd64' });
    const arm = await storeImage(store, 'arm64', { os: 'linux', architecture: 'arm64' });
    const idx = blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [amd, arm] }));
    await store.content.putManifest({ digest: idx.digest, mediaType: MediaType.OciIndex, bytes: idx.bytes, references: [amd, arm] });

    expect(store.content.hasManifest(idx.digest)).toBe(true);
    expect(store.content.hasBlob(idx.digest)).toBe(true);
    expect(store.content.getBlob(idx.digest)?.mediaType).toBe(MediaType.OciIndex);
    expect(store.content.getManifest(idx.digest)).toEqual({
      digest: idx.digest,
      mediaType: MediaType.OciIndex,
      size: idx.bytes.length,
      references: [
        { digest: amd.digest, mediaType: MediaType.OciManifest, size: amd.size, platform: 'linux/amd64' },
        { digest: arm.digest, mediaType: MediaType.OciManifest, size: arm.size, platform: 'linux/arm64' },
      ],
    });
    const img = store.content.getManifest(amd.digest);
    expect(img?.references.map((r) => r.mediaType)).toEqual([MediaType.OciConfig, MediaType.OciLayout]);
    expect(img?.references[0]).not.toHaveProperty('platform');
    // Putting the same manifest again changes nothing.
    await store.content.putManifest({ digest: idx.digest, mediaType: MediaType.OciIndex, bytes: idx.bytes, references: [amd, arm] });
    expect(store.content.getManifest(idx.digest)?.references).toHaveLength(2);
    expect(store.stats().manifests).toBe(3);
  });

  it('refuses manifest bytes that do not match the digest', async () => {
    const { store } = setup();
    const d = blob('a').digest;
    await expect(store.content.putManifest({ digest: d, mediaType: MediaType.OciManifest, bytes: Buffer.from('b'), references: [] })).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
    });
    expect(store.content.hasManifest(d)).toBe(false);
  });
});

describe('tags and the journal', () => {
  it('journals new and changed tags only, with previousDigest and increasing seq', async () => {
    const { store, clock } = setup();
    const a = await storeImage(store, 'a');
    const b = await storeImage(store, 'b');
    expect(store.journal.currentSeq()).toBe(0);

    const first = store.tags.set(tagInput(a.digest));
    expect(first).toEqual({ changed: true, seq: 1 });
    const t0 = store.tags.get(tagInput(a.digest));
    expect(t0).toMatchObject({ digest: a.digest, checkedAt: '2025-01-01T00:00:00.000Z', changedAt: '2025-01-01T00:00:00.000Z', platforms: null, keptDigests: [] });

    clock.tick();
    expect(store.tags.set(tagInput(a.digest))).toEqual({ changed: false });
    expect(store.journal.currentSeq()).toBe(1);
    expect(store.tags.get(tagInput(a.digest))).toMatchObject({ checkedAt: '2025-01-01T00:00:01.000Z', changedAt: '2025-01-01T00:00:00.000Z' });

    clock.tick();
    store.tags.touch(tagInput(a.digest));
    expect(store.tags.get(tagInput(a.digest))).toMatchObject({ checkedAt: '2025-01-01T00:00:02.000Z', changedAt: '2025-01-01T00:00:00.000Z' });
    store.tags.touch(tagInput(a.digest), '2025-02-01T00:00:00.000Z');
    expect(store.tags.get(tagInput(a.digest))?.checkedAt).toBe('2025-02-01T00:00:00.000Z');
    expect(store.tags.touch({ source: 'golang', registry: 'x', repository: 'y', tag: 'z' })).toBe(false);

    clock.tick();
    const moved = store.tags.set(tagInput(b.digest));
    expect(moved).toEqual({ changed: true, seq: 2 });
    expect(store.tags.get(tagInput(b.digest))).toMatchObject({ digest: b.digest, changedAt: '2025-01-01T00:00:03.000Z' });

    // Target and kept-set changes are journaled too.
    expect(store.tags.set(tagInput(b.digest, { target: 'other/golang' }))).toEqual({ changed: true, seq: 3 });
    // Another source (image entry) mirroring the same tag owns a row of its own.
    expect(store.tags.set(tagInput(b.digest, { target: 'mirror/amd64', source: 'golang-amd64', platforms: ['linux/amd64'] }))).toEqual({ changed: true, seq: 4 });
    expect(store.tags.rows(tagInput(b.digest)).map((t) => [t.source, t.target, t.platforms])).toEqual([
      ['golang', 'other/golang', null],
      ['golang-amd64', 'mirror/amd64', ['linux/amd64']],
    ]);
    expect(store.tags.get({ ...tagInput(b.digest), source: 'golang-amd64' })?.target).toBe('mirror/amd64');
    expect(() => store.tags.get({ registry: 'docker.io', repository: 'library/golang', tag: '1.22' })).toThrow(expect.objectContaining({ code: 'USAGE' }));

    const entries = store.journal.since(0);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(entries[0]).toEqual({
      seq: 1,
      at: '2025-01-01T00:00:00.000Z',
      kind: 'tag',
      registry: 'docker.io',
      repository: 'library/golang',
      tag: '1.22',
      digest: a.digest,
      source: 'golang',
      target: 'mirror/library/golang',
    });
    expect(entries[1]).toMatchObject({ digest: b.digest, previousDigest: a.digest });
    expect(entries[2]).toMatchObject({ digest: b.digest, previousDigest: b.digest, target: 'other/golang' });
    expect(entries[3]).toMatchObject({ digest: b.digest, source: 'golang-amd64', target: 'mirror/amd64' });
    expect(store.journal.since(1).map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(store.journal.since(1, { until: 2 }).map((e) => e.seq)).toEqual([2]);
    expect(store.journal.since(4)).toEqual([]);
  });

  it('journals a change of the kept children of an index and stores them sorted', async () => {
    const { store } = setup();
    const amd = await storeImage(store, 'amd', { os: 'linux', architecture: 'amd64' });
    const arm = await storeImage(store, 'arm', { os: 'linux', architecture: 'arm64' });
    const idx = blob(JSON.stringify({ schemaVersion: 2, manifests: [amd, arm] }));
    await store.content.putManifest({ digest: idx.digest, mediaType: MediaType.OciIndex, bytes: idx.bytes, references: [amd, arm] });
    const base = { mediaType: MediaType.OciIndex, platforms: ['linux/amd64'] };
    expect(store.tags.set(tagInput(idx.digest, { ...base, keptDigests: [amd.digest] })).changed).toBe(true);
    expect(store.tags.set(tagInput(idx.digest, { ...base, keptDigests: [amd.digest, amd.digest] })).changed).toBe(false);
    const both = [arm.digest, amd.digest];
    expect(store.tags.set(tagInput(idx.digest, { mediaType: MediaType.OciIndex, platforms: null, keptDigests: both })).changed).toBe(true);
    expect(store.tags.get(tagInput(idx.digest))?.keptDigests).toEqual([...both].sort());
    expect(store.tags.set(tagInput(idx.digest, { mediaType: MediaType.OciIndex, platforms: null, keptDigests: [...both].reverse() })).changed).toBe(false);
    expect(store.journal.currentSeq()).toBe(2);
  });

  it('refuses to move a tag to a manifest that is not stored', async () => {
    const { store } = setup();
    const a = await storeImage(store, 'a');
    const ghost = blob('ghost').digest;
    expect(() => store.tags.set(tagInput(ghost))).toThrow(expect.objectContaining({ code: 'MANIFEST_UNKNOWN', details: expect.objectContaining({ digest: ghost }) }));
    expect(() => store.tags.set(tagInput(a.digest, { keptDigests: [ghost] }))).toThrow(expect.objectContaining({ code: 'MANIFEST_UNKNOWN' }));
    expect(store.journal.currentSeq()).toBe(0);
    expect(store.tags.list()).toEqual([]);
  });

  it('lists tags by source, registry and repository', async () => {
    const { store } = setup();
    const a = await storeImage(store, 'a');
    store.tags.set(tagInput(a.digest, { tag: '1' }));
    store.tags.set(tagInput(a.digest, { tag: '2' }));
    store.tags.set(tagInput(a.digest, { registry: 'ghcr.io', repository: 'org/app', tag: 'v1', source: 'app' }));
    expect(store.tags.list().map((t) => t.tag)).toEqual(['1', '2', 'v1']);
    expect(store.tags.list({ source: 'app' }).map((t) => t.tag)).toEqual(['v1']);
    expect(store.tags.list({ registry: 'docker.io', repository: 'library/golang' }).map((t) => t.tag)).toEqual(['1', '2']);
    expect(store.tags.list({ repository: 'none' })).toEqual([]);
  });
});

describe('Go module versions', () => {
  async function files(store: Store, v: string): Promise<{ info: Digest; mod: Digest; zip: Digest }> {
    const info = blob(`{"Version":"${v}","Time":"2024-01-01T00:00:00Z"}`);
    const mod = blob('module example.com/m\n');
    const zip = blob(`zip ${v}`);
    for (const f of [info, mod, zip]) await store.content.writeBlobBytes(f.digest, f.bytes);
    return { info: info.digest, mod: mod.digest, zip: zip.digest };
  }

  it('records versions, journals new and changed ones, lists with filters', async () => {
    const { store, clock } = setup();
    const f1 = await files(store, 'v1.0.0');
    const f2 = await files(store, 'v1.1.0');
    const row = {
      module: 'example.com/m',
      version: 'v1.0.0',
      time: '2024-01-01T00:00:00Z',
      infoDigest: f1.info,
      modDigest: f1.mod,
      zipDigest: f1.zip,
      h1Zip: 'h1:zip=',
      h1Mod: 'h1:mod=',
      root: 'example.com/m',
    };
    expect(store.modules.put(row)).toEqual({ changed: true, seq: 1 });
    clock.tick();
    expect(store.modules.put(row)).toEqual({ changed: false });
    expect(store.modules.get('example.com/m', 'v1.0.0')).toEqual({ ...row, retracted: null, updatedAt: '2025-01-01T00:00:00.000Z' });
    expect(store.modules.put({ ...row, retracted: 'broken build' })).toEqual({ changed: true, seq: 2 });
    expect(store.modules.get('example.com/m', 'v1.0.0')?.updatedAt).toBe('2025-01-01T00:00:01.000Z');
    store.modules.put({ ...row, version: 'v1.1.0', infoDigest: f2.info, modDigest: f2.mod, zipDigest: null, h1Zip: null });
    expect(store.journal.since(0)).toEqual([
      { seq: 1, at: '2025-01-01T00:00:00.000Z', kind: 'module', source: 'example.com/m', module: 'example.com/m', version: 'v1.0.0', digest: f1.zip },
      { seq: 2, at: '2025-01-01T00:00:01.000Z', kind: 'module', source: 'example.com/m', module: 'example.com/m', version: 'v1.0.0', digest: f1.zip },
      { seq: 3, at: '2025-01-01T00:00:01.000Z', kind: 'module', source: 'example.com/m', module: 'example.com/m', version: 'v1.1.0', digest: f2.mod },
    ]);
    expect(store.modules.list().map((r) => r.version)).toEqual(['v1.0.0', 'v1.1.0']);
    expect(store.modules.list({ withZip: true }).map((r) => r.version)).toEqual(['v1.0.0']);
    expect(store.modules.list({ withZip: false }).map((r) => r.version)).toEqual(['v1.1.0']);
    expect(store.modules.list({ module: 'other' })).toEqual([]);
    expect(store.stats().moduleVersions).toBe(2);
  });

  it('refuses a version whose files are not stored', () => {
    const { store } = setup();
    const d = blob('missing').digest;
    expect(() =>
      store.modules.put({ module: 'm', version: 'v1.0.0', time: 't', infoDigest: d, modDigest: d, zipDigest: null, h1Zip: null, h1Mod: 'h1:x', root: 'm' }),
    ).toThrow(expect.objectContaining({ code: 'BLOB_UNKNOWN', details: expect.objectContaining({ module: 'm', version: 'v1.0.0' }) }));
    expect(store.journal.currentSeq()).toBe(0);
  });

  it('remembers the last list digest of a module', () => {
    const { store, clock } = setup();
    expect(store.modules.getList('example.com/m')).toBeUndefined();
    store.modules.setList('example.com/m', blob('v1.0.0\n').digest);
    clock.tick();
    store.modules.setList('example.com/m', blob('v1.0.0\nv1.1.0\n').digest);
    expect(store.modules.getList('example.com/m')).toEqual({ listDigest: blob('v1.0.0\nv1.1.0\n').digest, checkedAt: '2025-01-01T00:00:01.000Z' });
  });
});

describe('runs and sources', () => {
  it('starts, finishes and lists runs newest first', () => {
    const { store, clock } = setup();
    const r1 = store.runs.start('sync', { trigger: 'schedule' });
    clock.tick();
    store.runs.finish(r1, { status: 'partial', summary: { tags: 3 }, error: 'one source failed' });
    const r2 = store.runs.start('export');
    expect(store.runs.last()).toEqual([
      { id: r2, kind: 'export', status: 'running', startedAt: '2025-01-01T00:00:01.000Z', finishedAt: null, meta: undefined, summary: undefined, error: null },
      {
        id: r1,
        kind: 'sync',
        status: 'partial',
        startedAt: '2025-01-01T00:00:00.000Z',
        finishedAt: '2025-01-01T00:00:01.000Z',
        meta: { trigger: 'schedule' },
        summary: { tags: 3 },
        error: 'one source failed',
      },
    ]);
    expect(store.runs.last(1)).toHaveLength(1);
    expect(() => store.runs.finish(r1, { status: 'ok' })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('marks runs of ended processes aborted at open', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const s = Store.open(t.dir);
    const orphan = s.runs.start('sync');
    const mine = s.runs.start('sync');
    s.close();
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const db = new Database(join(t.dir, 'ferry.db'));
    db.prepare('UPDATE runs SET pid = ? WHERE id = ?').run(dead, orphan);
    db.close();
    const s2 = Store.open(t.dir);
    const runs = s2.runs.last();
    expect(runs.find((r) => r.id === orphan)).toMatchObject({ status: 'aborted', error: expect.stringContaining(String(dead)) });
    expect(runs.find((r) => r.id === mine)?.status).toBe('running');
    s2.close();
  });

  it('records source results', () => {
    const { store } = setup();
    store.runs.recordSourceResult('golang', { ok: true, at: '2025-01-01T01:00:00.000Z' });
    store.runs.recordSourceResult('golang', { ok: false, error: 'HTTP 503', at: '2025-01-01T02:00:00.000Z' });
    store.runs.recordSourceResult('alpine', { ok: false, error: 'denied' });
    expect(store.runs.sourceStates()).toEqual([
      { source: 'alpine', ok: false, lastRun: '2025-01-01T00:00:00.000Z', lastError: 'denied', lastErrorAt: '2025-01-01T00:00:00.000Z' },
      {
        source: 'golang',
        ok: false,
        lastRun: '2025-01-01T02:00:00.000Z',
        lastOk: '2025-01-01T01:00:00.000Z',
        lastError: 'HTTP 503',
        lastErrorAt: '2025-01-01T02:00:00.000Z',
      },
    ]);
    store.runs.recordSourceResult('golang', { ok: true, at: '2025-01-01T03:00:00.000Z' });
    expect(store.runs.sourceStates()[1]).toMatchObject({ ok: true, lastOk: '2025-01-01T03:00:00.000Z', lastError: 'HTTP 503' });
    expect(store.stats().sources).toBe(2);
  });

  it("records sources' outcomes and module list digests with the end of a run", () => {
    const { store } = setup();
    const list = blob('v1.0.0\n').digest;
    const run = store.runs.start('sync');
    store.runs.finish(run, {
      status: 'partial',
      sources: [
        { source: 'example.com/a', ok: true, moduleList: { module: 'example.com/a', listDigest: list } },
        { source: 'example.com/b', ok: false, error: 'HTTP 503' },
      ],
    });
    expect(store.runs.last(1)[0]).toMatchObject({ id: run, status: 'partial' });
    expect(store.runs.sourceStates()).toEqual([
      { source: 'example.com/a', ok: true, lastRun: '2025-01-01T00:00:00.000Z', lastOk: '2025-01-01T00:00:00.000Z' },
      { source: 'example.com/b', ok: false, lastRun: '2025-01-01T00:00:00.000Z', lastError: 'HTTP 503', lastErrorAt: '2025-01-01T00:00:00.000Z' },
    ]);
    expect(store.modules.getList('example.com/a')).toEqual({ listDigest: list, checkedAt: '2025-01-01T00:00:00.000Z' });
    expect(store.modules.getList('example.com/b')).toBeUndefined();
  });
});

describe('bundles', () => {
  it('records a 3-bundle chain and unions the blobs carried along it', () => {
    const { store } = setup();
    const d = (s: string): Digest => blob(s).digest;
    expect(store.bundles.nextSequence()).toBe(1);
    expect(store.bundles.last()).toBeUndefined();
    const common = { createdAt: '2025-01-01T00:00:00.000Z', files: [{ name: 'images.tar' }] };
    store.bundles.add({ ...common, id: 'b1', sequence: 1, parentId: null, seqFrom: 0, seqTo: 5, blobs: [d('x'), d('y')], moduleFiles: ['m/@v/v1.0.0.zip'] });
    expect(store.bundles.nextSequence()).toBe(2);
    store.bundles.add({ ...common, id: 'b2', sequence: 2, parentId: 'b1', seqFrom: 5, seqTo: 9, blobs: [d('z')] });
    store.bundles.add({ ...common, id: 'b3', sequence: 3, parentId: 'b2', seqFrom: 9, seqTo: 12, blobs: [d('w'), d('x')], moduleFiles: ['m/@v/v1.1.0.zip'] });

    expect(store.bundles.blobsCarriedByChain('b3')).toEqual(new Set([d('x'), d('y'), d('z'), d('w')]));
    expect(store.bundles.blobsCarriedByChain('b2')).toEqual(new Set([d('x'), d('y'), d('z')]));
    expect(store.bundles.blobsCarriedByChain('b1')).toEqual(new Set([d('x'), d('y')]));
    expect(store.bundles.moduleFilesCarriedByChain('b3')).toEqual(new Set(['m/@v/v1.0.0.zip', 'm/@v/v1.1.0.zip']));
    expect(() => store.bundles.blobsCarriedByChain('nope')).toThrow(expect.objectContaining({ code: 'CHAIN_BROKEN' }));

    expect(store.bundles.nextSequence()).toBe(4);
    expect(store.bundles.last()?.id).toBe('b3');
    expect(store.bundles.get(2)).toEqual({ ...common, id: 'b2', sequence: 2, parentId: 'b1', seqFrom: 5, seqTo: 9, sources: null, moduleFiles: [], blobCount: 1 });
    expect(store.bundles.get('b3')?.blobCount).toBe(2);
    expect(store.bundles.get('zz')).toBeUndefined();
    expect(store.bundles.list().map((b) => b.id)).toEqual(['b1', 'b2', 'b3']);
    expect(store.bundles.blobs('b3')).toEqual([d('w'), d('x')].sort());

    expect(() => store.bundles.add({ ...common, id: 'b4', sequence: 4, parentId: 'missing', seqFrom: 12, seqTo: 13, blobs: [] })).toThrow(
      expect.objectContaining({ code: 'CHAIN_BROKEN' }),
    );
    expect(() => store.bundles.add({ ...common, id: 'b4', sequence: 3, parentId: 'b3', seqFrom: 12, seqTo: 13, blobs: [] })).toThrow(
      expect.objectContaining({ code: 'BUNDLE_INVALID' }),
    );
    expect(store.bundles.list()).toHaveLength(3);
  });
});

describe('stats', () => {
  it('counts blobs, bytes, manifests, tags, sources, module versions and the journal', async () => {
    const { store } = setup();
    const a = await storeImage(store, 'a');
    store.tags.set(tagInput(a.digest));
    const s = store.stats();
    expect(s).toMatchObject({ blobs: 3, manifests: 1, tags: 1, sources: 1, moduleVersions: 0, journalSeq: 1 });
    expect(s.bytes).toBeGreaterThan(a.size);
  });
});

describe('migrations and format', () => {
  it('reopening keeps data and the store id', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const s1 = Store.open(t.dir);
    const a = await storeImage(s1, 'a');
    s1.tags.set(tagInput(a.digest));
    const id = s1.id;
    s1.close();
    const s2 = Store.open(t.dir);
    expect(s2.id).toBe(id);
    expect(s2.tags.get(tagInput(a.digest))?.digest).toBe(a.digest);
    expect(s2.journal.currentSeq()).toBe(1);
    s2.close();
    const db = new Database(join(t.dir, 'ferry.db'), { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('refuses a database newer than the code with a clear error', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    Store.open(t.dir).close();
    const db = new Database(join(t.dir, 'ferry.db'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => Store.open(t.dir)).toThrow(
      expect.objectContaining({ code: 'STORE_CORRUPT', message: expect.stringMatching(new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this Ferry understands \\(${SCHEMA_VERSION}\\); upgrade Ferry`)) }),
    );
    expect(() => Store.open(t.dir, { readonly: true })).toThrow(expect.objectContaining({ code: 'STORE_CORRUPT' }));
  });

  it('refuses a newer store format and a marker that names another store', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    Store.open(t.dir).close();
    const markerFile = join(t.dir, 'ferry-store.json');
    const marker = JSON.parse(readFileSync(markerFile, 'utf8')) as { id: string };
    writeFileSync(markerFile, JSON.stringify({ storeFormat: 2, id: marker.id }));
    expect(() => Store.open(t.dir)).toThrow(expect.objectContaining({ code: 'STORE_CORRUPT', message: expect.stringContaining('upgrade Ferry') }));
    writeFileSync(markerFile, JSON.stringify({ storeFormat: 1, id: 'someone-else' }));
    expect(() => Store.open(t.dir)).toThrow(expect.objectContaining({ code: 'STORE_CORRUPT', message: expect.stringContaining('someone-else') }));
    // A lost marker is restored from the index with the same id.
    rmSync(markerFile);
    const s = Store.open(t.dir);
    expect(s.id).toBe(marker.id);
    s.close();
    expect(JSON.parse(readFileSync(markerFile, 'utf8'))).toEqual({ storeFormat: 1, id: marker.id });
  });

  it('a read-only open does not migrate a fresh database', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    new Database(join(t.dir, 'ferry.db')).close();
    expect(() => Store.open(t.dir, { readonly: true })).toThrow(expect.objectContaining({ code: 'STORE_CORRUPT', message: expect.stringContaining('open it once read-write') }));
  });
});
