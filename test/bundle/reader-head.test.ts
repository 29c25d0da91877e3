// entries() reads ferry-bundle.json and its signature again and compares them, as they stream,
// with the bytes openBundle verified: a change in between is refused before any entry is yielded.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBundle } from '../../bundle/index.js';
import { makeFixture, makeKeys, tarDataOffset, tempDir, writeFixture, type Fixture } from './fixtures.js';

let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let fx: Fixture;

beforeAll(async () => {
  dir = await tempDir();
  keys = await makeKeys(dir);
  fx = await makeFixture(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function bundleIn(name: string): Promise<string> {
  const out = join(dir, name);
  await mkdir(out);
  await writeFixture(out, fx, keys.privateKey);
  return join(out, 'ferry-20240101-0001.tar');
}

async function entryPaths(tar: string): Promise<string[]> {
  const b = await openBundle(tar, { trust: keys.trust, verifyParts: false });
  const paths: string[] = [];
  for await (const e of b.entries()) paths.push(e.path);
  return paths;
}

describe('openBundle entries(): the head read again', () => {
  it('streams every entry when nothing changed, more than once', async () => {
    const tar = await bundleIn('same');
    const b = await openBundle(tar, { trust: keys.trust });
    for (let pass = 0; pass < 2; pass++) {
      const paths: string[] = [];
      for await (const e of b.entries()) paths.push(e.path);
      expect(paths).toEqual(b.manifest.files.map((f) => f.path));
    }
    expect(await entryPaths(tar)).toHaveLength(b.manifest.files.length);
  });

  it('refuses a manifest byte changed after the bundle was opened, before yielding anything', async () => {
    const tar = await bundleIn('flipped');
    const b = await openBundle(tar, { trust: keys.trust, verifyParts: false });
    const bytes = await readFile(tar);
    const at = tarDataOffset(bytes, 'ferry-bundle.json') + 20;
    bytes[at] = bytes[at] === 0x20 ? 0x09 : 0x20;
    await writeFile(tar, bytes);
    const yielded: string[] = [];
    const run = async (): Promise<void> => {
      for await (const e of b.entries()) yielded.push(e.path);
    };
    await expect(run()).rejects.toMatchObject({ code: 'BUNDLE_INVALID', message: expect.stringContaining('ferry-bundle.json changed since the bundle was opened') });
    expect(yielded).toEqual([]);
  });

  it('refuses a bundle re-signed after it was opened (same manifest, another signature)', async () => {
    const tar = await bundleIn('resigned');
    const b = await openBundle(tar, { trust: keys.trust, verifyParts: false });
    // ECDSA signatures differ from one signing to the next: the same manifest signed again.
    const again = await bundleIn('resigned-again');
    await writeFile(tar, await readFile(again));
    const run = async (): Promise<void> => {
      for await (const e of b.entries()) void e;
    };
    await expect(run()).rejects.toMatchObject({ code: 'BUNDLE_INVALID', message: expect.stringContaining('changed since the bundle was opened') });
  });
});
