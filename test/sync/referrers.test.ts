// Attachments travel with their tags through sync, against a real docker-registry 2.8 (no
// referrers API: referrers are found through the fallback tag, signatures through cosign's
// digest tags): stored with their blobs, only for selected digests, under platforms, and found
// again when added upstream after the tag was mirrored.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../config/index.js';
import { fallbackTag } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Store } from '../../store/index.js';
import { runSync, type SyncSummary } from '../../sync/index.js';
import { makeCosignKey, pushCosignSignature, pushFallbackIndex, pushSbomReferrer, SPDX, type CosignKey, type PushedAttachment } from '../helpers/cosign.js';
import { OciLayoutBuilder, pushLayout, type Image, type Index } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });

describe('sync follows attachments (docker-registry 2.8: fallback tag and digest tags)', () => {
  let dir: string;
  let reg: RunningRegistry;
  let layout: OciLayoutBuilder;
  let client: RegistryClient;
  let key: CosignKey;
  let amd: Image;
  let arm: Image;
  let idx: Index;
  let other: Image;
  let indexSig: PushedAttachment;
  let armSig: PushedAttachment;
  let amdSbom: PushedAttachment;
  let otherSig: PushedAttachment;
  let sbomSig: PushedAttachment;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sync-referrers-'));
    reg = await startRegistry();
    layout = await OciLayoutBuilder.create();
    const base = await layout.addLayer({ size: 9000, seed: 'ref-base' });
    amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'ref-amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'ref-arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    other = await layout.addImage({ layers: [await layout.addLayer({ size: 2000, seed: 'ref-other' })] });
    await layout.tag('v1', idx);
    await layout.tag('v2', other);
    await pushLayout(layout.dir, 'v1', `${reg.host}/team/app:v1`);
    await pushLayout(layout.dir, 'v2', `${reg.host}/team/app:v2`);
    client = new RegistryClient({ host: reg.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    key = await makeCosignKey();
    const ref = `${reg.host}/team/app`;
    indexSig = await pushCosignSignature(client, 'team/app', idx.digest, key, ref);
    armSig = await pushCosignSignature(client, 'team/app', arm.digest, key, ref);
    otherSig = await pushCosignSignature(client, 'team/app', other.digest, key, ref);
    amdSbom = await pushSbomReferrer(client, 'team/app', amd, { spdxVersion: 'SPDX-2.3', name: 'amd' });
    await pushFallbackIndex(client, 'team/app', amd.digest, [{ ...amdSbom, artifactType: SPDX }]);
    // A signature of the SBOM: an attachment of an attachment.
    sbomSig = await pushCosignSignature(client, 'team/app', amdSbom.digest, key, ref);
  });

  afterAll(async () => {
    await client?.close();
    await key?.remove();
    await reg?.stop();
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function config(name: string, entry: string): Config {
    const file = join(dir, `${name}.yaml`);
    const text = `version: 1\nstore: ./${name}-store\nconcurrency: 4\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${reg.host}/team/app\n${entry}`;
    writeFileSync(file, text);
    return parseConfig(text, file);
  }
  const sync = (cfg: Config, store: Store): Promise<SyncSummary> => runSync({ config: cfg, store, logger, retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });

  it('stores the attachments of the kept manifests only, with their blobs, and no digest tag as a tag', async () => {
    const cfg = config('platforms', `    tags: {exclude: [v2]}\n    platforms: [linux/amd64]\n`);
    const store = Store.open(cfg.store);
    try {
      const s = await sync(cfg, store);
      expect(s.failures).toEqual([]);
      // Item 2: sha256-<v2>.sig and the fallback tag are not tags of their own.
      expect(store.tags.list().map((t) => t.tag)).toEqual(['v1']);
      expect(store.attachments.of(idx.digest).map((a) => [a.descriptor.digest, a.tag])).toEqual([[indexSig.digest, `${fallbackTag(idx.digest)}.sig`]]);
      expect(store.attachments.of(amd.digest).map((a) => [a.descriptor.digest, a.descriptor.artifactType])).toEqual([[amdSbom.digest, SPDX]]);
      expect(store.attachments.of(amdSbom.digest).map((a) => a.descriptor.digest)).toEqual([sbomSig.digest]);
      // The dropped child's signature and the unselected tag's stay out.
      expect(store.attachments.of(arm.digest)).toEqual([]);
      for (const d of [armSig.digest, otherSig.digest]) expect(store.content.hasManifest(d)).toBe(false);
      for (const d of [indexSig.digest, amdSbom.digest, sbomSig.digest]) expect(store.content.hasManifest(d)).toBe(true);
      // The blobs came along: fsck finds nothing missing.
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('follows nothing with referrers: false, and only the named artifact types with a filter', async () => {
    const off = config('off', `    tags: {include: [v1]}\n    referrers: false\n`);
    let store = Store.open(off.store);
    try {
      expect((await sync(off, store)).failures).toEqual([]);
      expect(store.attachments.of(idx.digest)).toEqual([]);
      expect(store.content.hasManifest(indexSig.digest)).toBe(false);
    } finally {
      store.close();
    }
    const sbomOnly = config('sbom-only', `    tags: {include: [v1]}\n    referrers: {artifactTypes: [${SPDX}]}\n`);
    store = Store.open(sbomOnly.store);
    try {
      expect((await sync(sbomOnly, store)).failures).toEqual([]);
      expect(store.attachments.of(idx.digest)).toEqual([]);
      expect(store.attachments.of(amd.digest).map((a) => a.descriptor.digest)).toEqual([amdSbom.digest]);
    } finally {
      store.close();
    }
  });

  it('finds an attachment added upstream after the tag was mirrored, and journals the tag again', async () => {
    const cfg = config('later', `    tags: {include: [v2]}\n`);
    const store = Store.open(cfg.store);
    try {
      expect((await sync(cfg, store)).failures).toEqual([]);
      const seq = store.journal.currentSeq();
      // Nothing new upstream: nothing journaled.
      expect((await sync(cfg, store)).tags.changed).toBe(0);
      expect(store.journal.currentSeq()).toBe(seq);
      const sbom = await pushSbomReferrer(client, 'team/app', other, { spdxVersion: 'SPDX-2.3', name: 'later' });
      await pushFallbackIndex(client, 'team/app', other.digest, [{ ...sbom, artifactType: SPDX }]);
      expect((await sync(cfg, store)).failures).toEqual([]);
      expect(store.attachments.of(other.digest).map((a) => a.descriptor.digest).sort()).toEqual([otherSig.digest, sbom.digest].sort());
      expect(store.content.hasManifest(sbom.digest)).toBe(true);
      const entries = store.journal.since(seq);
      expect(entries.map((e) => e.tag)).toEqual(['v2']);
    } finally {
      store.close();
    }
  });
});
