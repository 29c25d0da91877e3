// Attachments in bundles: a signature and an SBOM synced from a real docker-registry 2.8 travel
// as ordinary manifests and blobs of the OCI layout, ferry-bundle.json records each one's
// subject, ferry verify checks them, an attachment added upstream later travels in the next
// incremental bundle, and `ferry import --store` keeps them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, parseBundleManifest, serializeBundleManifest, verifyBundle, writeKeyPair, type BundleManifest, type ExportResult } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { importBundles } from '../../importer/index.js';
import { fallbackTag } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { makeCosignKey, pushCosignSignature, pushFallbackIndex, pushSbomReferrer, SPDX, type CosignKey, type PushedAttachment } from '../helpers/cosign.js';
import { buildTestImage, pushLayout, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });

describe('attachments in bundles', () => {
  let upstream: RunningRegistry;
  let dir: string;
  let config: Config;
  let store: Store;
  let key: string;
  let pub: string;
  let img: TestImage;
  let client: RegistryClient;
  let cosign: CosignKey;
  let sig: PushedAttachment;
  let sbom: PushedAttachment;
  const exports: ExportResult[] = [];
  const manifests: BundleManifest[] = [];

  const tarOf = (r: ExportResult): string => r.files.find((f) => f.endsWith('.tar'))!;

  beforeAll(async () => {
    upstream = await startRegistry();
    dir = mkdtempSync(join(tmpdir(), 'ferry-bundle-attachments-'));
    const k = await writeKeyPair(join(dir, 'ferry'));
    key = k.privateKeyPath;
    pub = k.publicKeyPath;
    img = await buildTestImage({ multiArch: true, seed: 'attach', tag: 'v1' });
    await pushLayout(img.layout.dir, 'v1', `${upstream.host}/lab/app:v1`);
    client = new RegistryClient({ host: upstream.host, tls: 'plain-http' });
    cosign = await makeCosignKey();
    sig = await pushCosignSignature(client, 'lab/app', img.top.digest, cosign, `${upstream.host}/lab/app`);
    const amd = img.images[0]!;
    sbom = await pushSbomReferrer(client, 'lab/app', amd, { spdxVersion: 'SPDX-2.3' });
    await pushFallbackIndex(client, 'lab/app', amd.digest, [{ ...sbom, artifactType: SPDX }]);
    const text = `version: 1\nstore: ./store\nregistries:\n  - host: ${upstream.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${upstream.host}/lab/app\n    target: mirror/app\n`;
    writeFileSync(join(dir, 'ferry.yaml'), text);
    config = parseConfig(text, join(dir, 'ferry.yaml'));
    store = Store.open(config.store);
    expect((await runSync({ config, store, logger })).failures).toEqual([]);
  });

  afterAll(async () => {
    store?.close();
    await client?.close();
    await cosign?.remove();
    await img?.layout.remove();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a full bundle carries each attachment as a manifest of the layout and records its subject; verify passes', async () => {
    const r = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: key });
    exports.push(r);
    const v = await verifyBundle(tarOf(r), { trust: [await loadTrustedKey(pub)] });
    manifests.push(v.manifest);
    const amd = img.images[0]!;
    expect(v.manifest.images.map((i) => i.tag)).toEqual(['v1']);
    expect(v.manifest.attachments).toEqual(
      [
        { subject: img.top.digest, digest: sig.digest, mediaType: sig.mediaType, size: sig.bytes.length, tag: `${fallbackTag(img.top.digest)}.sig` },
        { subject: amd.digest, digest: sbom.digest, mediaType: sbom.mediaType, size: sbom.bytes.length, artifactType: SPDX },
      ].sort((a, b) => (a.subject < b.subject ? -1 : 1)),
    );
    const carried = new Map(v.manifest.files.map((f) => [f.path, f.mediaType]));
    for (const d of [sig.digest, sbom.digest]) expect(carried.get(`blobs/sha256/${d.slice(7)}`)).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('an attachment added upstream later travels in the next incremental bundle, the rest required', async () => {
    const arm = img.images[1]!;
    const armSig = await pushCosignSignature(client, 'lab/app', arm.digest, cosign, `${upstream.host}/lab/app`);
    const s = await runSync({ config, store, logger });
    expect(s.failures).toEqual([]);
    const r = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: key });
    exports.push(r);
    const v = await verifyBundle(tarOf(r), { trust: [await loadTrustedKey(pub)] });
    manifests.push(v.manifest);
    expect(v.manifest.parent).toBe(exports[0]!.id);
    const carried = v.manifest.files.filter((f) => f.mediaType !== undefined).map((f) => `sha256:${f.sha256}`);
    expect(carried).toContain(armSig.digest);
    expect(carried).not.toContain(sig.digest);
    expect(v.manifest.requires).toContain(sig.digest);
    expect(v.manifest.attachments?.map((a) => a.digest)).toContain(armSig.digest);
  });

  it('ferry-bundle.json refuses an attachment whose subject is neither carried nor required, naming it', () => {
    const m = manifests[0]!;
    const stray = { ...m.attachments![0]!, subject: `sha256:${'0'.repeat(64)}` as const, tag: undefined };
    const bytes = serializeBundleManifest({ ...m, attachments: [stray, ...m.attachments!.slice(1)] });
    expect(() => parseBundleManifest(bytes)).toThrow(/attachments\[0\]\.subject sha256:0{64} is neither a carried manifest nor listed in requires/);
  });

  it('ferry import --store keeps the attachments by subject', async () => {
    const target = Store.open(join(dir, 'inside'));
    const ledger = Ledger.open(join(dir, 'ledger.db'));
    try {
      await importBundles({ bundles: exports.map(tarOf), trust: [await loadTrustedKey(pub)], store: target, ledger, logger });
      expect(target.attachments.of(img.top.digest).map((a) => a.descriptor.digest)).toEqual([sig.digest]);
      expect(target.attachments.of(img.images[0]!.digest).map((a) => a.descriptor.digest)).toEqual([sbom.digest]);
      expect(target.attachments.of(img.images[1]!.digest)).toHaveLength(1);
      expect((await target.fsck()).problems).toEqual([]);
    } finally {
      ledger.close();
      target.close();
    }
  });
});
