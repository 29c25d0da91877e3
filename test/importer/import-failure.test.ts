// What a failed import leaves behind. In a store: nothing it added (the blobs it had taken before
// a late entry turned out damaged are removed again), and what a killed run left is reported by
// fsck and removed when the bundle's import runs again and fails. In a registry: the blobs pushed
// before the failure stay, untagged, and the error message says so (a client cannot delete them
// in general; the registry's garbage collection does). Real signed bundles, a real docker-registry.
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBundle, type TrustedKey } from '../../bundle/index.js';
import { isFerryError, type FerryError } from '../../errors/index.js';
import { importBundles, StoreTarget } from '../../importer/index.js';
import type { Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { flipByteInEntry, makeFixture, makeKeys, tempDir, writeFixture, type Fixture } from '../bundle/fixtures.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });
const NAME = 'ferry-20240101-0001';
const ZIP_ENTRY = 'gomod/example.com/!hello/@v/v1.0.0.zip';

/** Blob files under a store's blobs/ directory, as digests. */
function blobFiles(storeDir: string): Digest[] {
  const root = join(storeDir, 'blobs', 'sha256');
  return readdirSync(root)
    .flatMap((shard) => readdirSync(join(root, shard)).map((hex) => `sha256:${hex}` as Digest))
    .sort();
}

describe('a failed import', () => {
  let dir: string;
  let trust: TrustedKey[];
  let fx: Fixture;
  let good: string;
  let damaged: string;
  let reg: RunningRegistry;

  beforeAll(async () => {
    dir = await tempDir('ferry-import-failure-');
    const keys = await makeKeys(dir);
    trust = keys.trust;
    fx = await makeFixture(dir);
    const out = join(dir, 'good');
    mkdirSync(out);
    await writeFixture(out, fx, keys.privateKey);
    good = join(out, `${NAME}.tar`);
    // The same bundle with one byte flipped in its zip, a late entry: every blob has been
    // taken by then. Without the signed parts list the damage shows at that entry.
    const bad = join(dir, 'bad');
    cpSync(out, bad, { recursive: true });
    rmSync(join(bad, `${NAME}.parts.json`));
    rmSync(join(bad, `${NAME}.parts.json.sig`));
    damaged = join(bad, `${NAME}.tar`);
    await flipByteInEntry(damaged, ZIP_ENTRY, 40);
    reg = await startRegistry();
  });

  afterAll(async () => {
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const plainBlobs = (): Digest[] => fx.blobs.filter((b) => b.mediaType === undefined).map((b) => b.digest);

  it('into a store: removes what it added, keeps what was there; a killed run\'s leftovers are reported, then removed', async () => {
    const storeDir = join(dir, 'store');
    const store = Store.open(storeDir);
    const ledger = Ledger.open(join(storeDir, 'ledger.db'));
    try {
      // Already in the store before any import (left by something else): not this import's to remove.
      const before = fx.blobs.find((b) => b.mediaType === undefined)!;
      await store.content.writeBlobBytes(before.digest, before.bytes);

      // A run killed after it had taken two blobs: what `take` wrote (store and ledger) stays,
      // and neither abort nor commit ever runs.
      const opened = await openBundle(damaged, { trust });
      ledger.startBundle({ id: opened.manifest.id, target: `store:${store.dir}`, sequence: 1, parent: null, chain: [], sourceStore: 'store-test', created: opened.manifest.created, manifestDigest: opened.manifestDigest, sources: null });
      const killed = new StoreTarget(store);
      await killed.begin({ manifest: opened.manifest, ledger, tmpDir: dir, reread: async () => {} });
      const taken: Digest[] = [];
      for await (const e of opened.entries()) {
        const d = `sha256:${e.sha256}` as Digest;
        if (!e.path.startsWith('blobs/') || e.mediaType !== undefined || d === before.digest) continue;
        await killed.take({ path: e.path, size: e.size, sha256: e.sha256, stream: e.stream });
        taken.push(d);
        if (taken.length === 2) break;
      }
      expect(taken).toHaveLength(2);
      const leftover = (await store.fsck()).unreferenced.map((b) => b.digest).sort();
      expect(leftover).toEqual([before.digest, ...taken].sort());
      expect((await store.fsck()).problems).toEqual([]);

      // The import runs again and fails at the damaged zip, after taking every blob.
      const err = await importBundles({ bundles: [damaged], trust, store, ledger, logger }).catch((e: unknown) => e);
      expect(isFerryError(err)).toBe(true);
      expect((err as FerryError).message).toContain(ZIP_ENTRY);
      // Everything the store takes ahead of the zip: the image blobs (manifests wait for commit)
      // and the module's .info and .mod, less the blob that was there.
      const added = fx.entries
        .filter((e) => (e.path.startsWith('blobs/') && e.mediaType === undefined) || e.path === fx.modPaths.info || e.path === fx.modPaths.mod)
        .map((e) => `sha256:${e.sha256}` as Digest)
        .filter((d) => d !== before.digest);
      expect((err as FerryError).message).toContain(`; the ${added.length} blob(s) (`);
      expect((err as FerryError).message).toContain(`it had added to store:${store.dir} were removed`);

      // The store is as the first run found it: the one blob that was there, nothing else.
      expect(store.content.hasBlob(before.digest)).toBe(true);
      for (const d of added) expect(store.content.hasBlob(d), d).toBe(false);
      expect(blobFiles(storeDir)).toEqual([before.digest]);
      const after = await store.fsck();
      expect(after.problems).toEqual([]);
      expect(after.unreferenced.map((b) => b.digest)).toEqual([before.digest]);
      expect(store.tags.list()).toEqual([]);
      expect(store.modules.list()).toEqual([]);
      expect(readdirSync(join(storeDir, 'tmp'))).toEqual([]);
      expect(ledger.bundleRecords(opened.manifest.id).map((r) => r.result)).toEqual(['failed']);

      // The intact bundle then imports, and uses everything: nothing is left unreferenced.
      const ok = await importBundles({ bundles: [good], trust, store, ledger, logger });
      expect(ok.bundles[0]?.status).toBe('imported');
      const clean = await store.fsck();
      expect(clean.problems).toEqual([]);
      expect(clean.unreferenced).toEqual([]);
    } finally {
      ledger.close();
      store.close();
    }
  });

  it('into a registry: the error says the pushed blobs stay untagged and what clears them', async () => {
    const client = new RegistryClient({ host: reg.host, tls: 'plain-http', retry: { retries: 0, baseDelayMs: 1, maxDelayMs: 1 } });
    const ledger = Ledger.open(join(dir, 'registry-ledger.db'));
    try {
      const err = await importBundles({ bundles: [damaged], trust, registry: client, ledger, logger }).catch((e: unknown) => e);
      expect(isFerryError(err)).toBe(true);
      const message = (err as FerryError).message;
      expect(message).toContain(ZIP_ENTRY);
      expect(message).toMatch(new RegExp(`\\d+ blob\\(s\\) already pushed to registry:${reg.host.replace(/\./g, '\\.')} stay there untagged`));
      expect(message).toContain("the registry's garbage collection removes them");
      // Untagged indeed: no tag anywhere, though the blobs are there.
      for (const im of fx.images) {
        const res = await fetch(`http://${reg.host}/v2/${im.target}/tags/list`);
        const body = (await res.json()) as { tags?: string[] | null };
        expect(body.tags ?? []).toEqual([]);
      }
      expect(await client.blobHead(fx.images[0]!.target, plainBlobs()[0]!)).toBeTruthy();
    } finally {
      ledger.close();
      await client.close();
    }
  });
});
