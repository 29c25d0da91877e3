// The image plan's attachment steps: an image's attachment manifests (with their blobs) before its
// root, and after the root, before the tag, a `digest-tag` line for a cosign digest tag and a
// `referrer` line carrying the referrers-list entry ferry import would write. checkImagePlan
// takes the plan a Ferry from before these steps wrote (the same without them) and refuses any
// other difference, naming the line.
import { describe, expect, it } from 'vitest';
import { buildImagePlan, checkImagePlan, type BundleAttachment, type BundleImage } from '../../bundle/index.js';
import { MediaType, referrerDescriptor, sha256Digest, type Digest, type ManifestReader } from '../../oci/index.js';

const json = (o: object): Buffer => Buffer.from(JSON.stringify(o));
const d = (b: Buffer): Digest => sha256Digest(b);
const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
const layer = Buffer.from('layer');
const image = json({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d(layer), size: layer.length }] });
const payload = Buffer.from('{"critical":{}}');
const sig = json({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(config), size: config.length }, layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: d(payload), size: payload.length, annotations: { 'dev.cosignproject.cosign/signature': 'MEUC' } }] });
const empty = Buffer.from('{}');
const sbom = Buffer.from('{"spdxVersion":"SPDX-2.3"}');
const ref = json({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: 'application/spdx+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: d(empty), size: 2 }, layers: [{ mediaType: 'application/spdx+json', digest: d(sbom), size: sbom.length }], subject: { mediaType: MediaType.OciManifest, digest: d(image), size: image.length }, annotations: { 'org.example.note': 'two words' } });
const manifests = new Map([image, sig, ref].map((b) => [d(b), { bytes: b, mediaType: MediaType.OciManifest }]));
const read: ManifestReader = (x) => manifests.get(x.digest);
const hex = d(image).slice(7);
const images: BundleImage[] = [{ reference: 'up.example/app:v1', target: 'mirror/app', tag: 'v1', digest: d(image), mediaType: MediaType.OciManifest, platforms: null }];
const attachments: BundleAttachment[] = [
  { subject: d(image), digest: d(sig), mediaType: MediaType.OciManifest, size: sig.length, tag: `sha256-${hex}.sig` },
  { subject: d(image), digest: d(ref), mediaType: MediaType.OciManifest, size: ref.length, artifactType: 'application/spdx+json' },
].sort((a, b) => (`${a.subject} ${a.digest}` < `${b.subject} ${b.digest}` ? -1 : 1));

describe('image plan: attachments', () => {
  it('lists attachment manifests before the root, digest-tag and referrer steps after it, before the tag', async () => {
    const lines = (await buildImagePlan(images, read, attachments)).toString('utf8').split('\n');
    const at = (s: string): number => lines.indexOf(s);
    const root = at(`0 root ${d(image)} ${MediaType.OciManifest} -`);
    expect(root).toBeGreaterThan(0);
    expect(lines[lines.length - 2]).toBe('0 tag v1');
    for (const m of [sig, ref]) expect(at(`0 manifest ${d(m)} ${MediaType.OciManifest}`)).toBeLessThan(root);
    expect(at(`0 blob ${d(payload)}`)).toBeGreaterThan(0);
    expect(at(`0 blob ${d(sbom)}`)).toBeGreaterThan(0);
    expect(at(`0 digest-tag sha256-${hex}.sig ${d(sig)} ${MediaType.OciManifest}`)).toBeGreaterThan(root);
    const desc = JSON.stringify(referrerDescriptor(ref, d(ref), MediaType.OciManifest));
    expect(desc).toContain('"org.example.note":"two words"');
    expect(at(`0 referrer ${d(image)} ${d(ref)} ${desc}`)).toBeGreaterThan(root);
    // Without attachments: the plan as before.
    expect((await buildImagePlan(images, read)).toString('utf8')).toBe(`ferry image plan 1\n0 blob ${d(config)}\n0 blob ${d(layer)}\n0 root ${d(image)} ${MediaType.OciManifest} -\n0 tag v1\n`);
  });

  it('checkImagePlan takes the plan with the steps, or the one a Ferry from before them wrote, and refuses another', async () => {
    const plan = await buildImagePlan(images, read, attachments);
    await checkImagePlan(images, read, plan, attachments);
    await checkImagePlan(images, read, await buildImagePlan(images, read), attachments);
    const tampered = Buffer.from(plan.toString('utf8').replace('"org.example.note":"two words"', '"org.example.note":"other"'));
    await expect(checkImagePlan(images, read, tampered, attachments)).rejects.toMatchObject({ code: 'BUNDLE_INVALID', message: expect.stringMatching(/image-plan\.txt: line \d+ is "0 referrer /) });
  });
});
