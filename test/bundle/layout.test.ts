// The OCI layout inside a bundle is readable by skopeo 1.9 as oci-archive:BUNDLE.tar:<full ref>.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIndexJson, ociLayoutFile } from '../../bundle/index.js';
import { MediaType, sha256Digest } from '../../oci/index.js';
import { makeFixture, makeKeys, tempDir, writeFixture, type Fixture } from './fixtures.js';

const run = promisify(execFile);
let dir: string;
let fx: Fixture;
let tar: string;

beforeAll(async () => {
  dir = await tempDir();
  const keys = await makeKeys(dir);
  fx = await makeFixture(dir);
  const out = join(dir, 'out');
  await mkdir(out);
  await writeFixture(out, fx, keys.privateKey);
  tar = join(out, 'ferry-20240101-0001.tar');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('OCI layout in a bundle', () => {
  it('index.json has one descriptor per tag with the full reference and the target', () => {
    const text = buildIndexJson([
      { reference: 'b.io/x:1', target: 't/x', digest: sha256Digest('1'), mediaType: MediaType.OciManifest, size: 1, platforms: null },
      { reference: 'a.io/y:2', target: 't/y', digest: sha256Digest('2'), mediaType: MediaType.OciIndex, size: 2, platforms: ['linux/arm64', 'linux/amd64'] },
    ]).toString();
    const lines = text.split('\n');
    expect(lines[0]).toBe('{');
    expect(lines[4]).toBe(
      `    {"mediaType":"${MediaType.OciIndex}","digest":"${sha256Digest('2')}","size":2,"annotations":{"io.containerd.image.name":"a.io/y:2","io.ferry.platforms":"linux/amd64,linux/arm64","io.ferry.target":"t/y","org.opencontainers.image.ref.name":"a.io/y:2"}},`,
    );
    expect(JSON.parse(text)).toMatchObject({ schemaVersion: 2, mediaType: MediaType.OciIndex });
    expect(ociLayoutFile().toString()).toBe('{"imageLayoutVersion":"1.0.0"}');
  });

  it('skopeo inspects each image by its full upstream reference and reports the right digest', async () => {
    for (const im of fx.images) {
      const raw = await run('skopeo', ['inspect', '--raw', `oci-archive:${tar}:${im.reference}`], { encoding: 'buffer' });
      expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(im.digest);
      const info = JSON.parse((await run('skopeo', ['inspect', `oci-archive:${tar}:${im.reference}`])).stdout) as { Digest: string; Os: string };
      expect(info.Digest).toBe(im.digest);
      expect(info.Os).toBe('linux');
    }
  });

  it('skopeo copies the 2-platform image out of the bundle, verifying every blob', async () => {
    const dest = join(dir, 'copy');
    await run('skopeo', ['copy', '--quiet', '--all', `oci-archive:${tar}:${fx.images[1]!.reference}`, `oci:${dest}:multi`]);
    const raw = await run('skopeo', ['inspect', '--raw', `oci:${dest}:multi`], { encoding: 'buffer' });
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(fx.images[1]!.digest);
  });
});
