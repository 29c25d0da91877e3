// import.sh and ferry import push platform-filtered images the same way. A real two-platform
// index upstream, one image entry with all platforms (mirror/all) and one with
// `platforms: [linux/amd64]` (mirror/amd64) from the same upstream tag, synced and exported with
// the real CLI; import.sh (this source's, run with dash) into one docker-registry and ferry import
// into another tag the same digests, judged by skopeo inspect --raw: the upstream index for
// mirror/all, the filtered index the bundle carries for mirror/amd64 (the registry refuses the
// upstream index there, its arm64 child being left out on purpose).
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMPORT_SCRIPT, writeKeyPair } from '../../bundle/index.js';
import { assertBuilt, collectRun, runFerry, type FerryRun } from '../helpers/ferry-cli.js';
import { buildTestImage, pushLayout, skopeoInspect, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const execFileP = promisify(execFile);

interface RawIndex {
  readonly manifests: ReadonlyArray<{ readonly digest: string }>;
  readonly annotations?: Record<string, string>;
}

interface SignedImage {
  readonly target: string;
  readonly tag: string;
  readonly digest: string;
  readonly platforms: string[] | null;
  readonly filtered?: string;
}

describe('import.sh on platform-filtered images', () => {
  let dir: string;
  let up: RunningRegistry;
  let bySh: RunningRegistry;
  let byFerry: RunningRegistry;
  let pub: string;
  let key: string;
  let script: string;
  let v1: TestImage;

  async function ferryOk(args: string[]): Promise<string> {
    const r = await runFerry(args);
    expect(r.code, `ferry ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  }

  function importSh(tar: string, registry: RunningRegistry): Promise<FerryRun> {
    return collectRun(spawn('dash', [script, '--trust', pub, '--registry', registry.host, '--plain-http', tar], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  function config(name: string, entries: string[]): string {
    const file = join(dir, `${name}.yaml`);
    mkdirSync(join(dir, `${name}-out`), { recursive: true });
    writeFileSync(
      file,
      [
        'version: 1',
        `store: ${join(dir, `${name}-store`)}`,
        'registries:',
        `  - host: ${up.host}`,
        '    tls: plain-http',
        'images:',
        ...entries,
        'export:',
        `  signingKey: ${key}`,
        `  out: ${join(dir, `${name}-out`)}`,
        '',
      ].join('\n'),
    );
    return file;
  }

  function newestTar(name: string): string {
    const out = join(dir, `${name}-out`);
    const tars = readdirSync(out).filter((f) => f.endsWith('.tar')).sort();
    return join(out, tars[tars.length - 1]!);
  }

  async function signedImages(tar: string): Promise<SignedImage[]> {
    const { stdout } = await execFileP('tar', ['-xOf', tar, 'ferry-bundle.json'], { maxBuffer: 1 << 24 });
    return (JSON.parse(stdout) as { images: SignedImage[] }).images;
  }

  async function raw(ref: string): Promise<string> {
    return (await skopeoInspect(ref, { raw: true })) as string;
  }

  const digestOf = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

  /** Both intranet registries hold the same bytes under each tag. */
  async function sameInBoth(refs: readonly string[]): Promise<void> {
    for (const ref of refs) expect(await raw(`${bySh.host}/${ref}`), ref).toBe(await raw(`${byFerry.host}/${ref}`));
  }

  const entries = (src: string, prefix = 'mirror'): string[] => [
    '  - name: all',
    `    source: ${up.host}/${src}`,
    `    target: ${prefix}/all`,
    '  - name: amd64',
    `    source: ${up.host}/${src}`,
    '    platforms: [linux/amd64]',
    `    target: ${prefix}/amd64`,
  ];

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ferry-importsh-'));
    [up, bySh, byFerry] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
    v1 = await buildTestImage({ multiArch: true, seed: 'importsh-v1', tag: 'v1', layerSizes: [30_000, 2000] });
    await pushLayout(v1.layout.dir, 'v1', `${up.host}/lab/app:v1`);
    const k = await writeKeyPair(join(dir, 'ferry'));
    pub = k.publicKeyPath;
    key = k.privateKeyPath;
    script = join(dir, 'import.sh');
    writeFileSync(script, IMPORT_SCRIPT);
  });

  afterAll(async () => {
    await Promise.all([up?.stop(), bySh?.stop(), byFerry?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pushes the upstream index to mirror/all and the carried filtered index to mirror/amd64, as ferry import does', async () => {
    const cfg = config('split', entries('lab/app'));
    await ferryOk(['sync', '-c', cfg]);
    await ferryOk(['export', '-c', cfg]);
    const tar = newestTar('split');
    await ferryOk(['verify', tar, '--trust', pub]);
    const images = await signedImages(tar);
    const amd = images.find((i) => i.target === 'mirror/amd64')!;
    expect(images.find((i) => i.target === 'mirror/all')).toMatchObject({ digest: v1.top.digest, platforms: null });
    expect(images.find((i) => i.target === 'mirror/all')!.filtered).toBeUndefined();
    expect(amd).toMatchObject({ digest: v1.top.digest, platforms: ['linux/amd64'] });
    expect(amd.filtered).toMatch(/^sha256:[0-9a-f]{64}$/);

    const sh = await importSh(tar, bySh);
    expect(sh.stderr).toBe('');
    expect(sh.code).toBe(0);
    expect(sh.stdout).toContain(`tagged ${bySh.host}/mirror/amd64:v1 = ${amd.filtered}`);
    expect(sh.stdout).toContain('1 filtered index(es)');
    await ferryOk(['import', tar, '--trust', pub, '--registry', byFerry.host, '--plain-http', '--ledger', join(dir, 'ledger.db')]);

    await sameInBoth(['mirror/all:v1', 'mirror/amd64:v1']);
    expect(await raw(`${bySh.host}/mirror/all:v1`)).toBe(await raw(`${up.host}/lab/app:v1`));
    const filtered = await raw(`${bySh.host}/mirror/amd64:v1`);
    expect(digestOf(filtered)).toBe(amd.filtered);
    const idx = JSON.parse(filtered) as RawIndex;
    expect(idx.manifests.map((m) => m.digest)).toEqual([v1.images[0]!.digest]);
    expect(idx.annotations?.['io.ferry.filtered-from']).toBe(v1.top.digest);
    // The arm64 child travels for mirror/all but never lands in mirror/amd64.
    await expect(skopeoInspect(`${bySh.host}/mirror/amd64@${v1.images[1]!.digest}`, { raw: true })).rejects.toThrow();
    expect(await raw(`${bySh.host}/mirror/all@${v1.images[1]!.digest}`)).toBe(v1.images[1]!.bytes.toString('utf8'));
  });

  it('an incremental bundle (a new tag on the same index, a moved tag) imports the same way', async () => {
    const cfg = join(dir, 'split.yaml');
    await pushLayout(v1.layout.dir, 'v1', `${up.host}/lab/app:latest`);
    const moved = await buildTestImage({ multiArch: true, seed: 'importsh-v1-moved', tag: 'v1', layerSizes: [30_000, 4000] });
    await pushLayout(moved.layout.dir, 'v1', `${up.host}/lab/app:v1`);
    await ferryOk(['sync', '-c', cfg]);
    const exp = JSON.parse(await ferryOk(['export', '-c', cfg, '--json'])) as { parent: string | null; requires: number };
    expect(exp.parent).not.toBeNull();
    expect(exp.requires).toBeGreaterThan(0);
    const tar = newestTar('split');
    await ferryOk(['verify', tar, '--trust', pub]);

    const sh = await importSh(tar, bySh);
    expect(sh.stderr).toBe('');
    expect(sh.code).toBe(0);
    await ferryOk(['import', tar, '--trust', pub, '--registry', byFerry.host, '--plain-http', '--ledger', join(dir, 'ledger.db')]);
    await sameInBoth(['mirror/all:v1', 'mirror/all:latest', 'mirror/amd64:v1', 'mirror/amd64:latest']);
    expect(await raw(`${bySh.host}/mirror/all:v1`)).toBe(await raw(`${up.host}/lab/app:v1`));
    expect(await raw(`${bySh.host}/mirror/all:latest`)).toBe(v1.top.bytes.toString('utf8'));
    expect((JSON.parse(await raw(`${bySh.host}/mirror/amd64:v1`)) as RawIndex).annotations?.['io.ferry.filtered-from']).toBe(moved.top.digest);
    expect(await raw(`${bySh.host}/mirror/amd64:latest`)).toBe(await raw(`${bySh.host}/mirror/amd64@${(await signedImages(newestTar('split'))).find((i) => i.target === 'mirror/amd64' && i.tag === 'latest')!.filtered}`));
  });

  it('an entry added later for an index only a filtered entry carried before imports with ferry import', async () => {
    // The first bundle carries the index for mirror/amd64 only, where the registry refused it.
    const only = await buildTestImage({ multiArch: true, seed: 'importsh-later', tag: 'v1', layerSizes: [20_000] });
    await pushLayout(only.layout.dir, 'v1', `${up.host}/lab/later:v1`);
    const [all, amd] = [entries('lab/later', 'later').slice(0, 3), entries('lab/later', 'later').slice(3)];
    const first = config('later', amd);
    await ferryOk(['sync', '-c', first]);
    await ferryOk(['export', '-c', first]);
    const ledger = join(dir, 'later-ledger.db');
    await ferryOk(['import', newestTar('later'), '--trust', pub, '--registry', byFerry.host, '--plain-http', '--ledger', ledger]);
    expect((JSON.parse(await raw(`${byFerry.host}/later/amd64:v1`)) as RawIndex).annotations?.['io.ferry.filtered-from']).toBe(only.top.digest);
    // Then an entry with all platforms: its bundle must carry the index again.
    const second = config('later', [...all, ...amd]);
    await ferryOk(['sync', '-c', second]);
    await ferryOk(['export', '-c', second]);
    const tar = newestTar('later');
    await ferryOk(['verify', tar, '--trust', pub]);
    await ferryOk(['import', tar, '--trust', pub, '--registry', byFerry.host, '--plain-http', '--ledger', ledger]);
    expect(await raw(`${byFerry.host}/later/all:v1`)).toBe(only.top.bytes.toString('utf8'));
  });
});
