// The OCI image layout medium (importer/oci-layout.ts) on real temp directories: verified blob
// writes, the filtered stand-in for an index whose children are not all there, index.json merged
// one descriptor per name, the writer's lock.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { inspectLayoutDir, LAYOUT_LOCK_FILE, OciLayout } from '../../importer/index.js';
import { closure, copy, MediaType, sha256Digest, type CopiedImage, type Descriptor, type Digest, type FetchedManifest, type ImageSource } from '../../oci/index.js';

const root = mkdtempSync(join(tmpdir(), 'ferry-oci-layout-'));
let n = 0;
const fresh = (): string => join(root, `l${n++}`);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An in-memory source of a two-platform index (amd64 and arm64 images, one layer each). */
function memorySource(): { source: ImageSource; index: Descriptor; amd: Descriptor; arm: Descriptor; blobs: Map<Digest, Buffer> } {
  const blobs = new Map<Digest, Buffer>();
  const put = (b: Buffer): Digest => {
    const d = sha256Digest(b);
    blobs.set(d, b);
    return d;
  };
  const image = (arch: string): Descriptor => {
    const layer = Buffer.from(`layer ${arch}`);
    const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: put(config), size: config.length },
        layers: [{ mediaType: MediaType.OciLayout, digest: put(layer), size: layer.length }],
      }),
    );
    return { mediaType: MediaType.OciManifest, digest: put(bytes), size: bytes.length, platform: { os: 'linux', architecture: arch } };
  };
  const amd = image('amd64');
  const arm = image('arm64');
  const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [amd, arm] }));
  const index: Descriptor = { mediaType: MediaType.OciIndex, digest: put(idx), size: idx.length };
  const source: ImageSource = {
    manifest: async (ref): Promise<FetchedManifest | undefined> => {
      const b = blobs.get(ref as Digest);
      if (!b) return undefined;
      return { digest: ref as Digest, mediaType: (JSON.parse(b.toString()) as { mediaType: string }).mediaType, size: b.length, bytes: b };
    },
    blob: async (d) => Readable.from([blobs.get(d.digest)!]),
    hasBlob: async (d) => blobs.has(d.digest),
    hasManifest: async (d) => blobs.has(d.digest),
  };
  return { source, index, amd, arm, blobs };
}

describe('OCI layout medium', () => {
  it('tells an absent, empty or layout directory from anything else', async () => {
    const dir = fresh();
    expect(await inspectLayoutDir(dir)).toBe('absent');
    const w = await OciLayout.openForWrite(dir);
    await w.close();
    expect(await inspectLayoutDir(dir)).toBe('layout');
    expect(readdirSync(dir).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    const other = fresh();
    await OciLayout.openForWrite(other).then((l) => l.close());
    rmSync(join(other, 'blobs'), { recursive: true });
    rmSync(join(other, 'index.json'));
    rmSync(join(other, 'oci-layout'));
    writeFileSync(join(other, '.ferry-ledger.db'), '');
    expect(await inspectLayoutDir(other)).toBe('empty');
  });

  it('puts a blob only when its bytes have the digest and size: nothing else reaches the final path', async () => {
    const l = await OciLayout.openForWrite(fresh());
    try {
      const good = Buffer.from('good bytes');
      const d: Descriptor = { mediaType: 'application/octet-stream', digest: sha256Digest(good), size: good.length };
      let err: unknown;
      try {
        await l.putBlob(d, () => Readable.from([Buffer.from('evil bytes')]));
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'DIGEST_MISMATCH')).toBe(true);
      expect(existsSync(l.blobPath(d.digest))).toBe(false);
      expect(readdirSync(join(l.dir, '.ferry-tmp'))).toEqual([]);
      expect(await l.putBlob(d, () => Readable.from([good]))).toBe('written');
      expect(await l.putBlob(d, () => Readable.from([good]))).toBe('exists');
      // A file of the wrong size at the final path is damage: not "there", and replaced.
      writeFileSync(l.blobPath(d.digest), 'short');
      expect(await l.hasBlob(d)).toBe(false);
      expect(await l.putBlob(d, () => Readable.from([good]))).toBe('written');
      expect(readFileSync(l.blobPath(d.digest))).toEqual(good);
      // Reading back verifies too.
      writeFileSync(l.blobPath(d.digest), 'evil bytes');
      const chunks: Buffer[] = [];
      await expect(
        (async () => {
          for await (const c of await l.blob(d)) chunks.push(c as Buffer);
        })(),
      ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    } finally {
      await l.close();
    }
  });

  it('an index whose children are not all there goes in as its filtered index; a whole one as itself', async () => {
    const { source, index, amd } = memorySource();
    const l = await OciLayout.openForWrite(fresh());
    try {
      const r = await copy(source, l, [{ descriptor: index, selection: { platforms: ['linux/amd64'] }, tag: { name: 'example.com/app:v1', annotations: {} } }]);
      const c = await closure(index, (d) => source.manifest(d.digest).then((m) => m && { bytes: m.bytes, mediaType: m.mediaType }), { platforms: ['linux/amd64'] });
      expect(r.images[0]!.image.digest).toBe(c.filtered!.digest);
      expect(existsSync(l.blobPath(index.digest))).toBe(false);
      const filtered = JSON.parse(readFileSync(l.blobPath(c.filtered!.digest), 'utf8')) as { manifests: Descriptor[]; annotations: Record<string, string> };
      expect(filtered.manifests.map((m) => m.digest)).toEqual([amd.digest]);
      expect(filtered.annotations['io.ferry.filtered-from']).toBe(index.digest);
      // Every platform: the index itself, and the name moves to it.
      const all = await copy(source, l, [{ descriptor: index, selection: { platforms: null }, tag: { name: 'example.com/app:v1', annotations: {} } }]);
      expect(all.images[0]!.image.digest).toBe(index.digest);
      const changes = await l.commitTags();
      expect(changes).toEqual([{ name: 'example.com/app:v1', digest: index.digest, previous: undefined, changed: true }]);
      expect((await l.manifest('example.com/app:v1'))?.digest).toBe(index.digest);
    } finally {
      await l.close();
    }
  });

  it('index.json: one descriptor per name, moved names replaced in place, other entries kept, nothing rewritten when nothing changed', async () => {
    const { source, index, amd, arm } = memorySource();
    const dir = fresh();
    const l = await OciLayout.openForWrite(dir);
    try {
      await copy(source, l, [{ descriptor: index, selection: { platforms: null } }]);
    } finally {
      await l.close();
    }
    // Written by another tool: an unnamed entry, a name twice, a name Ferry will not touch, its own field.
    const entry = (d: Descriptor, name?: string): Record<string, unknown> => ({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      ...(name !== undefined ? { annotations: { 'org.opencontainers.image.ref.name': name } } : {}),
    });
    writeFileSync(
      join(dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, annotations: { 'made.by': 'someone' }, manifests: [entry(amd), entry(amd, 'app:v1'), entry(arm, 'keep:me'), entry(arm, 'app:v1')] }),
    );
    const image = (d: Descriptor): CopiedImage => ({ root: d, digest: d.digest, mediaType: d.mediaType, bytes: undefined, selection: { platforms: null }, closure: undefined as never });
    const w = await OciLayout.openForWrite(dir);
    try {
      await w.putTag({ name: 'app:v1', annotations: { 'io.ferry.target': 'team/app' } }, image(index));
      await w.putTag({ name: 'new:one', annotations: {} }, image(arm));
      const changes = await w.commitTags();
      expect(changes).toEqual([
        { name: 'app:v1', digest: index.digest, previous: amd.digest, changed: true },
        { name: 'new:one', digest: arm.digest, previous: undefined, changed: true },
      ]);
      const written = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { annotations: unknown; manifests: Array<Record<string, unknown>> };
      expect(written.annotations).toEqual({ 'made.by': 'someone' });
      expect(written.manifests).toEqual([
        entry(amd),
        { mediaType: index.mediaType, digest: index.digest, size: index.size, annotations: { 'io.ferry.target': 'team/app', 'org.opencontainers.image.ref.name': 'app:v1' } },
        entry(arm, 'keep:me'),
        entry(arm, 'new:one'),
      ]);
      const st = statSync(join(dir, 'index.json'));
      await w.putTag({ name: 'app:v1', annotations: { 'io.ferry.target': 'team/app' } }, image(index));
      expect((await w.commitTags()).map((c) => c.changed)).toEqual([false]);
      expect(statSync(join(dir, 'index.json')).mtimeMs).toBe(st.mtimeMs);
      expect(statSync(join(dir, 'index.json')).ino).toBe(st.ino);
    } finally {
      await w.close();
    }
  });

  it('one writer at a time; a lock left by a process that is gone is taken over', async () => {
    const dir = fresh();
    const a = await OciLayout.openForWrite(dir);
    await expect(OciLayout.openForWrite(dir)).rejects.toMatchObject({ code: 'LAYOUT_BUSY' });
    await a.close();
    expect(existsSync(join(dir, LAYOUT_LOCK_FILE))).toBe(false);
    // A process that has ended: its pid names no one (or, reused, another start time).
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(gone.stdout);
    writeFileSync(join(dir, LAYOUT_LOCK_FILE), JSON.stringify({ pid, startTime: '1', host: (await import('node:os')).hostname(), token: 'old', since: '2024-01-01T00:00:00Z' }));
    const b = await OciLayout.openForWrite(dir);
    expect((JSON.parse(readFileSync(join(dir, LAYOUT_LOCK_FILE), 'utf8')) as { pid: number }).pid).toBe(process.pid);
    await b.close();
  });
});
