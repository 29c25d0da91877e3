// One upstream index in two image entries of a bundle (one keeping every platform, one
// filtered): verify checks each entry on its own terms, whatever order index.json lists them
// in, and names each by its own ref.name so layout readers (skopeo) find each one.
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIndexJson, bufferEntry, verifyBundle, type BundleImage } from '../../bundle/index.js';
import { makeFixture, makeKeys, tempDir, writeFixture, type Fixture } from './fixtures.js';

const execFileP = promisify(execFile);
const NAME = 'ferry-20240101-0001';
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

/**
 * The fixture with its 2-platform index listed a second time, filtered to linux/amd64 and sent
 * to `a/multi` (sorting before the unfiltered `mirror/multi`), optionally without the arm64
 * image manifest (neither carried nor required).
 */
async function split(opts: { dropArm: boolean; onlyFiltered?: boolean }): Promise<string> {
  const multi = fx.images[1]!;
  const filtered: BundleImage = { ...multi, target: 'a/multi', platforms: ['linux/amd64'] };
  const images = opts.onlyFiltered ? [fx.images[0]!, filtered] : [...fx.images, filtered];
  const index = fx.blobs[fx.blobs.length - 1]!;
  const single = fx.blobs[2]!;
  const arm = fx.blobs[8]!;
  const entries = fx.entries
    .filter((e) => !(opts.dropArm && e.path === `blobs/sha256/${arm.digest.slice(7)}`))
    .map((e) =>
      e.path === 'index.json'
        ? bufferEntry('index.json', buildIndexJson(images.map((im) => ({ ...im, size: (im.digest === index.digest ? index : single).bytes.length }))))
        : e,
    );
  const out = join(dir, `b${n++}`);
  await mkdir(out);
  await writeFixture(out, { ...fx, entries, images, manifest: { ...fx.manifest, images } }, keys.privateKey);
  return join(out, `${NAME}.tar`);
}

describe('verify: one upstream tag in two image entries', () => {
  it('accepts both entries when the bundle carries every child, and skopeo finds each by its own name', async () => {
    const tar = await split({ dropArm: false });
    await expect(verifyBundle(tar, { trust: keys.trust })).resolves.toMatchObject({ ok: true });
    const multi = fx.images[1]!;
    for (const name of ['mirror/multi:latest', 'a/multi:latest']) {
      const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci-archive:${tar}:${name}`]);
      expect(JSON.parse(stdout)).toMatchObject({ mediaType: multi.mediaType });
    }
    // The one image not shared keeps its upstream reference as its name.
    await execFileP('skopeo', ['inspect', '--raw', `oci-archive:${tar}:${fx.images[0]!.reference}`]);
  });

  it('refuses an unfiltered entry whose children are missing, even when a filtered entry of the same index is listed first', async () => {
    const tar = await split({ dropArm: true });
    const err = await verifyBundle(tar, { trust: keys.trust }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUNDLE_INVALID' });
    expect((err as Error).message).toContain(fx.blobs[8]!.digest);
    expect((err as Error).message).toContain('neither carried nor listed in requires');
  });

  it('accepts the filtered entry alone without the children it leaves out', async () => {
    const tar = await split({ dropArm: true, onlyFiltered: true });
    await expect(verifyBundle(tar, { trust: keys.trust })).resolves.toMatchObject({ ok: true });
  });
});
