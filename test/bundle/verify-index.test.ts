// verifyBundle and index.json: a bundle of many tags verifies whatever the size of its index.json
// (checked a line at a time against the signed images[]); a tampered index.json fails naming
// index.json and the entry.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIndexJson, bufferEntry, checkIndexJson, indexJsonBound, verifyBundle, type BundleImage } from '../../bundle/index.js';
import { MAX_MANIFEST_BYTES, sha256Digest } from '../../oci/index.js';
import { flipByteInEntry, makeFixture, makeKeys, tempDir, writeFixture, type Fixture } from './fixtures.js';

let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let fx: Fixture;
let n = 0;

beforeAll(async () => {
  dir = await tempDir();
  keys = await makeKeys(dir);
  fx = await makeFixture(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The size index.json states for an image of the fixture: its carried manifest's. */
function sizeOf(im: BundleImage): number {
  return fx.blobs.find((b) => b.digest === im.digest)!.bytes.length;
}

/** The fixture with `images` and an index.json of `index` (default: the one Ferry writes for them), signed, with its plan. */
async function bundle(images: BundleImage[], index?: string | Buffer): Promise<string> {
  const bytes = index ?? buildIndexJson(images.map((im) => ({ ...im, size: sizeOf(im) })));
  const entries = fx.entries.map((e) => (e.path === 'index.json' ? bufferEntry('index.json', Buffer.from(bytes)) : e));
  const out = join(dir, `b${n++}`);
  await mkdir(out);
  await writeFixture(out, { ...fx, entries, images, manifest: { ...fx.manifest, images } }, keys.privateKey, { plan: true });
  return out;
}

const verify = (p: string): ReturnType<typeof verifyBundle> => verifyBundle(p, { trust: keys.trust });

/** `count` tags of the fixture's single-platform image. */
function tags(count: number): BundleImage[] {
  const app = fx.images[0]!;
  return Array.from({ length: count }, (_, i) => ({ ...app, reference: `example.com/team/app:t${i}`, tag: `t${i}` }));
}

/** The fixture's index.json as Ferry writes it, as text. */
function goodIndex(images: BundleImage[] = fx.images): string {
  return buildIndexJson(images.map((im) => ({ ...im, size: sizeOf(im) }))).toString('utf8');
}

describe('verifyBundle: index.json', () => {
  it('verifies a bundle whose index.json is larger than a manifest may be (many tags of two images)', async () => {
    const many: BundleImage[] = [...tags(16_000), fx.images[1]!];
    const out = await bundle(many);
    const res = await verify(out);
    const index = res.manifest.files.find((f) => f.path === 'index.json')!;
    expect(index.size).toBeGreaterThan(MAX_MANIFEST_BYTES);
    expect(index.size).toBeLessThanOrEqual(indexJsonBound(many));
    expect(res.manifest.images).toHaveLength(16_001);
  });

  it('checks index.json read into one buffer used again for each chunk (lines split across chunks; verify reads its spool so)', async () => {
    const images = [...tags(40), fx.images[1]!];
    const text = Buffer.from(goodIndex(images));
    async function* reused(): AsyncGenerator<Buffer> {
      const buf = Buffer.alloc(7);
      for (let at = 0; at < text.length; at += buf.length) {
        buf.fill(0x7e); // what a chunk kept past the next read would see
        yield buf.subarray(0, text.copy(buf, 0, at, at + buf.length));
      }
    }
    const size = (d: string): number | undefined => fx.blobs.find((b) => b.digest === d)?.bytes.length;
    await expect(checkIndexJson(images, reused(), size)).resolves.toBeUndefined();
  });

  it('names the entry whose digest is not its image’s', async () => {
    const other = sha256Digest('other');
    const text = goodIndex().replace(fx.images[0]!.digest, other);
    const err = await verify(await bundle(fx.images, text)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUNDLE_INVALID', details: { file: 'index.json' } });
    expect((err as Error).message).toBe(`index.json: manifests[1] (example.com/team/app:1.0) has digest ${other}, but images[0] (mirror/app:1.0) is ${fx.images[0]!.digest}`);
  });

  it('checks index.json as it streams but reports what it finds after the pass: a damaged blob later in the tar is named first', async () => {
    const other = sha256Digest('other');
    const out = await bundle(fx.images, goodIndex().replace(fx.images[0]!.digest, other));
    const blob = `blobs/sha256/${fx.blobs[0]!.digest.slice(7)}`;
    await flipByteInEntry(join(out, 'ferry-20240101-0001.tar'), blob, 3);
    await expect(verify(out)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH', details: { file: blob } });
  });

  it('names an extra entry, a renamed one, a repeated one and a missing one', async () => {
    const [app, multi] = [fx.images[0]!, fx.images[1]!];
    // Forty tags of one image leave room within the bound for one more line.
    const forty = [...tags(40), multi];
    const extra: BundleImage = { ...app, reference: 'example.com/team/app:extra', tag: 'extra' };
    let err = await verify(await bundle(forty, goodIndex([...forty, extra]))).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUNDLE_INVALID', details: { file: 'index.json' } });
    expect((err as Error).message).toMatch(/^index\.json: manifests\[\d+\] \(example\.com\/team\/app:extra → mirror\/app\) is not listed in images$/);

    const renamed = goodIndex().replaceAll('example.com/team/app:1.0', 'example.com/team/app:2.0');
    err = await verify(await bundle(fx.images, renamed)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('index.json: manifests[1] (example.com/team/app:2.0 → mirror/app) is not listed in images');

    const fortyLines = goodIndex(forty).split('\n');
    const repeated = [...fortyLines.slice(0, 5), fortyLines[4]!, ...fortyLines.slice(5)].join('\n');
    err = await verify(await bundle(forty, repeated)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('index.json: manifests[1] (docker.io/library/multi:latest) lists mirror/multi:latest a second time');

    const missing = goodIndex([multi]);
    err = await verify(await bundle(fx.images, missing)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUNDLE_INVALID', details: { file: 'index.json' } });
    expect((err as Error).message).toBe(`index.json: has no entry for images[0] ${app.reference} → ${app.target}:${app.tag} (${app.reference})`);
  });

  it('names an entry that differs from the line Ferry writes (size, name, platforms)', async () => {
    const app = fx.images[0]!;
    const size = sizeOf(app);
    let err = await verify(await bundle(fx.images, goodIndex().replace(`"size":${size}`, `"size":${size + 1}`))).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`index.json: manifests[1] (example.com/team/app:1.0) has size ${size + 1}, but the manifest ${app.digest} the bundle carries is ${size} bytes`);
    const renamed = goodIndex().replace('"io.containerd.image.name":"example.com/team/app:1.0"', '"io.containerd.image.name":"example.com/team/app:6.6"');
    err = await verify(await bundle(fx.images, renamed)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^index\.json: manifests\[1\] \(example\.com\/team\/app:1\.0\) is ".*app:6\.6.*", but Ferry writes ".*" for images\[0\] \(mirror\/app:1\.0\)$/);
    // images[] keeps platforms of the index, index.json says nothing of them.
    const kept = [app, { ...fx.images[1]!, platforms: ['linux/amd64', 'linux/arm64'] }];
    err = await verify(await bundle(kept, goodIndex())).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^index\.json: manifests\[0\] \(docker\.io\/library\/multi:latest\) is ".*", but Ferry writes ".*io\.ferry\.platforms\\":\\"linux\/amd64,linux\/arm64.*" for images\[1\] \(mirror\/multi:latest\)$/);
  });

  it('refuses an index.json of another shape with a clear error, and one larger than its images allow', async () => {
    const compact = `${JSON.stringify(JSON.parse(goodIndex()))}\n`;
    let err = await verify(await bundle(fx.images, compact)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUNDLE_INVALID', details: { file: 'index.json' } });
    expect((err as Error).message).toMatch(/^index\.json: line 1 is longer than \d+ bytes, more than any line of the index\.json Ferry writes for these images \(one descriptor a line\)$/);
    // Pretty-printed another way it takes more bytes than Ferry's own could.
    const pretty = `${JSON.stringify(JSON.parse(goodIndex()), null, 2)}\n`;
    err = await verify(await bundle(fx.images, pretty)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^index\.json: is \d+ bytes, more than the \d+ bytes index\.json takes for the 2 images of ferry-bundle\.json$/);

    const lines = goodIndex().split('\n');
    const empty = [...lines.slice(0, 4), ...lines.slice(-3)].join('\n');
    err = await verify(await bundle(fx.images, empty)).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`index.json: lists no image, but ferry-bundle.json has 2: no entry for images[0] ${fx.images[0]!.reference} → mirror/app:1.0`);
    const trailingComma = [...lines.slice(0, 6).map((l, i) => (i === 5 ? `${l},` : l)), ...lines.slice(6)].join('\n');
    err = await verify(await bundle(fx.images, trailingComma)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('index.json: line 7 closes the list, but manifests[1] before it has a comma after it');

    const noNewline = goodIndex().slice(0, -1);
    err = await verify(await bundle(fx.images, noNewline)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('index.json: does not end with a newline after line 7');

    const padded = goodIndex().replace('"manifests": [', `"manifests": [${' '.repeat(indexJsonBound(fx.images))}`);
    err = await verify(await bundle(fx.images, padded)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUNDLE_INVALID', details: { file: 'index.json' } });
    expect((err as Error).message).toMatch(/^index\.json: is \d+ bytes, more than the \d+ bytes index\.json takes for the 2 images of ferry-bundle\.json$/);
  });
});
