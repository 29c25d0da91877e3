// verifyBundle: a good bundle passes; every kind of damage fails and names the culprit.
import { mkdir, readdir, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferEntry, signBytes, verifyBundle, type BundleEntry } from '../../bundle/index.js';
import { MediaType, sha256Digest } from '../../oci/index.js';
import { flipByteInEntry, makeFixture, makeKeys, tempDir, writeFixture, zipH1, type Fixture } from './fixtures.js';

const NAME = 'ferry-20240101-0001';
let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let other: Awaited<ReturnType<typeof makeKeys>>;
let fx: Fixture;
let n = 0;

beforeAll(async () => {
  dir = await tempDir();
  keys = await makeKeys(dir);
  other = await makeKeys(dir, 'other');
  fx = await makeFixture(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fresh(opts: { splitSize?: number; fixture?: Fixture } = {}): Promise<string> {
  const out = join(dir, `b${n++}`);
  await mkdir(out);
  await writeFixture(out, opts.fixture ?? fx, keys.privateKey, opts.splitSize !== undefined ? { splitSize: opts.splitSize } : {});
  return out;
}

const verify = (p: string): ReturnType<typeof verifyBundle> => verifyBundle(p, { trust: keys.trust });
const blobPath = (i: number): string => `blobs/sha256/${fx.blobs[i]!.digest.slice(7)}`;

describe('verifyBundle', () => {
  it('accepts a good bundle, whole or split, and reports what it checked', async () => {
    const whole = await fresh();
    const res = await verify(join(whole, `${NAME}.tar`));
    expect(res).toMatchObject({ ok: true, signer: 'ferry.pub', files: fx.entries.length + 1 });
    expect(res.manifest.modules[0]!.h1).toBe(fx.module.h1);
    const split = await fresh({ splitSize: 2048 });
    await expect(verify(join(split, `${NAME}.tar.001`))).resolves.toMatchObject({ ok: true });
    await expect(verify(split)).resolves.toMatchObject({ ok: true });
  });

  it.each([
    ['a layer blob', () => blobPath(0)],
    ['a manifest blob', () => blobPath(2)],
    ['index.json', () => 'index.json'],
    ['a module zip', () => fx.modPaths.zip],
    ['a @v/list file', () => fx.modPaths.list],
    ['import.sh', () => 'import.sh'],
  ])('names %s with one byte flipped', async (_what, path) => {
    const out = await fresh();
    const p = path();
    await flipByteInEntry(join(out, `${NAME}.tar`), p, 3);
    const err = await verify(join(out, `${NAME}.tar`)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH', details: { file: p } });
    expect((err as Error).message).toContain(p);
    expect((err as Error).message).toContain(`part ${NAME}.tar has the wrong sha256`);
    // Without parts.json only the signed file list protects the content: same verdict.
    await unlink(join(out, `${NAME}.parts.json`));
    await expect(verify(join(out, `${NAME}.tar`))).rejects.toMatchObject({ code: 'DIGEST_MISMATCH', details: { file: p } });
  });

  it('names ferry-bundle.json when one of its bytes is flipped', async () => {
    const out = await fresh();
    await flipByteInEntry(join(out, `${NAME}.tar`), 'ferry-bundle.json', 40);
    const err = await verify(join(out, `${NAME}.tar`)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SIGNATURE_INVALID', details: { file: 'ferry-bundle.json' } });
  });

  it('names a truncated tar', async () => {
    const out = await fresh();
    const tar = join(out, `${NAME}.tar`);
    await truncate(tar, 3000);
    await expect(verify(tar)).rejects.toMatchObject({ code: 'BUNDLE_INVALID', message: expect.stringContaining(`part ${NAME}.tar has 3000 bytes`) });
    await unlink(join(out, `${NAME}.parts.json`));
    await expect(verify(tar)).rejects.toMatchObject({ code: 'BUNDLE_INVALID', message: expect.stringMatching(/truncated|absent/) });
  });

  it('names a missing part', async () => {
    const out = await fresh({ splitSize: 2048 });
    const parts = (await readdir(out)).filter((f) => /\.tar\.\d{3}$/.test(f)).sort();
    await unlink(join(out, `${NAME}.tar.003`));
    await expect(verify(join(out, `${NAME}.tar.001`))).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      message: `part 3 of ${parts.length} (${NAME}.tar.003) is missing`,
    });
  });

  it('names reordered parts', async () => {
    const out = await fresh({ splitSize: 2048 });
    const p = (i: string): string => join(out, `${NAME}.tar.${i}`);
    await rename(p('002'), p('tmp'));
    await rename(p('003'), p('002'));
    await rename(p('tmp'), p('003'));
    await expect(verify(p('001'))).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      message: expect.stringContaining(`part ${NAME}.tar.002 has the wrong sha256 — reordered or damaged`),
    });
  });

  it('refuses a bundle signed by an untrusted key, and a parts.json signed by one', async () => {
    const out = join(dir, `b${n++}`);
    await mkdir(out);
    await writeFixture(out, fx, other.privateKey);
    await expect(verify(out)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID', message: expect.stringContaining(`${NAME}.parts.json`) });
    await unlink(join(out, `${NAME}.parts.json`));
    await expect(verify(out)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID', details: { file: 'ferry-bundle.json' } });

    const good = await fresh();
    const pj = join(good, `${NAME}.parts.json`);
    const { readFile } = await import('node:fs/promises');
    await writeFile(`${pj}.sig`, `${signBytes(await readFile(pj), other.privateKey)}\n`);
    await expect(verify(good)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID', details: { file: `${NAME}.parts.json` } });
  });

  it('checks each module zip against the h1 of the signed module list', async () => {
    const wrong = `h1:${'A'.repeat(43)}=`;
    const out = await fresh({ fixture: { ...fx, manifest: { ...fx.manifest, modules: [{ ...fx.module, h1: wrong }] } } });
    const err = await verify(out).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH', details: { file: fx.modPaths.zip } });
    expect((err as Error).message).toContain(`zip hash is ${await zipH1(join(dir, 'fixture.zip'))}, the signed module list says ${wrong}`);
  });

  it('checks the layout: references must be carried or required', async () => {
    const layer = fx.blobs[0]!;
    const without = fx.entries.filter((e) => e.path !== blobPath(0));
    const broken: Fixture = { ...fx, entries: without };
    const out = await fresh({ fixture: broken });
    await expect(verify(out)).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      message: expect.stringContaining(`references blob ${layer.digest}`),
    });
    const incremental: Fixture = { ...fx, entries: without, manifest: { ...fx.manifest, requires: [layer.digest] } };
    await expect(verify(await fresh({ fixture: incremental }))).resolves.toMatchObject({ ok: true });

    // A manifest carried without its media type in the file list cannot be pushed by import.sh.
    const untyped: BundleEntry[] = fx.entries.map((e) => (e.path === blobPath(2) ? bufferEntry(e.path, fx.blobs[2]!.bytes) : e));
    await expect(verify(await fresh({ fixture: { ...fx, entries: untyped } }))).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      message: expect.stringContaining('has no mediaType'),
    });

    // index.json and images must agree.
    const otherDigest = sha256Digest('other');
    const mismatched: Fixture = {
      ...fx,
      manifest: { ...fx.manifest, images: fx.manifest.images.map((im, i) => (i === 0 ? { ...im, digest: otherDigest, mediaType: MediaType.OciManifest } : im)) },
    };
    await expect(verify(await fresh({ fixture: mismatched }))).rejects.toMatchObject({ code: 'BUNDLE_INVALID', details: { file: 'index.json' } });
  });
});
