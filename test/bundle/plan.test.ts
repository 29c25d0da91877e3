// The image plan (image-plan.txt): each image's closure as the image graph gives it, written by
// ferry export and followed by import.sh, so import.sh no longer walks manifests on its own.
// Its exact lines; a required manifest with nothing below it; ferry verify and ferry import refuse
// a plan that is not the graph's, import.sh one that disagrees with images[]; and import.sh
// pushes an image whose manifest names a `subject` nothing carries (the graph does not follow
// it; a walk that grepped every digest out of the manifest asked the registry for it).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferEntry, buildIndexJson, PLAN_FILE, verifyBundle, type BundleImage } from '../../bundle/index.js';
import { importBundles } from '../../importer/index.js';
import { MediaType, sha256Digest, type Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { fixturePlan, makeFixture, makeKeys, tempDir, writeFixture, type Blob, type Fixture } from './fixtures.js';
import { runSh, type ShRun } from '../helpers/sh.js';

const NAME = 'ferry-20240101-0001';
const logger = pino({ level: 'silent' });
let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let registry: RunningRegistry;
let n = 0;

beforeAll(async () => {
  dir = await tempDir();
  keys = await makeKeys(dir);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

const path = (d: string): string => `blobs/sha256/${d.slice(7)}`;

async function written(fx: Fixture, plan: boolean | Buffer = true): Promise<string> {
  const out = join(dir, `b${n++}`);
  await mkdir(out);
  const withPlan: Fixture = Buffer.isBuffer(plan) ? { ...fx, entries: [...fx.entries, bufferEntry(PLAN_FILE, plan)] } : fx;
  await writeFixture(out, withPlan, keys.privateKey, { plan: plan === true });
  return out;
}

function importSh(args: string[], cwd: string): Promise<ShRun> {
  return runSh(join(cwd, 'import.sh'), args, cwd);
}

/** The manifest of a fixture blob, parsed. */
function manifestOf(fx: Fixture, d: string): { config: { digest: Digest }; layers: Array<{ digest: Digest }>; manifests: Array<{ digest: Digest }> } {
  return JSON.parse(fx.blobs.find((b) => b.digest === d)!.bytes.toString('utf8')) as ReturnType<typeof manifestOf>;
}

describe('the image plan', () => {
  it("lists each image's blobs, manifests children first, root and tag, in images[] order", async () => {
    const fx = await makeFixture(dir);
    const plan = (await fixturePlan(fx))!;
    const [single, index] = fx.images as [BundleImage, BundleImage];
    const s = manifestOf(fx, single.digest);
    const [amd, arm] = manifestOf(fx, index.digest).manifests.map((m) => m.digest) as [Digest, Digest];
    const lines = ['ferry image plan 1', `0 blob ${s.config.digest}`, `0 blob ${s.layers[0]!.digest}`, `0 root ${single.digest} ${MediaType.OciManifest} -`, '0 tag 1.0'];
    for (const child of [amd, arm]) {
      const c = manifestOf(fx, child);
      lines.push(`1 blob ${c.config.digest}`, `1 blob ${c.layers[0]!.digest}`, `1 manifest ${child} ${MediaType.OciManifest}`);
    }
    lines.push(`1 root ${index.digest} ${MediaType.OciIndex} -`, '1 tag latest');
    expect(plan.path).toBe(PLAN_FILE);
    expect((await readAll(plan)).toString('utf8')).toBe(`${lines.join('\n')}\n`);

    // Incremental: a manifest an earlier bundle carried stands for itself, with nothing below it.
    const incr: Fixture = { ...fx, entries: fx.entries.filter((e) => e.path !== path(amd)), manifest: { ...fx.manifest, requires: [amd] } };
    const text = (await readAll((await fixturePlan(incr))!)).toString('utf8');
    expect(text).toContain(`1 manifest ${amd} ${MediaType.OciManifest}\n`);
    expect(text).not.toContain(manifestOf(fx, amd).config.digest);
  });

  it('ferry verify and ferry import refuse a plan that is not the graph\'s; import.sh one that disagrees with images[]', async () => {
    const fx = await makeFixture(dir, { targetPrefix: 'tampered' });
    const good = (await readAll((await fixturePlan(fx))!)).toString('utf8');
    // One blob line left out: import.sh would not push it.
    const dropped = good.split('\n').filter((l, i) => !(i === 1 && l.startsWith('0 blob'))).join('\n');
    const out = await written(fx, Buffer.from(dropped));
    await expect(verifyBundle(out, { trust: keys.trust })).rejects.toMatchObject({ code: 'BUNDLE_INVALID', details: { file: PLAN_FILE } });
    const store = Store.open(join(out, 'store'));
    const ledger = Ledger.open(join(out, 'ledger.db'));
    try {
      await expect(importBundles({ bundles: [out], trust: keys.trust, store, ledger, logger })).rejects.toMatchObject({ code: 'BUNDLE_INVALID', details: { file: PLAN_FILE } });
      expect(store.tags.list()).toEqual([]);
    } finally {
      ledger.close();
      store.close();
    }

    const otherRoot = good.replace(`0 root ${fx.images[0]!.digest}`, `0 root ${sha256Digest('another root')}`);
    const sh = await importSh(['--trust', keys.pubPath, `${NAME}.tar`], await written(fx, Buffer.from(otherRoot)));
    expect(sh.code).toBe(1);
    expect(sh.stderr).toContain('image-plan.txt: line 4: the root of images[0] is');
  });

  it('import.sh pushes what the plan lists: a subject nothing carries is not asked of the registry', async () => {
    const base = await makeFixture(dir, { targetPrefix: 'subject' });
    const old = base.images[0]!;
    const json = JSON.parse(base.blobs.find((b) => b.digest === old.digest)!.bytes.toString('utf8')) as Record<string, unknown>;
    json['subject'] = { mediaType: MediaType.OciManifest, digest: sha256Digest('a subject carried nowhere'), size: 25 };
    const bytes = Buffer.from(JSON.stringify(json));
    const digest = sha256Digest(bytes);
    const images: BundleImage[] = [{ ...old, digest }, base.images[1]!];
    const blobs: Blob[] = [...base.blobs.filter((b) => b.digest !== old.digest), { digest, bytes, mediaType: MediaType.OciManifest }];
    const sizeOf = (d: string): number => blobs.find((b) => b.digest === d)!.bytes.length;
    const fx: Fixture = {
      ...base,
      images,
      blobs,
      manifest: { ...base.manifest, images },
      entries: [
        ...base.entries.filter((e) => e.path !== 'index.json' && e.path !== path(old.digest)),
        bufferEntry('index.json', buildIndexJson(images.map((im) => ({ ...im, size: sizeOf(im.digest) })))),
        bufferEntry(path(digest), bytes, MediaType.OciManifest),
      ],
    };
    const out = await written(fx);
    await expect(verifyBundle(out, { trust: keys.trust })).resolves.toMatchObject({ ok: true });
    const res = await importSh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`], out);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const client = new RegistryClient({ host: registry.host, tls: 'plain-http' });
    try {
      expect((await client.manifestHead('subject/app', '1.0'))?.digest).toBe(digest);
    } finally {
      await client.close();
    }
  });
});

async function readAll(e: { open(o: object): NodeJS.ReadableStream | Promise<NodeJS.ReadableStream> }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await e.open({})) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
