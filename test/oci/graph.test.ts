// The image graph's rules, each on a small in-memory graph: platform selection of the root index
// (Docker manifest list and OCI index, variants), nested indexes, buildx attestations following
// their image, the filtered index's exact bytes, foreign layers, missing and external children,
// duplicates, and children before parents.
import { describe, expect, it } from 'vitest';
import {
  ALL_ATTACHMENTS,
  ANNOTATION_FILTERED_FROM,
  ANNOTATION_REFERENCE_DIGEST,
  ANNOTATION_REFERENCE_TYPE,
  closure,
  filteredIndex,
  MAX_ATTACHMENT_DEPTH,
  MediaType,
  sha256Digest,
  type Attachment,
  type Descriptor,
  type Digest,
  type ManifestRead,
  type Platform,
} from '../../oci/index.js';

const FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
const NONDIST = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';

/** An in-memory source of manifests. */
class Graph {
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  reads: string[] = [];

  private put(json: object, mediaType: string): Descriptor {
    const bytes = Buffer.from(JSON.stringify(json));
    const digest = sha256Digest(bytes);
    this.manifests.set(digest, { bytes, mediaType });
    return { mediaType, digest, size: bytes.length };
  }

  blob(seed: string, mediaType: string = MediaType.OciLayout, extra: Partial<Descriptor> = {}): Descriptor {
    return { mediaType, digest: sha256Digest(seed), size: seed.length, ...extra };
  }

  image(seed: string, layers: Descriptor[] = [this.blob(`layer-${seed}`)], mediaType: string = MediaType.OciManifest): Descriptor {
    const config = this.blob(`config-${seed}`, mediaType === MediaType.DockerManifest ? MediaType.DockerConfig : MediaType.OciConfig);
    return this.put({ schemaVersion: 2, mediaType, config, layers }, mediaType);
  }

  index(children: Descriptor[], mediaType: string = MediaType.OciIndex): Descriptor {
    return this.put({ schemaVersion: 2, mediaType, manifests: children }, mediaType);
  }

  read = (d: Descriptor): ManifestRead => {
    this.reads.push(d.digest);
    return this.manifests.get(d.digest);
  };
}

const linux = (architecture: string, variant?: string): Platform => ({ os: 'linux', architecture, ...(variant ? { variant } : {}) });
const at = (d: Descriptor, platform: Platform, annotations?: Record<string, string>): Descriptor => ({ ...d, platform, ...(annotations ? { annotations } : {}) });
const attestation = (d: Descriptor, of: Descriptor): Descriptor =>
  at(d, { os: 'unknown', architecture: 'unknown' }, { [ANNOTATION_REFERENCE_TYPE]: 'attestation-manifest', [ANNOTATION_REFERENCE_DIGEST]: of.digest });
const digests = (ds: readonly { digest: Digest }[]): Digest[] => ds.map((d) => d.digest);

describe('closure', () => {
  it('keeps the wanted platform of a Docker manifest list: its manifest and blobs, children before the list', async () => {
    const g = new Graph();
    const amd = at(g.image('amd', undefined, MediaType.DockerManifest), linux('amd64'));
    const arm = at(g.image('arm', undefined, MediaType.DockerManifest), linux('arm64', 'v8'));
    const list = g.index([amd, arm], MediaType.DockerManifestList);
    const c = await closure(list, g.read, { platforms: ['linux/amd64'] });
    expect(digests(c.manifests)).toEqual([amd.digest, list.digest]);
    expect(digests(c.kept!)).toEqual([amd.digest]);
    expect(digests(c.dropped)).toEqual([arm.digest]);
    expect(digests(c.blobs)).toEqual([g.blob('config-amd').digest, g.blob('layer-amd').digest]);
    expect(c.manifests[1]!.mediaType).toBe(MediaType.DockerManifestList);
    expect(c.filtered?.mediaType).toBe(MediaType.DockerManifestList);
    expect(g.reads).not.toContain(arm.digest);
  });

  it('keeps every child of an OCI index without a selection, and filters nothing', async () => {
    const g = new Graph();
    const amd = at(g.image('amd'), linux('amd64'));
    const arm = at(g.image('arm'), linux('arm64'));
    const idx = g.index([amd, arm]);
    const c = await closure(idx, g.read, { platforms: null });
    expect(digests(c.manifests)).toEqual([amd.digest, arm.digest, idx.digest]);
    expect(digests(c.kept!)).toEqual([amd.digest, arm.digest]);
    expect(c.dropped).toEqual([]);
    expect(c.filtered).toBeUndefined();
    // A selection that keeps every child filters nothing either.
    const all = await closure(idx, g.read, { platforms: ['linux/amd64', 'linux/arm64'] });
    expect(all.filtered).toBeUndefined();
    expect(all.dropped).toEqual([]);
  });

  it('matches a wanted platform without a variant to any variant, and one with a variant exactly', async () => {
    const g = new Graph();
    const v7 = at(g.image('v7'), linux('arm', 'v7'));
    const v6 = at(g.image('v6'), linux('arm', 'v6'));
    const idx = g.index([v7, v6]);
    expect(digests((await closure(idx, g.read, { platforms: ['linux/arm'] })).kept!)).toEqual([v7.digest, v6.digest]);
    expect(digests((await closure(idx, g.read, { platforms: ['linux/arm/v6'] })).kept!)).toEqual([v6.digest]);
    // A child without a platform is never selected by one.
    const bare = g.image('bare');
    const idx2 = g.index([bare, v7]);
    expect(digests((await closure(idx2, g.read, { platforms: ['linux/arm'] })).kept!)).toEqual([v7.digest]);
  });

  it('applies the selection to the root only: a nested index keeps all its children', async () => {
    const g = new Graph();
    const a = at(g.image('nested-amd'), linux('amd64'));
    const b = at(g.image('nested-arm'), linux('arm64'));
    const nested = at(g.index([a, b]), linux('amd64'));
    const other = at(g.image('other'), linux('s390x'));
    const root = g.index([nested, other]);
    const c = await closure(root, g.read, { platforms: ['linux/amd64'] });
    expect(digests(c.manifests)).toEqual([a.digest, b.digest, nested.digest, root.digest]);
    expect(digests(c.manifests[2]!.children)).toEqual([a.digest, b.digest]);
    expect(digests(c.kept!)).toEqual([nested.digest]);
    expect(digests(c.dropped)).toEqual([other.digest]);
  });

  it('keeps a buildx attestation with the image it references and drops it with that image', async () => {
    const g = new Graph();
    const amd = at(g.image('amd'), linux('amd64'));
    const arm = at(g.image('arm'), linux('arm64'));
    const attAmd = attestation(g.image('att-amd', [g.blob('intoto-amd', 'application/vnd.in-toto+json')]), amd);
    const attArm = attestation(g.image('att-arm', [g.blob('intoto-arm', 'application/vnd.in-toto+json')]), arm);
    const idx = g.index([amd, arm, attAmd, attArm]);
    const c = await closure(idx, g.read, { platforms: ['linux/amd64'] });
    expect(digests(c.kept!)).toEqual([amd.digest, attAmd.digest]);
    expect(digests(c.dropped)).toEqual([arm.digest, attArm.digest]);
    expect(digests(c.manifests)).toEqual([amd.digest, attAmd.digest, idx.digest]);
    expect(digests(c.blobs)).toContain(g.blob('intoto-amd').digest);
    expect(digests(c.blobs)).not.toContain(g.blob('intoto-arm').digest);
    const f = JSON.parse(c.filtered!.bytes.toString('utf8')) as { manifests: Descriptor[] };
    expect(digests(f.manifests)).toEqual([amd.digest, attAmd.digest]);
    // Without a selection they are children like any other.
    expect(digests((await closure(idx, g.read, { platforms: null })).kept!)).toEqual([amd.digest, arm.digest, attAmd.digest, attArm.digest]);
  });

  it('drops a kept attestation the source lacks, and the filtered index is then the one without it', async () => {
    const g = new Graph();
    const amd = at(g.image('amd'), linux('amd64'));
    const arm = at(g.image('arm'), linux('arm64'));
    const attAmd = attestation(g.image('att-amd'), amd);
    const idx = g.index([amd, arm, attAmd]);
    g.manifests.delete(attAmd.digest);
    const c = await closure(idx, g.read, { platforms: ['linux/amd64'] });
    expect(digests(c.absent)).toEqual([attAmd.digest]);
    expect(c.missing).toEqual([]);
    expect(digests(c.kept!)).toEqual([amd.digest]);
    const original = g.manifests.get(idx.digest)!.bytes;
    expect(c.filtered?.digest).toBe(filteredIndex(original, [amd.digest], idx.digest).digest);
  });

  it('writes the filtered index byte for byte as bundles carry it: the original with only the kept children, annotated', async () => {
    const g = new Graph();
    const amd = at(g.image('amd'), linux('amd64'));
    const arm = at(g.image('arm'), linux('arm64'));
    const bytes = Buffer.from(
      `{"schemaVersion":2,"mediaType":"${MediaType.OciIndex}","manifests":[${JSON.stringify(amd)},${JSON.stringify(arm)}],"annotations":{"a":"b"}}\n`,
    );
    const digest = sha256Digest(bytes);
    g.manifests.set(digest, { bytes, mediaType: MediaType.OciIndex });
    const c = await closure({ mediaType: MediaType.OciIndex, digest, size: bytes.length }, g.read, { platforms: ['linux/arm64'] });
    const want = `{"schemaVersion":2,"mediaType":"${MediaType.OciIndex}","manifests":[${JSON.stringify(arm)}],"annotations":{"a":"b","${ANNOTATION_FILTERED_FROM}":"${digest}"}}`;
    expect(c.filtered?.bytes.toString('utf8')).toBe(want);
    expect(c.filtered).toMatchObject({ digest: sha256Digest(want), size: Buffer.byteLength(want), mediaType: MediaType.OciIndex });
  });

  it('reports foreign layers apart and never among the blobs; a non-distributable layer without urls is a blob', async () => {
    const g = new Graph();
    const foreign = g.blob('windows-base', FOREIGN, { urls: ['https://example.com/base'] });
    const noUrls = g.blob('nondist', NONDIST);
    const plain = g.blob('plain');
    const img = g.image('win', [foreign, noUrls, plain], MediaType.DockerManifest);
    const c = await closure(img, g.read);
    expect(digests(c.foreign)).toEqual([foreign.digest]);
    expect(digests(c.blobs)).toEqual([g.blob('config-win').digest, noUrls.digest, plain.digest]);
    expect(c.kept).toBeUndefined();
    expect(c.filtered).toBeUndefined();
  });

  it('reports missing children and a missing root instead of throwing; an external manifest is a leaf', async () => {
    const g = new Graph();
    const amd = at(g.image('amd'), linux('amd64'));
    const arm = at(g.image('arm'), linux('arm64'));
    const idx = g.index([amd, arm]);
    g.manifests.delete(arm.digest);
    const c = await closure(idx, g.read);
    expect(digests(c.missing)).toEqual([arm.digest]);
    expect(digests(c.manifests)).toEqual([amd.digest, idx.digest]);
    expect(digests(c.kept!)).toEqual([amd.digest, arm.digest]);

    const lost = await closure({ mediaType: MediaType.OciIndex, digest: sha256Digest('nothing'), size: 7 }, g.read);
    expect(digests(lost.missing)).toEqual([sha256Digest('nothing')]);
    expect(lost.manifests).toEqual([]);
    expect(lost.kept).toBeUndefined();

    const ext = await closure(idx, (d) => (d.digest === amd.digest ? 'external' : g.read(d)));
    expect(digests(ext.external)).toEqual([amd.digest]);
    expect(digests(ext.manifests)).toEqual([idx.digest]);
    expect(ext.blobs).toEqual([]);
  });

  it('lists each manifest and blob once however often it is reached, children before parents', async () => {
    const g = new Graph();
    const shared = g.blob('shared');
    const a = at(g.image('a', [shared, g.blob('a-only')]), linux('amd64'));
    const b = at(g.image('b', [shared]), linux('arm64'));
    const nested = at(g.index([b, a]), linux('ppc64le'));
    const root = g.index([a, nested, a, b]);
    const c = await closure(root, g.read);
    expect(digests(c.manifests)).toEqual([a.digest, b.digest, nested.digest, root.digest]);
    expect(digests(c.blobs)).toEqual([g.blob('config-a').digest, shared.digest, g.blob('a-only').digest, g.blob('config-b').digest]);
    expect(new Set(g.reads).size).toBe(g.reads.length);
  });

  it('refuses bytes that are not the digest asked for, and names the manifest that does not parse', async () => {
    const g = new Graph();
    const img = g.image('x');
    await expect(closure(img, () => ({ bytes: Buffer.from('{}'), mediaType: MediaType.OciManifest }))).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    const junk = Buffer.from('not json');
    const d = { mediaType: MediaType.OciManifest, digest: sha256Digest(junk), size: junk.length };
    await expect(closure(d, () => ({ bytes: junk, mediaType: MediaType.OciManifest }))).rejects.toMatchObject({ code: 'MANIFEST_INVALID', message: expect.stringContaining(d.digest) });
  });
});

describe('closure: attachments', () => {
  /** A referrer manifest of `subject` (OCI 1.1: `subject` and `artifactType`). */
  function referrer(g: Graph, seed: string, subject: Descriptor, artifactType = 'application/spdx+json'): Descriptor {
    const bytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType, config: g.blob(`cfg-${seed}`), layers: [g.blob(`sbom-${seed}`)], subject }),
    );
    const digest = sha256Digest(bytes);
    g.manifests.set(digest, { bytes, mediaType: MediaType.OciManifest });
    return { mediaType: MediaType.OciManifest, digest, size: bytes.length, artifactType };
  }

  it('follows attachments of the root and kept children (not of dropped ones), their blobs, after their subjects', async () => {
    const g = new Graph();
    const amd = at(g.image('amd'), linux('amd64'));
    const arm = at(g.image('arm'), linux('arm64'));
    const idx = g.index([amd, arm]);
    const sig = g.image('sig');
    const sbom = referrer(g, 'amd', amd);
    const armSbom = referrer(g, 'arm', arm);
    const sbomSig = g.image('sbom-sig');
    const attached: Record<string, Attachment[]> = {
      [idx.digest]: [{ subject: idx.digest, descriptor: sig, tag: `sha256-${idx.digest.slice(7)}.sig` }],
      [amd.digest]: [{ subject: amd.digest, descriptor: sbom }],
      [arm.digest]: [{ subject: arm.digest, descriptor: armSbom }],
      [sbom.digest]: [{ subject: sbom.digest, descriptor: sbomSig, tag: `sha256-${sbom.digest.slice(7)}.sig` }],
    };
    const asked: string[] = [];
    const find = async (d: Descriptor): Promise<Attachment[]> => {
      asked.push(d.digest);
      return attached[d.digest] ?? [];
    };
    const c = await closure(idx, g.read, { platforms: ['linux/amd64'], attachments: ALL_ATTACHMENTS }, find);
    expect(c.attachments.map((a) => a.descriptor.digest)).toEqual([sig.digest, sbom.digest, sbomSig.digest]);
    expect(asked).not.toContain(arm.digest);
    const order = digests(c.manifests);
    // The root stays last; every other subject comes before its attachments.
    expect(order[order.length - 1]).toBe(idx.digest);
    expect(order.indexOf(amd.digest)).toBeLessThan(order.indexOf(sbom.digest));
    expect(order.indexOf(sbom.digest)).toBeLessThan(order.indexOf(sbomSig.digest));
    expect(digests(c.blobs)).toContain(sha256Digest('sbom-amd'));
    // A filter keeps only what it names; 'none' and no finder follow nothing.
    const sbomsOnly = await closure(idx, g.read, { platforms: ['linux/amd64'], attachments: { artifactTypes: ['application/spdx+json'] } }, find);
    expect(sbomsOnly.attachments.map((a) => a.descriptor.digest)).toEqual([sbom.digest]);
    expect((await closure(idx, g.read, { platforms: null, attachments: 'none' }, find)).attachments).toEqual([]);
    expect((await closure(idx, g.read, { platforms: null, attachments: ALL_ATTACHMENTS })).attachments).toEqual([]);
  });

  it('refuses a referrer whose subject is another manifest, drops one the source lacks, and stops at cycles and the depth bound', async () => {
    const g = new Graph();
    const img = g.image('img');
    const stranger = g.image('stranger');
    const wrong = referrer(g, 'wrong', stranger);
    await expect(closure(img, g.read, { platforms: null, attachments: ALL_ATTACHMENTS }, async (d) => (d.digest === img.digest ? [{ subject: img.digest, descriptor: wrong }] : []))).rejects.toMatchObject({
      code: 'MANIFEST_INVALID',
    });
    const gone: Descriptor = { mediaType: MediaType.OciManifest, digest: sha256Digest('gone'), size: 4 };
    const lacking = await closure(img, g.read, { platforms: null, attachments: ALL_ATTACHMENTS }, async (d) => (d.digest === img.digest ? [{ subject: img.digest, descriptor: gone, tag: 'x' }] : []));
    expect(lacking.attachments).toEqual([]);
    expect(digests(lacking.absent)).toEqual([gone.digest]);
    // A chain of signatures of signatures: followed three levels deep, and a cycle back to the image ends.
    const chain = [g.image('s1'), g.image('s2'), g.image('s3'), g.image('s4')];
    const next = new Map<string, Descriptor>([[img.digest, chain[0]!], [chain[0]!.digest, chain[1]!], [chain[1]!.digest, chain[2]!], [chain[2]!.digest, chain[3]!], [chain[3]!.digest, img]]);
    const deep = await closure(img, g.read, { platforms: null, attachments: ALL_ATTACHMENTS }, async (d) => {
      const n = next.get(d.digest);
      return n ? [{ subject: d.digest, descriptor: n, tag: `t-${d.digest}` }] : [];
    });
    expect(deep.attachments.map((a) => a.descriptor.digest)).toEqual(chain.slice(0, MAX_ATTACHMENT_DEPTH).map((d) => d.digest));
  });
});
