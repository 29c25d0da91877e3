// A store written by an earlier version (schema 2: before bundles recorded their sources and
// module journal entries their root) opens and migrates with its data intact.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION } from '../../store/migrations.js';
import { MediaType, sha256Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';

const d = (c: string): `sha256:${string}` => `sha256:${c.repeat(64).slice(0, 64)}`;
const AT = '2024-01-01T00:00:00.000Z';

describe('store migrations', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
  });

  it('a schema-2 store with tags, module versions, journal and bundles migrates to the current schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-migrate-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'blobs'));
    const db = new Database(join(dir, 'ferry.db'));
    for (const step of MIGRATIONS.slice(0, 2)) db.exec(step);
    db.pragma('user_version = 2');
    const ins = (sql: string, ...args: unknown[]): void => void db.prepare(sql).run(...args);
    ins(`INSERT INTO meta (key, value) VALUES ('store_id', 'old-store')`);
    for (const c of ['a', 'b', 'c', 'e']) ins('INSERT INTO blobs (digest, size, media_type, created_at) VALUES (?, 10, NULL, ?)', d(c), AT);
    ins(`INSERT INTO manifests (digest, media_type, size, platform, created_at) VALUES (?, 'application/vnd.oci.image.manifest.v1+json', 10, NULL, ?)`, d('a'), AT);
    ins(
      `INSERT INTO tags (registry, repository, tag, source, target, digest, media_type, platforms, kept_digests, checked_at, changed_at)
       VALUES ('r.example', 'lab/app', 'v1', 'app', 'mirror/app', ?, 'application/vnd.oci.image.manifest.v1+json', NULL, '[]', ?, ?)`,
      d('a'),
      AT,
      AT,
    );
    ins(
      `INSERT INTO module_versions (module, version, time, info_digest, mod_digest, zip_digest, h1_zip, h1_mod, root, retracted, updated_at)
       VALUES ('example.com/dep', 'v1.0.0', ?, ?, ?, NULL, NULL, 'h1:x', 'example.com/root', NULL, ?)`,
      AT,
      d('b'),
      d('c'),
      AT,
    );
    ins(`INSERT INTO journal (at, kind, registry, repository, tag, digest, source, target) VALUES (?, 'tag', 'r.example', 'lab/app', 'v1', ?, 'app', 'mirror/app')`, AT, d('a'));
    ins(`INSERT INTO journal (at, kind, digest, module, version) VALUES (?, 'module', ?, 'example.com/dep', 'v1.0.0')`, AT, d('c'));
    ins(`INSERT INTO bundles (id, sequence, parent_id, created_at, seq_from, seq_to, files) VALUES ('b1', 1, NULL, ?, 0, 2, '[]')`, AT);
    ins(`INSERT INTO bundle_blobs (bundle_id, digest) VALUES ('b1', ?)`, d('a'));
    db.close();

    const store = Store.open(dir);
    try {
      expect(store.id).toBe('old-store');
      expect(store.stats()).toMatchObject({ tags: 1, moduleVersions: 1, journalSeq: 2 });
      // Module entries take their version's root as their source, like tags.
      expect(store.journal.since(0).map((e) => [e.kind, e.source])).toEqual([
        ['tag', 'app'],
        ['module', 'example.com/root'],
      ]);
      expect(store.bundles.get('b1')).toMatchObject({ sequence: 1, seqTo: 2, sources: null, blobCount: 1 });
      expect(store.tags.list()).toEqual([expect.objectContaining({ source: 'app', tag: 'v1', target: 'mirror/app', digest: d('a') })]);
      // Tag rows are per source now: a second entry mirrors the same upstream tag beside the first.
      const second = { source: 'app-amd64', registry: 'r.example', repository: 'lab/app', tag: 'v1', target: 'mirror/amd64', digest: d('a'), mediaType: 'application/vnd.oci.image.manifest.v1+json', platforms: ['linux/amd64'], keptDigests: [] };
      expect(store.tags.set(second).changed).toBe(true);
      expect(store.tags.rows({ registry: 'r.example', repository: 'lab/app', tag: 'v1' }).map((t) => [t.source, t.target])).toEqual([
        ['app', 'mirror/app'],
        ['app-amd64', 'mirror/amd64'],
      ]);
      // Written from now on with their source.
      store.modules.put({ module: 'example.com/dep', version: 'v1.1.0', time: AT, infoDigest: d('b'), modDigest: d('e'), zipDigest: null, h1Zip: null, h1Mod: 'h1:y', root: 'example.com/root' });
      expect(store.journal.since(2).map((e) => e.source)).toEqual(['app-amd64', 'example.com/root']);
    } finally {
      store.close();
    }
    const check = new Database(join(dir, 'ferry.db'), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('an index recorded with only the children one entry kept (as older versions did) gets all its references', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-migrate-refs-'));
    dirs.push(dir);
    const store = Store.open(dir);
    try {
      const child = (arch: string): { mediaType: string; digest: `sha256:${string}`; size: number; platform: { os: string; architecture: string } } => ({
        mediaType: MediaType.OciManifest,
        digest: sha256Digest(arch),
        size: 100,
        platform: { os: 'linux', architecture: arch },
      });
      const children = [child('amd64'), child('arm64')];
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }));
      const digest = sha256Digest(bytes);
      await store.content.putManifest({ digest, mediaType: MediaType.OciIndex, bytes, references: children.slice(0, 1) });
      expect(store.content.getManifest(digest)?.references.map((r) => r.platform)).toEqual(['linux/amd64']);
      await store.content.putManifest({ digest, mediaType: MediaType.OciIndex, bytes, references: children });
      expect(store.content.getManifest(digest)?.references.map((r) => r.platform)).toEqual(['linux/amd64', 'linux/arm64']);
    } finally {
      store.close();
    }
  });
});
