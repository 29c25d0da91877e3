// The one copy's ordering rules, with an in-memory source and a sink that records every call:
// blobs before manifests, children before indexes, tags last and only after everything; a blob
// or manifest the sink has is not sent again; a failure leaves no tag moved; a shared `inflight`
// sends a blob once between copies; a refused filtered root is put as its fallback.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import {
  copy,
  copyContent,
  MediaType,
  sha256Digest,
  type BlobOpener,
  type CopiedImage,
  type Descriptor,
  type Digest,
  type FetchedManifest,
  type ImageSink,
  type ImageSource,
  type ManifestPut,
  type PutBlobResult,
} from '../../oci/index.js';
import { FerryError } from '../../errors/index.js';

class MemSource implements ImageSource {
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  readonly blobs = new Map<string, Buffer>();
  opened: string[] = [];

  blobOf(seed: string): Descriptor {
    const bytes = Buffer.from(seed);
    const d = { mediaType: MediaType.OciLayout, digest: sha256Digest(bytes), size: bytes.length };
    this.blobs.set(d.digest, bytes);
    return d;
  }

  image(seed: string, layers: Descriptor[] = [this.blobOf(`layer ${seed}`)], platform?: { os: string; architecture: string }): Descriptor {
    const config = { ...this.blobOf(`config ${seed}`), mediaType: MediaType.OciConfig };
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers }));
    const digest = sha256Digest(bytes);
    this.manifests.set(digest, { bytes, mediaType: MediaType.OciManifest });
    return { mediaType: MediaType.OciManifest, digest, size: bytes.length, ...(platform ? { platform } : {}) };
  }

  index(children: Descriptor[]): Descriptor {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }));
    const digest = sha256Digest(bytes);
    this.manifests.set(digest, { bytes, mediaType: MediaType.OciIndex });
    return { mediaType: MediaType.OciIndex, digest, size: bytes.length };
  }

  async manifest(ref: string): Promise<FetchedManifest | undefined> {
    const m = this.manifests.get(ref);
    return m && { digest: ref as Digest, mediaType: m.mediaType, size: m.bytes.length, bytes: m.bytes };
  }

  async blob(d: Descriptor): Promise<Readable> {
    this.opened.push(d.digest);
    const b = this.blobs.get(d.digest);
    if (!b) throw new FerryError('BLOB_UNKNOWN', `no ${d.digest}`);
    return Readable.from([b]);
  }

  async hasBlob(d: Descriptor): Promise<boolean> {
    return this.blobs.has(d.digest);
  }

  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.manifests.has(d.digest);
  }
}

class LogSink implements ImageSink<string> {
  readonly log: string[] = [];
  readonly blobs = new Set<string>();
  readonly manifests = new Set<string>();
  readonly tags = new Map<string, Digest>();
  failBlob: string | undefined;
  refuse: string | undefined;

  async hasBlob(d: Descriptor): Promise<boolean> {
    return this.blobs.has(d.digest);
  }

  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.manifests.has(d.digest);
  }

  async putBlob(d: Descriptor, open: BlobOpener): Promise<PutBlobResult> {
    const body = await text(await open());
    if (d.digest === this.failBlob) throw new FerryError('NETWORK', 'upload failed');
    if (sha256Digest(body) !== d.digest) throw new FerryError('DIGEST_MISMATCH', 'bad bytes');
    this.blobs.add(d.digest);
    this.log.push(`blob ${d.digest}`);
    return 'written';
  }

  async putManifest(p: ManifestPut): Promise<Digest> {
    const m = p.manifest;
    if (m.digest === this.refuse && p.fallback) {
      this.manifests.add(p.fallback.digest);
      this.log.push(`manifest ${p.fallback.digest}`);
      return p.fallback.digest;
    }
    for (const c of m.children) if (!this.manifests.has(c.digest)) throw new Error(`index ${m.digest} before its child ${c.digest}`);
    for (const b of m.blobs) if (!this.blobs.has(b.digest)) throw new Error(`manifest ${m.digest} before its blob ${b.digest}`);
    this.manifests.add(m.digest);
    this.log.push(`manifest ${m.digest}`);
    return m.digest;
  }

  async putTag(tag: string, image: CopiedImage): Promise<void> {
    this.tags.set(tag, image.digest);
    this.log.push(`tag ${tag}`);
  }
}

const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64' };

describe('copy', () => {
  it('puts blobs, then manifests children first, then tags, and nothing the sink already has', async () => {
    const src = new MemSource();
    const shared = src.blobOf('shared');
    const a = src.image('a', [shared], amd64);
    const b = src.image('b', [shared, src.blobOf('b only')], arm64);
    const idx = src.index([a, b]);
    const sink = new LogSink();
    sink.blobs.add(shared.digest);
    const r = await copy(src, sink, [{ descriptor: idx, selection: { platforms: null }, tag: 'v1' }]);
    const kinds = sink.log.map((l) => l.split(' ')[0]);
    expect(kinds).toEqual(['blob', 'blob', 'blob', 'manifest', 'manifest', 'manifest', 'tag']);
    expect(sink.log.slice(-2)).toEqual([`manifest ${idx.digest}`, 'tag v1']);
    expect(src.opened).not.toContain(shared.digest);
    expect(r).toMatchObject({ blobs: { written: 3, exists: 1 }, manifests: 3 });
    expect(sink.tags.get('v1')).toBe(idx.digest);

    // Again: the index is there, so nothing below it is walked or sent; the tag moves again.
    src.opened = [];
    sink.log.length = 0;
    await copy(src, sink, [{ descriptor: idx, selection: { platforms: null }, tag: 'latest' }]);
    expect(sink.log).toEqual(['tag latest']);
    expect(src.opened).toEqual([]);
  });

  it('reads each manifest once for many tags of one image and selection; given a queue, moves every tag through it', async () => {
    const src = new MemSource();
    const a = src.image('a', [src.blobOf('a layer')], amd64);
    const b = src.image('b', [src.blobOf('b layer')], arm64);
    const idx = src.index([a, b]);
    const reads: string[] = [];
    const manifest = src.manifest.bind(src);
    src.manifest = async (ref: string) => {
      reads.push(ref);
      return manifest(ref);
    };
    const sink = new LogSink();
    const tags = Array.from({ length: 20 }, (_, i) => `t${i}`);
    const roots = [
      ...tags.map((tag) => ({ descriptor: idx, selection: { platforms: null }, tag })),
      { descriptor: idx, selection: { platforms: ['linux/amd64'] }, tag: 'amd64-only' },
    ];
    const staged = await copyContent(src, sink, roots);
    // One read per manifest for the 20 tags of one selection; the other selection (amd64: the
    // index and a) reads its own.
    expect(reads.filter((d) => d === idx.digest)).toHaveLength(2);
    expect(reads.filter((d) => d === a.digest)).toHaveLength(2);
    expect(reads.filter((d) => d === b.digest)).toHaveLength(1);
    expect(staged.images.map((i) => i.image.digest)).toEqual(roots.map(() => idx.digest));
    expect(sink.tags.size).toBe(0);
    let queued = 0;
    await staged.moveTags({ add: async <R>(fn: () => Promise<R>): Promise<R> => (queued++, fn()) });
    expect(queued).toBe(21);
    expect([...sink.tags.keys()].sort()).toEqual([...tags, 'amd64-only'].sort());
  });

  it('a failure moves no tag, even of another root whose content made it', async () => {
    const src = new MemSource();
    const good = src.image('good');
    const badLayer = src.blobOf('bad layer');
    const bad = src.image('bad', [badLayer]);
    const sink = new LogSink();
    sink.failBlob = badLayer.digest;
    await expect(
      copy(src, sink, [
        { descriptor: good, selection: { platforms: null }, tag: 'good' },
        { descriptor: bad, selection: { platforms: null }, tag: 'bad' },
      ]),
    ).rejects.toMatchObject({ code: 'NETWORK' });
    expect(sink.tags.size).toBe(0);
    expect(sink.log.filter((l) => l.startsWith('manifest'))).toEqual([]);
  });

  it('stops before writing anything when a manifest is in neither end', async () => {
    const src = new MemSource();
    const a = src.image('a', undefined, amd64);
    const b = src.image('b', undefined, arm64);
    const idx = src.index([a, b]);
    src.manifests.delete(b.digest);
    const sink = new LogSink();
    await expect(copy(src, sink, [{ descriptor: idx, selection: { platforms: null }, tag: 't' }])).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN', details: { digest: b.digest } });
    expect(sink.log).toEqual([]);
    // Filtered to amd64 the missing child is not needed.
    await copy(src, sink, [{ descriptor: idx, selection: { platforms: ['linux/amd64'] }, tag: 't' }]);
    expect(sink.tags.get('t')).toBe(idx.digest);
  });

  it('a sink that refuses a filtered root holds its fallback, and the tag names that', async () => {
    const src = new MemSource();
    const a = src.image('a', undefined, amd64);
    const b = src.image('b', undefined, arm64);
    const idx = src.index([a, b]);
    const sink = new LogSink();
    sink.refuse = idx.digest;
    const r = await copy(src, sink, [{ descriptor: idx, selection: { platforms: ['linux/amd64'] }, tag: 'amd' }]);
    const image = r.images[0]!.image;
    expect(image.digest).toBe(image.closure.filtered!.digest);
    expect(sink.tags.get('amd')).toBe(image.closure.filtered!.digest);
    expect(Buffer.from(image.bytes!).equals(image.closure.filtered!.bytes)).toBe(true);
    expect(sink.manifests.has(b.digest)).toBe(false);
  });

  it('copies sharing `inflight` send each blob once between them', async () => {
    const src = new MemSource();
    const shared = src.blobOf('shared big layer');
    const x = src.image('x', [shared]);
    const y = src.image('y', [shared]);
    const sink = new LogSink();
    const inflight = new Map<string, Promise<unknown>>();
    await Promise.all([
      copy(src, sink, [{ descriptor: x, selection: { platforms: null }, tag: 'x' }], { inflight }),
      copy(src, sink, [{ descriptor: y, selection: { platforms: null }, tag: 'y' }], { inflight }),
    ]);
    expect(src.opened.filter((d) => d === shared.digest)).toHaveLength(1);
    expect(inflight.size).toBe(0);
  });
});
