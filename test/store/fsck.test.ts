// fsck against a real store damaged on disk (and, for index-only faults, through SQL).
import { mkdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType, type Descriptor, type Digest } from '../../oci/index.js';
import type { FsckProgress, Store } from '../../store/index.js';
import { blob, tempStore } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Fixture {
  store: Store;
  dir: string;
  config: Digest;
  layer: Digest;
  manifest: Digest;
  index: Digest;
  modZip: Digest;
}

/** A store with an index → image manifest → config + layer, a tag on the index, and a module version. */
async function fixture(): Promise<Fixture> {
  const t = tempStore();
  cleanups.push(t.cleanup);
  const { store } = t;
  const config = blob('{"architecture":"amd64"}');
  const layer = blob('layer bytes '.repeat(100));
  await store.content.writeBlobBytes(config.digest, config.bytes);
  await store.content.writeBlobBytes(layer.digest, layer.bytes);
  const refs: Descriptor[] = [
    { mediaType: MediaType.OciConfig, digest: config.digest, size: config.bytes.length },
    { mediaType: MediaType.OciLayout, digest: layer.digest, size: layer.bytes.length },
  ];
  const m = blob(JSON.stringify({ schemaVersion: 2, config: refs[0], layers: [refs[1]] }));
  await store.content.putManifest({ digest: m.digest, mediaType: MediaType.OciManifest, bytes: m.bytes, references: refs });
  const child: Descriptor = { mediaType: MediaType.OciManifest, digest: m.digest, size: m.bytes.length, platform: { os: 'linux', architecture: 'amd64' } };
  // The arm64 child is filtered out by platform: absent on purpose, not a problem.
  const skipped: Descriptor = { mediaType: MediaType.OciManifest, digest: blob('arm64 manifest').digest, size: 14, platform: { os: 'linux', architecture: 'arm64' } };
  const idx = blob(JSON.stringify({ schemaVersion: 2, manifests: [child, skipped] }));
  await store.content.putManifest({ digest: idx.digest, mediaType: MediaType.OciIndex, bytes: idx.bytes, references: [child, skipped] });
  store.tags.set({
    registry: 'docker.io',
    repository: 'library/alpine',
    tag: '3',
    source: 'alpine',
    target: 'mirror/alpine',
    digest: idx.digest,
    mediaType: MediaType.OciIndex,
    platforms: ['linux/amd64'],
    keptDigests: [m.digest],
  });
  const info = blob('{"Version":"v1.0.0"}');
  const mod = blob('module example.com/m\n');
  const zip = blob('zip bytes');
  for (const f of [info, mod, zip]) await store.content.writeBlobBytes(f.digest, f.bytes);
  store.modules.put({
    module: 'example.com/m',
    version: 'v1.0.0',
    time: '2024-01-01T00:00:00Z',
    infoDigest: info.digest,
    modDigest: mod.digest,
    zipDigest: zip.digest,
    h1Zip: 'h1:z',
    h1Mod: 'h1:m',
    root: 'example.com/m',
  });
  return { store, dir: t.dir, config: config.digest, layer: layer.digest, manifest: m.digest, index: idx.digest, modZip: zip.digest };
}

describe('fsck', () => {
  it('finds nothing wrong in a healthy store and reports progress', async () => {
    const { store } = await fixture();
    const progress: FsckProgress[] = [];
    const r = await store.fsck({ onProgress: (p) => progress.push(p) });
    expect(r).toEqual({ checked: 7, problems: [], foreignLayers: [], unreferenced: [] });
    expect(progress).toHaveLength(7);
    expect(progress.at(-1)).toMatchObject({ checked: 7, total: 7 });
  });

  it('detects a flipped byte', async () => {
    const { store, layer } = await fixture();
    const file = store.content.blobPath(layer);
    const b = readFileSync(file);
    b[10] = (b[10] ?? 0) ^ 0x01;
    writeFileSync(file, b);
    const r = await store.fsck();
    expect(r.problems).toEqual([{ kind: 'corrupt', digest: layer, detail: expect.stringContaining('hashes to sha256:') }]);
  });

  it('detects a truncated file as a size problem', async () => {
    const { store, config } = await fixture();
    truncateSync(store.content.blobPath(config), 3);
    expect((await store.fsck()).problems).toEqual([{ kind: 'size', digest: config, detail: expect.stringContaining('3 bytes') }]);
  });

  it('detects a missing file, and a tag whose manifest file is gone', async () => {
    const { store, layer, manifest } = await fixture();
    unlinkSync(store.content.blobPath(layer));
    unlinkSync(store.content.blobPath(manifest));
    const kinds = (await store.fsck()).problems.map((p) => [p.kind, p.digest]);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['missing', layer],
        ['missing', manifest],
        ['tag-missing-manifest', manifest],
      ]),
    );
    expect(kinds).toHaveLength(3);
  });

  it('detects a dangling reference of an image manifest', async () => {
    const { store } = await fixture();
    const ghost = blob('never stored layer').digest;
    const refs: Descriptor[] = [{ mediaType: MediaType.OciLayout, digest: ghost, size: 18 }];
    const m = blob(JSON.stringify({ schemaVersion: 2, layers: refs }));
    await store.content.putManifest({ digest: m.digest, mediaType: MediaType.OciManifest, bytes: m.bytes, references: refs });
    expect((await store.fsck()).problems).toEqual([{ kind: 'dangling-ref', digest: ghost, detail: expect.stringContaining(m.digest) }]);
  });

  it('detects orphan files, well-formed or not', async () => {
    const { store, dir } = await fixture();
    const stray = blob('dropped here by hand');
    const file = store.content.blobPath(stray.digest);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, stray.bytes);
    writeFileSync(join(dir, 'blobs', 'sha256', 'README'), 'not a blob');
    const problems = (await store.fsck()).problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        { kind: 'orphan-file', digest: stray.digest, detail: expect.stringContaining(file) },
        { kind: 'orphan-file', detail: expect.stringContaining('README') },
      ]),
    );
    expect(problems).toHaveLength(2);
  });

  it('detects a module version whose blob is not recorded', async () => {
    const { store, dir, modZip } = await fixture();
    const db = new Database(join(dir, 'ferry.db'));
    db.prepare('DELETE FROM blobs WHERE digest = ?').run(modZip);
    db.close();
    const problems = (await store.fsck()).problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        { kind: 'module-missing-blob', digest: modZip, detail: expect.stringContaining('example.com/m@v1.0.0: .zip') },
        { kind: 'orphan-file', digest: modZip, detail: expect.any(String) },
      ]),
    );
    expect(problems).toHaveLength(2);
  });

  it('lists blobs nothing uses apart from problems; removeUnreferencedBlobs removes only those, row and file', async () => {
    const f = await fixture();
    const { store } = f;
    const stray = blob('left by an interrupted import');
    await store.content.writeBlobBytes(stray.digest, stray.bytes);
    const tile = await store.sumdb.putFile('sum.example.com', 'tile/8/0/000', Buffer.from('tile bytes'));
    const r = await store.fsck();
    expect(r.problems).toEqual([]);
    expect(r.unreferenced).toEqual([{ digest: stray.digest, size: stray.bytes.length }]);
    // Every other blob is used: by a manifest row, a reference, a kept child, a module version, a database file.
    const all = [f.config, f.layer, f.manifest, f.index, f.modZip, tile.digest, stray.digest];
    const gone = await store.content.removeUnreferencedBlobs(all);
    expect(gone).toEqual({ removed: [{ digest: stray.digest, size: stray.bytes.length }], bytes: stray.bytes.length });
    expect(store.content.hasBlob(stray.digest)).toBe(false);
    expect(() => readFileSync(store.content.blobPath(stray.digest))).toThrow();
    for (const d of all.slice(0, -1)) expect(store.content.hasBlob(d), d).toBe(true);
    expect(await store.fsck()).toMatchObject({ problems: [], unreferenced: [] });
  });

  it('stops on abort with ABORTED', async () => {
    const { store } = await fixture();
    const ac = new AbortController();
    ac.abort();
    await expect(store.fsck({ signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
