// ferry import --oci-dir in process, on the synthetic bundle of the bundle tests: the layout it
// writes (skopeo as the judge), idempotency, a blob write that fails and the re-run, the refusals.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutRefNames, type TrustedKey } from '../../bundle/index.js';
import { isFerryError } from '../../errors/index.js';
import { importBundles, OciLayout } from '../../importer/index.js';
import { MediaType, sha256Digest } from '../../oci/index.js';
import { Ledger } from '../../store/index.js';
import { makeFixture, makeKeys, tempDir, writeFixture, type Fixture } from '../bundle/fixtures.js';

const execFileP = promisify(execFile);

async function skopeoRaw(ref: string): Promise<Buffer> {
  const { stdout } = await execFileP('skopeo', ['inspect', '--raw', ref], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** Every file under DIR (relative), with its size and mtime: what "nothing changed" compares. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel))) {
      const p = rel ? `${rel}/${name}` : name;
      if (name.startsWith('.ferry-')) continue;
      const st = statSync(join(dir, p));
      if (st.isDirectory()) walk(p);
      else out[p] = `${st.size}@${st.mtimeMs}`;
    }
  };
  walk('');
  return out;
}

describe('ferry import --oci-dir', () => {
  let dir: string;
  let fx: Fixture;
  let trust: TrustedKey[];
  let tar: string;
  let names: string[];

  beforeAll(async () => {
    dir = await tempDir('ferry-ocidir-test-');
    const keys = await makeKeys(dir);
    trust = keys.trust;
    fx = await makeFixture(dir);
    mkdirSync(join(dir, 'out'));
    const w = await writeFixture(join(dir, 'out'), fx, keys.privateKey, { plan: true });
    tar = w.files.find((f) => f.endsWith('.tar'))!;
    names = layoutRefNames(fx.images);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes a complete OCI image layout that skopeo reads by the names the bundle gives', async () => {
    const oci = join(dir, 'layout');
    const ledger = Ledger.open(join(dir, 'l1.db'));
    try {
      const r = await importBundles({ bundles: [tar], trust, ociDir: oci, ledger });
      expect(r.bundles[0]!.status).toBe('imported');
      const t = r.bundles[0]!.targets[0]!;
      expect(t.kind).toBe('oci-dir');
      expect([...t.tags].map((x) => `${x.repository}:${x.tag}`).sort()).toEqual([...names].sort());
      expect(r.clientConfig.notes.join('\n')).toContain(`oci:${oci}:NAME`);
    } finally {
      ledger.close();
    }
    expect(JSON.parse(readFileSync(join(oci, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as { schemaVersion: number; mediaType: string; manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(MediaType.OciIndex);
    for (const [i, im] of fx.images.entries()) {
      const entry = index.manifests.find((d) => d.annotations['org.opencontainers.image.ref.name'] === names[i]);
      expect(entry?.digest).toBe(im.digest);
      expect(entry?.annotations['io.containerd.image.name']).toBe(names[i]);
      expect(entry?.annotations['io.ferry.target']).toBe(im.target);
      expect(sha256Digest(await skopeoRaw(`oci:${oci}:${names[i]!}`))).toBe(im.digest);
    }
    // Every blob the bundle carries is there under its digest; Ferry's files are apart from the layout.
    for (const b of fx.blobs) expect(sha256Digest(readFileSync(join(oci, 'blobs', 'sha256', b.digest.slice(7))))).toBe(b.digest);
    expect(readdirSync(oci).filter((n) => !n.startsWith('.ferry-')).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('importing the same bundle again changes nothing and says so, with or without the ledger', async () => {
    const oci = join(dir, 'again');
    const ledger = Ledger.open(join(oci, '.ferry-ledger.db'));
    try {
      expect((await importBundles({ bundles: [tar], trust, ociDir: oci, ledger })).bundles[0]!.status).toBe('imported');
      const before = snapshot(oci);
      const indexBefore = readFileSync(join(oci, 'index.json'));
      const again = await importBundles({ bundles: [tar], trust, ociDir: oci, ledger });
      expect(again.bundles[0]!.status).toBe('already-imported');
      expect(again.bundles[0]!.alreadyAt).toEqual([`oci-dir:${oci}`]);
      // A ledger that never saw it: the layout already holds every blob, manifest and name.
      const other = Ledger.open(join(dir, 'other.db'));
      try {
        const r = await importBundles({ bundles: [tar], trust, ociDir: oci, ledger: other });
        const t = r.bundles[0]!.targets[0]!;
        expect(t.blobs.uploaded).toBe(0);
        expect(t.manifests).toBe(0);
        expect([...t.tags].every((x) => x.skipped === true)).toBe(true);
      } finally {
        other.close();
      }
      expect(snapshot(oci)).toEqual(before);
      expect(readFileSync(join(oci, 'index.json')).equals(indexBefore)).toBe(true);
    } finally {
      ledger.close();
    }
  });

  it('a blob write that fails leaves index.json as it was and removes what it wrote; the re-run completes', async () => {
    const oci = join(dir, 'fails');
    const ledger = Ledger.open(join(oci, '.ferry-ledger.db'));
    try {
      // The last layer in tar order cannot be renamed into place: a directory is in the way.
      const layers = fx.blobs.filter((b) => b.mediaType === undefined).map((b) => b.digest).sort();
      const last = layers[layers.length - 1]!;
      const first = layers[0]!;
      const obstacle = join(oci, 'blobs', 'sha256', last.slice(7));
      mkdirSync(join(obstacle, 'x'), { recursive: true });
      writeFileSync(join(oci, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      writeFileSync(join(oci, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
      let err: unknown;
      try {
        await importBundles({ bundles: [tar], trust, ociDir: oci, ledger });
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'LAYOUT_IO')).toBe(true);
      expect((err as Error).message).toContain(obstacle);
      expect((err as Error).message).toMatch(/were removed/);
      expect(readFileSync(join(oci, 'index.json'), 'utf8')).toBe('{"schemaVersion":2,"manifests":[]}');
      expect(existsSync(join(oci, 'blobs', 'sha256', first.slice(7)))).toBe(false);
      expect(existsSync(join(oci, '.ferry-tmp'))).toBe(false);
      expect(existsSync(join(oci, '.ferry-lock'))).toBe(false);
      expect(ledger.bundleRecords(fx.manifest.id).map((b) => b.result)).toEqual(['failed']);

      rmSync(obstacle, { recursive: true });
      const r = await importBundles({ bundles: [tar], trust, ociDir: oci, ledger });
      expect(r.bundles[0]!.status).toBe('imported');
      for (const [i, im] of fx.images.entries()) expect(sha256Digest(await skopeoRaw(`oci:${oci}:${names[i]!}`))).toBe(im.digest);
    } finally {
      ledger.close();
    }
  });

  it('a failure at commit (index.json damaged meanwhile) ends with the lock released and the layout error named', async () => {
    const oci = join(dir, 'commit-fails');
    const ledger = Ledger.open(join(dir, 'commit-fails.db'));
    try {
      let damaged = false;
      let err: unknown;
      try {
        await importBundles({
          bundles: [tar],
          trust,
          ociDir: oci,
          ledger,
          onEvent: (e) => {
            if (e.type === 'entry' && !damaged) {
              damaged = true;
              writeFileSync(join(oci, 'index.json'), 'not json');
            }
          },
        });
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'LAYOUT_INVALID')).toBe(true);
      expect((err as Error).message).not.toContain('cleaning up failed');
      expect(existsSync(join(oci, '.ferry-lock'))).toBe(false);
      expect(ledger.bundleRecords(fx.manifest.id).map((b) => b.result)).toEqual(['failed']);
    } finally {
      ledger.close();
    }
  });

  it('a damaged manifest already in the layout is written again, not trusted', async () => {
    const oci = join(dir, 'damaged');
    const single = fx.images[0]!;
    const good = fx.blobs.find((b) => b.digest === single.digest)!.bytes;
    mkdirSync(join(oci, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(oci, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const bad = Buffer.from(good);
    bad[10] = bad[10]! ^ 1;
    writeFileSync(join(oci, 'blobs', 'sha256', single.digest.slice(7)), bad);
    const ledger = Ledger.open(join(dir, 'damaged.db'));
    try {
      await importBundles({ bundles: [tar], trust, ociDir: oci, ledger });
    } finally {
      ledger.close();
    }
    expect(readFileSync(join(oci, 'blobs', 'sha256', single.digest.slice(7)))).toEqual(good);
    expect(sha256Digest(await skopeoRaw(`oci:${oci}:${names[0]!}`))).toBe(single.digest);
  });

  it('refuses a directory that is not an OCI layout, or is another target too, before anything is written', async () => {
    const notLayout = join(dir, 'not-a-layout');
    mkdirSync(notLayout);
    writeFileSync(join(notLayout, 'notes.txt'), 'mine\n');
    const ledger = Ledger.open(join(dir, 'refusals.db'));
    try {
      const refused = async (opts: Partial<Parameters<typeof importBundles>[0]>): Promise<unknown> => {
        try {
          await importBundles({ bundles: [tar], trust, ledger, ...opts });
        } catch (e) {
          return e;
        }
        return undefined;
      };
      const e1 = await refused({ ociDir: notLayout });
      expect(isFerryError(e1, 'LAYOUT_INVALID')).toBe(true);
      expect((e1 as Error).message).toContain('notes.txt');
      expect(readdirSync(notLayout)).toEqual(['notes.txt']);
      const aFile = join(notLayout, 'notes.txt');
      expect(isFerryError(await refused({ ociDir: aFile }), 'LAYOUT_INVALID')).toBe(true);
      const bad = join(dir, 'bad-version');
      mkdirSync(bad);
      writeFileSync(join(bad, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
      expect(isFerryError(await refused({ ociDir: bad }), 'LAYOUT_INVALID')).toBe(true);
      writeFileSync(join(bad, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      writeFileSync(join(bad, 'index.json'), '{"schemaVersion":2');
      expect(isFerryError(await refused({ ociDir: bad }), 'LAYOUT_INVALID')).toBe(true);
      const same = join(dir, 'same');
      expect(isFerryError(await refused({ ociDir: same, gomodDir: same }), 'USAGE')).toBe(true);
      expect(existsSync(same)).toBe(false);
      expect(ledger.bundleRecords(fx.manifest.id)).toEqual([]);
    } finally {
      ledger.close();
    }
  });

  it('a second writer of the same layout is refused with LAYOUT_BUSY, having written nothing', async () => {
    const oci = join(dir, 'busy');
    const holder = await OciLayout.openForWrite(oci);
    const ledger = Ledger.open(join(dir, 'busy.db'));
    try {
      let err: unknown;
      try {
        await importBundles({ bundles: [tar], trust, ociDir: oci, ledger });
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'LAYOUT_BUSY')).toBe(true);
      expect(readdirSync(join(oci, 'blobs', 'sha256'))).toEqual([]);
    } finally {
      await holder.close();
    }
    try {
      expect((await importBundles({ bundles: [tar], trust, ociDir: oci, ledger })).bundles[0]!.status).toBe('imported');
    } finally {
      ledger.close();
    }
  });
});
