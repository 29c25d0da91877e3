// `ferry import --oci-dir DIR` end to end through the CLI (`node dist/ferry.mjs`): images pushed to
// an upstream docker-registry, `ferry sync`, `ferry export` (a full bundle, then an incremental
// one), imported into an OCI image layout; skopeo is the judge (`oci:DIR:NAME`, `oci-archive:` of
// a tar of it, copies to a fresh docker-registry, digests compared). Also: the chain merged into
// one layout, idempotency, refusals, and a kill -9 at a chosen blob (test/helpers/kill-at-blob.mjs)
// whose re-run completes. Requires a build (`npm run build`; `npm test` builds first).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../oci/index.js';
import { assertBuilt, runFerry } from '../helpers/ferry-cli.js';
import { OciLayoutBuilder, pushLayout, skopeoInspect, type Image, type Index } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const execFileP = promisify(execFile);
const KILL_AT_BLOB = fileURLToPath(new URL('../helpers/kill-at-blob.mjs', import.meta.url));

async function skopeo(args: string[]): Promise<Buffer> {
  const { stdout } = await execFileP('skopeo', args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** The digest of the manifest skopeo reads at `ref` (exact bytes). */
async function rawDigest(ref: string): Promise<string> {
  return sha256Digest(await skopeo(['inspect', '--raw', ...(ref.startsWith('docker://') ? ['--tls-verify=false'] : []), ref]));
}

/** Every file of a layout (Ferry's own `.ferry-*` files aside) with size and mtime: what "nothing changed" compares. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel))) {
      if (name.startsWith('.ferry-')) continue;
      const p = rel ? `${rel}/${name}` : name;
      const st = statSync(join(dir, p));
      if (st.isDirectory()) walk(p);
      else out[p] = `${st.size}@${st.mtimeMs}`;
    }
  };
  walk('');
  return out;
}

/** Every blob file hashes to its name: no partial or wrong blob at a final path. */
function expectBlobsIntact(dir: string): string[] {
  const names = readdirSync(join(dir, 'blobs', 'sha256'));
  for (const n of names) expect(createHash('sha256').update(readFileSync(join(dir, 'blobs', 'sha256', n))).digest('hex'), n).toBe(n);
  return names;
}

interface IndexJson {
  manifests: Array<{ digest: string; mediaType: string; annotations: Record<string, string> }>;
}

describe('ferry import --oci-dir', () => {
  let dir: string;
  let up: RunningRegistry;
  let judge: RunningRegistry;
  let layout: OciLayoutBuilder;
  let idx: Index;
  let tool1: Image;
  let tool2: Image;
  let v2: Image;
  let dbIdx: Index;
  let dbAmd: Image;
  let b1: string;
  let b2: string;
  let pub: string;
  const name = (repo: string, tag: string): string => `${up.host}/${repo}:${tag}`;

  const ferry = async (args: string[], env?: Record<string, string>): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> =>
    runFerry(args, env ? { env } : {});
  const importInto = (oci: string, bundle: string, ...extra: string[]): ReturnType<typeof ferry> => ferry(['import', bundle, '--trust', pub, '--oci-dir', oci, ...extra]);

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-ocidir-'));
    [up, judge] = await Promise.all([startRegistry(), startRegistry()]);
    layout = await OciLayoutBuilder.create();
    const base = await layout.addLayer({ size: 96 * 1024, seed: 'base' });
    const amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    await layout.tag('v1', idx);
    await pushLayout(layout.dir, 'v1', `${up.host}/team/app:v1`);
    tool1 = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'tool-1' })] });
    await layout.tag('tool', tool1);
    await pushLayout(layout.dir, 'tool', `${up.host}/team/tool:1.0`);
    dbAmd = await layout.addImage({ layers: [await layout.addLayer({ size: 3000, seed: 'db-amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    const dbArm = await layout.addImage({ layers: [await layout.addLayer({ size: 3000, seed: 'db-arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    dbIdx = await layout.addIndex([dbAmd, dbArm]);
    await layout.tag('db', dbIdx);
    await pushLayout(layout.dir, 'db', `${up.host}/team/db:15`);

    mkdirSync(join(dir, 'keys'));
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
        `images:\n  - source: ${up.host}/team/app\n  - source: ${up.host}/team/tool\n  - source: ${up.host}/team/db\n    platforms: [linux/amd64]\n` +
        `export:\n  signingKey: ${join(dir, 'keys', 'ferry.key')}\n  out: ${join(dir, 'out')}\n`,
    );
    pub = join(dir, 'keys', 'ferry.pub');
    for (const args of [['keygen', '--out', join(dir, 'keys', 'ferry')], ['sync', '-c', cfg], ['export', '-c', cfg]]) {
      const r = await ferry(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    // The second bundle: a new tag sharing the base layer, and tool:1.0 moved to a new image.
    v2 = await layout.addImage({ layers: [base, await layout.addLayer({ size: 5000, seed: 'v2' })] });
    await layout.tag('v2', v2);
    await pushLayout(layout.dir, 'v2', `${up.host}/team/app:v2`);
    tool2 = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'tool-2' })] });
    await layout.tag('tool', tool2);
    await pushLayout(layout.dir, 'tool', `${up.host}/team/tool:1.0`);
    for (const args of [['sync', '-c', cfg], ['export', '-c', cfg]]) {
      const r = await ferry(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    const tars = readdirSync(join(dir, 'out')).filter((f) => f.endsWith('.tar')).sort();
    expect(tars).toHaveLength(2);
    [b1, b2] = tars.map((t) => join(dir, 'out', t)) as [string, string];
  });

  afterAll(async () => {
    await Promise.all([up?.stop(), judge?.stop()]);
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('one layout, the whole chain', () => {
    let oci: string;

    beforeAll(() => {
      oci = join(dir, 'images');
    });

    it('writes a complete layout: skopeo reads every name with upstream digests and copies them to a registry unchanged', async () => {
      const r = await importInto(oci, b1, '--json');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { ledger: string; bundles: Array<{ status: string; targets: Array<{ kind: string; tags: Array<{ repository: string; tag: string; digest: string }> }>; filtered: Array<{ filteredFrom: string }> }> };
      expect(out.bundles[0]!.status).toBe('imported');
      expect(out.ledger).toBe(join(oci, '.ferry-ledger.db'));
      expect(out.bundles[0]!.targets[0]!.kind).toBe('oci-dir');

      expect(JSON.parse(readFileSync(join(oci, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
      const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as IndexJson;
      const names = index.manifests.map((d) => d.annotations['org.opencontainers.image.ref.name']).sort();
      expect(names).toEqual([name('team/app', 'v1'), name('team/db', '15'), name('team/tool', '1.0')]);
      for (const d of index.manifests) expect(d.annotations['io.containerd.image.name']).toBe(d.annotations['org.opencontainers.image.ref.name']);

      // skopeo reads each name; the bytes are upstream's.
      expect(await rawDigest(`oci:${oci}:${name('team/app', 'v1')}`)).toBe(idx.digest);
      expect(await rawDigest(`oci:${oci}:${name('team/tool', '1.0')}`)).toBe(tool1.digest);
      const inspected = JSON.parse((await skopeo(['inspect', `oci:${oci}:${name('team/tool', '1.0')}`])).toString()) as { Digest: string; Layers: string[] };
      expect(inspected.Digest).toBe(tool1.digest);
      expect(inspected.Layers).toEqual(tool1.layers.map((l) => l.digest));

      // Copied on to a fresh registry, every platform, digests preserved.
      await skopeo(['copy', '--all', '--preserve-digests', '--quiet', '--dest-tls-verify=false', `oci:${oci}:${name('team/app', 'v1')}`, `docker://${judge.host}/team/app:v1`]);
      await skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${oci}:${name('team/tool', '1.0')}`, `docker://${judge.host}/team/tool:1.0`]);
      expect(await rawDigest(`docker://${judge.host}/team/app:v1`)).toBe(idx.digest);
      expect(await rawDigest(`docker://${judge.host}/team/tool:1.0`)).toBe(tool1.digest);
      const child = (await skopeoInspect(`${judge.host}/team/app@${idx.manifests[1]!.digest}`, { raw: true })) as string;
      expect(sha256Digest(Buffer.from(child))).toBe(idx.manifests[1]!.digest);

      // The platform-filtered image: its name is the index of the kept platform, complete in the layout.
      const db = JSON.parse((await skopeo(['inspect', '--raw', `oci:${oci}:${name('team/db', '15')}`])).toString()) as { manifests: Array<{ digest: string }>; annotations: Record<string, string> };
      expect(db.manifests.map((m) => m.digest)).toEqual([dbAmd.digest]);
      expect(db.annotations['io.ferry.filtered-from']).toBe(dbIdx.digest);
      expect(out.bundles[0]!.filtered).toEqual([expect.objectContaining({ filteredFrom: dbIdx.digest })]);
      await skopeo(['copy', '--all', '--preserve-digests', '--quiet', '--dest-tls-verify=false', `oci:${oci}:${name('team/db', '15')}`, `docker://${judge.host}/team/db:15`]);
      expect(await rawDigest(`docker://${judge.host}/team/db@${dbAmd.digest}`)).toBe(dbAmd.digest);
      expectBlobsIntact(oci);

      // A tar of it without Ferry's own files is an oci-archive (what ctr image import and k3s take).
      const tar = join(dir, 'images.tar');
      await execFileP('tar', ['-C', oci, "--exclude=.ferry-*", '-cf', tar, '.']);
      const listed = (await execFileP('tar', ['-tf', tar])).stdout.split('\n').filter(Boolean);
      expect(listed.filter((p) => p.includes('.ferry-'))).toEqual([]);
      expect(listed).toEqual(expect.arrayContaining(['./oci-layout', './index.json']));
      expect(await rawDigest(`oci-archive:${tar}:${name('team/app', 'v1')}`)).toBe(idx.digest);
    });

    it('the same bundle again changes nothing and says so', async () => {
      const before = snapshot(oci);
      const r = await importInto(oci, b1);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/already imported into oci-dir:.*nothing to do/);
      expect(snapshot(oci)).toEqual(before);
    });

    it('the incremental bundle merges in: earlier names stay readable, new ones appear, a moved tag is replaced', async () => {
      const blobsBefore = new Set(readdirSync(join(oci, 'blobs', 'sha256')));
      const r = await importInto(oci, b2, '--json');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { bundles: Array<{ status: string; targets: Array<{ blobs: { uploaded: number } }> }> };
      expect(out.bundles[0]!.status).toBe('imported');
      const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as IndexJson;
      const byName = new Map<string, string[]>();
      for (const d of index.manifests) byName.set(d.annotations['org.opencontainers.image.ref.name']!, [...(byName.get(d.annotations['org.opencontainers.image.ref.name']!) ?? []), d.digest]);
      expect([...byName.keys()].sort()).toEqual([name('team/app', 'v1'), name('team/app', 'v2'), name('team/db', '15'), name('team/tool', '1.0')]);
      expect(byName.get(name('team/tool', '1.0'))).toEqual([tool2.digest]);

      expect(await rawDigest(`oci:${oci}:${name('team/app', 'v1')}`)).toBe(idx.digest);
      expect(await rawDigest(`oci:${oci}:${name('team/app', 'v2')}`)).toBe(v2.digest);
      expect(await rawDigest(`oci:${oci}:${name('team/tool', '1.0')}`)).toBe(tool2.digest);
      await skopeo(['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${oci}:${name('team/app', 'v2')}`, `docker://${judge.host}/team/app:v2`]);
      expect(await rawDigest(`docker://${judge.host}/team/app:v2`)).toBe(v2.digest);
      // The base layer came with the first bundle: the second carried only what was new.
      const added = readdirSync(join(oci, 'blobs', 'sha256')).filter((b) => !blobsBefore.has(b));
      expect(added).not.toContain(v2.layers[0]!.digest.slice(7));
      expect(added).toContain(v2.layers[1]!.digest.slice(7));
      expectBlobsIntact(oci);

      const ledger = await ferry(['ledger', '--oci-dir', oci]);
      expect(ledger.code, ledger.stderr).toBe(0);
      expect(ledger.stdout).toContain('chain complete');
    });
  });

  it('--dry-run lists the blobs and names it would write and creates nothing', async () => {
    const oci = join(dir, 'dry');
    const r = await importInto(oci, b1, '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`set-tag       ${name('team/app', 'v1')} → ${idx.digest}`);
    expect(r.stdout).toMatch(/store-blob +\S+\/dry\/blobs\/sha256\/[0-9a-f]{64}/);
    expect(existsSync(oci)).toBe(false);
  });

  it('an incremental bundle into a layout without its parent is refused, naming it; --force without the earlier blobs lists them', async () => {
    const oci = join(dir, 'gap');
    const r = await importInto(oci, b2);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/continues bundle sequence 1/);
    const forced = await importInto(oci, b2, '--force', '--json');
    expect(forced.code).toBe(1);
    expect((JSON.parse(forced.stdout) as { code: string }).code).toBe('REQUIRES_MISSING');
    expect(existsSync(join(oci, 'index.json'))).toBe(false);
    expect(readdirSync(oci).filter((n) => !n.startsWith('.ferry-'))).toEqual([]);
  });

  it('a directory that is not an OCI layout is refused with exit 2, and nothing is created in it', async () => {
    const notLayout = join(dir, 'home');
    mkdirSync(notLayout);
    writeFileSync(join(notLayout, 'thesis.txt'), 'important\n');
    const r = await importInto(notLayout, b1, '--json');
    expect(r.code).toBe(2);
    expect((JSON.parse(r.stdout) as { code: string }).code).toBe('LAYOUT_INVALID');
    expect(r.stderr).toContain('thesis.txt');
    expect(readdirSync(notLayout)).toEqual(['thesis.txt']);
    const plain = await importInto(notLayout, b1);
    expect(plain.code).toBe(2);
  });

  it('goes together with --registry in one run', async () => {
    const oci = join(dir, 'both');
    const r = await importInto(oci, b1, '--registry', judge.host, '--plain-http', '--prefix', 'both', '--ledger', join(dir, 'both.db'));
    expect(r.code, r.stderr).toBe(0);
    expect(await rawDigest(`oci:${oci}:${name('team/app', 'v1')}`)).toBe(idx.digest);
    expect(await rawDigest(`docker://${judge.host}/both/team/app:v1`)).toBe(idx.digest);
  });

  for (const when of ['after', 'before'] as const) {
    it(`killed (kill -9) ${when} a blob lands: no partial blob, no name; the re-run completes`, async () => {
      const oci = join(dir, `killed-${when}`);
      const r1 = await ferry(['import', b1, '--trust', pub, '--oci-dir', oci], {
        NODE_OPTIONS: `--import ${KILL_AT_BLOB}`,
        FERRY_TEST_KILL_AT_BLOB: '3',
        FERRY_TEST_KILL_WHEN: when,
      });
      expect(r1.signal).toBe('SIGKILL');
      // Names move last: none yet. Every blob at its final path is whole.
      expect((JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as IndexJson).manifests).toEqual([]);
      expect(expectBlobsIntact(oci)).toHaveLength(when === 'after' ? 3 : 2);
      if (when === 'before') expect(readdirSync(join(oci, '.ferry-tmp')).length).toBe(1);
      expect(existsSync(join(oci, '.ferry-lock'))).toBe(true);

      const r2 = await importInto(oci, b1, '--json');
      expect(r2.code, r2.stderr).toBe(0);
      const t = (JSON.parse(r2.stdout) as { bundles: Array<{ targets: Array<{ blobs: { existing: number } }> }> }).bundles[0]!.targets[0]!;
      expect(t.blobs.existing).toBe(when === 'after' ? 3 : 2);
      expect(await rawDigest(`oci:${oci}:${name('team/app', 'v1')}`)).toBe(idx.digest);
      expect(await rawDigest(`oci:${oci}:${name('team/tool', '1.0')}`)).toBe(tool1.digest);
      expectBlobsIntact(oci);
      expect(existsSync(join(oci, '.ferry-tmp'))).toBe(false);
      expect(existsSync(join(oci, '.ferry-lock'))).toBe(false);
    });
  }
});
