// One upstream repository in several image entries, each with its own platforms, tags and
// target (a common way to split a repository): every entry syncs its own tags, the bundle
// carries the union of their closures with one images[] entry per (entry, tag), ferry verify
// accepts it, and ferry import gives each target exactly its entry's content. Real
// docker-registry upstream (a real two-platform index) and intranet, judged by skopeo.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKeyPair } from '../../bundle/index.js';
import { Store } from '../../store/index.js';
import { assertBuilt, runFerry } from '../helpers/ferry-cli.js';
import { buildTestImage, pushLayout, skopeoInspect, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const execFileP = promisify(execFile);

interface RawIndex {
  readonly manifests: ReadonlyArray<{ readonly digest: string; readonly platform?: { readonly architecture: string } }>;
  readonly annotations?: Record<string, string>;
}

describe('one upstream repository in several image entries', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let cfg: string;
  let pub: string;
  let v1: TestImage;
  let v2: TestImage;
  const out = (): string => join(dir, 'out');

  async function ferryOk(args: string[]): Promise<string> {
    const r = await runFerry(args);
    expect(r.stderr + r.stdout, `ferry ${args.join(' ')}`).not.toMatch(/^ferry: (?!warning)/m);
    expect(r.code, `ferry ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  }

  async function newestTar(): Promise<string> {
    const tars = readdirSync(out()).filter((f) => f.endsWith('.tar')).sort();
    return join(out(), tars[tars.length - 1]!);
  }

  async function raw(ref: string): Promise<RawIndex & Record<string, unknown>> {
    return JSON.parse((await skopeoInspect(ref, { raw: true })) as string) as RawIndex & Record<string, unknown>;
  }

  async function tags(repo: string): Promise<string[]> {
    const res = await fetch(`http://${intra.host}/v2/${repo}/tags/list`);
    if (res.status === 404) return [];
    return [...(((await res.json()) as { tags?: string[] | null }).tags ?? [])].sort();
  }

  /** Each target holds exactly what its entry selects. */
  async function checkTargets(img1: TestImage): Promise<void> {
    const [amd, arm] = img1.images;
    // All platforms: the upstream index itself, byte for byte.
    expect(await skopeoInspect(`${intra.host}/mirror/all:v1`, { raw: true })).toBe(await skopeoInspect(`${up.host}/lab/app:v1`, { raw: true }));
    expect(await skopeoInspect(`${intra.host}/mirror/all:v2`, { raw: true })).toBe(await skopeoInspect(`${up.host}/lab/app:v2`, { raw: true }));
    expect(await tags('mirror/all')).toEqual(['v1', 'v2']);
    // linux/amd64 only: an index holding the amd64 child alone, naming the upstream index.
    const filtered = await raw(`${intra.host}/mirror/amd64:v1`);
    expect(filtered.manifests.map((m) => m.digest)).toEqual([amd!.digest]);
    expect(filtered.annotations?.['io.ferry.filtered-from']).toBe(img1.top.digest);
    await expect(skopeoInspect(`${intra.host}/mirror/amd64@${arm!.digest}`, { raw: true })).rejects.toThrow();
    expect(await skopeoInspect(`${intra.host}/mirror/amd64@${amd!.digest}`, { raw: true })).toBe(img1.images[0]!.bytes.toString('utf8'));
    expect(await tags('mirror/amd64')).toEqual(['v1', 'v2']);
    // include: [v1] with its own target: v1 only, all platforms.
    expect(await skopeoInspect(`${intra.host}/mirror/v1:v1`, { raw: true })).toBe(await skopeoInspect(`${up.host}/lab/app:v1`, { raw: true }));
    expect(await tags('mirror/v1')).toEqual(['v1']);
  }

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ferry-split-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    v1 = await buildTestImage({ multiArch: true, seed: 'split-v1', tag: 'v1', layerSizes: [40_000, 3000] });
    await pushLayout(v1.layout.dir, 'v1', `${up.host}/lab/app:v1`);
    v2 = await buildTestImage({ multiArch: true, seed: 'split-v2', tag: 'v2', layerSizes: [40_000, 2000] });
    await pushLayout(v2.layout.dir, 'v2', `${up.host}/lab/app:v2`);
    const k = await writeKeyPair(join(dir, 'ferry'));
    pub = k.publicKeyPath;
    mkdirSync(out());
    cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      [
        'version: 1',
        `store: ${join(dir, 'store')}`,
        'registries:',
        `  - host: ${up.host}`,
        '    tls: plain-http',
        'images:',
        '  - name: all',
        `    source: ${up.host}/lab/app`,
        '    target: mirror/all',
        '  - name: amd64',
        `    source: ${up.host}/lab/app`,
        '    platforms: [linux/amd64]',
        '    target: mirror/amd64',
        '  - name: v1only',
        `    source: ${up.host}/lab/app`,
        '    tags: { include: [v1] }',
        '    target: mirror/v1',
        'export:',
        `  signingKey: ${k.privateKeyPath}`,
        `  out: ${out()}`,
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await Promise.all([up?.stop(), intra?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('each entry syncs, exports, verifies and imports with its own platforms, tags and target', async () => {
    const sync = JSON.parse(await ferryOk(['sync', '-c', cfg, '--json'])) as { ok: boolean; tags: { changed: number }; failures: unknown[] };
    expect(sync).toMatchObject({ ok: true, tags: { changed: 5 }, failures: [] });
    const status = JSON.parse(await ferryOk(['status', '-c', cfg, '--json'])) as { tags: Array<{ source: string; tag: string; target: string; keptDigests: string[] }> };
    expect(status.tags.map((t) => [t.source, t.tag, t.target, t.keptDigests.length]).sort()).toEqual([
      ['all', 'v1', 'mirror/all', 2],
      ['all', 'v2', 'mirror/all', 2],
      ['amd64', 'v1', 'mirror/amd64', 1],
      ['amd64', 'v2', 'mirror/amd64', 1],
      ['v1only', 'v1', 'mirror/v1', 2],
    ]);
    // Nothing changed: a second pass moves no tag of any entry.
    const again = JSON.parse(await ferryOk(['sync', '-c', cfg, '--json'])) as { tags: { changed: number; unchanged: number } };
    expect(again.tags).toMatchObject({ changed: 0, unchanged: 5 });

    await ferryOk(['export', '-c', cfg]);
    const tar = await newestTar();
    const verified = await ferryOk(['verify', tar, '--trust', pub]);
    expect(verified).toContain(': ok');
    // One images[] entry per (entry, tag), each with its own target and platforms.
    const { stdout: text } = await execFileP('tar', ['-xOf', tar, 'ferry-bundle.json'], { maxBuffer: 1 << 24 });
    const m = JSON.parse(text) as { images: Array<{ target: string; tag: string; digest: string; platforms: string[] | null }> };
    const byTarget = [...m.images].sort((x, y) => (`${x.target}:${x.tag}` < `${y.target}:${y.tag}` ? -1 : 1));
    expect(byTarget.map((i) => [i.target, i.tag, i.digest, i.platforms])).toEqual([
      ['mirror/all', 'v1', v1.top.digest, null],
      ['mirror/all', 'v2', v2.top.digest, null],
      ['mirror/amd64', 'v1', v1.top.digest, ['linux/amd64']],
      ['mirror/amd64', 'v2', v2.top.digest, ['linux/amd64']],
      ['mirror/v1', 'v1', v1.top.digest, null],
    ]);
    // An OCI layout reader finds each by its own name (the upstream reference is shared).
    for (const [name, want] of [
      ['mirror/all:v1', v1.top.digest],
      ['mirror/amd64:v1', v1.top.digest],
      ['mirror/v1:v1', v1.top.digest],
      ['mirror/amd64:v2', v2.top.digest],
    ] as const) {
      const got = JSON.parse((await execFileP('skopeo', ['inspect', `oci-archive:${tar}:${name}`], { maxBuffer: 1 << 24 })).stdout) as { Digest: string };
      expect(got.Digest, name).toBe(want);
    }

    await ferryOk(['import', tar, '--trust', pub, '--registry', intra.host, '--plain-http', '--ledger', join(dir, 'ledger.db')]);
    await checkTargets(v1);

    // Into a store (the next hop): each image keeps its own row, platforms and kept children.
    const inner = join(dir, 'inner');
    await ferryOk(['import', tar, '--trust', pub, '--store', inner]);
    const store = Store.open(inner, { readonly: true });
    try {
      const src = `${up.host}/lab/app`;
      expect(store.tags.list().map((t) => [t.source, t.target, t.tag, t.keptDigests.length])).toEqual([
        [`${src}#mirror/all`, 'mirror/all', 'v1', 2],
        [`${src}#mirror/amd64`, 'mirror/amd64', 'v1', 1],
        [`${src}#mirror/v1`, 'mirror/v1', 'v1', 2],
        [`${src}#mirror/all`, 'mirror/all', 'v2', 2],
        [`${src}#mirror/amd64`, 'mirror/amd64', 'v2', 1],
      ]);
    } finally {
      store.close();
    }
  });

  it('a tag that moves upstream moves in every entry, incrementally', async () => {
    const moved = await buildTestImage({ multiArch: true, seed: 'split-v1-moved', tag: 'v1', layerSizes: [40_000, 5000] });
    await pushLayout(moved.layout.dir, 'v1', `${up.host}/lab/app:v1`);
    const sync = JSON.parse(await ferryOk(['sync', '-c', cfg, '--json'])) as { tags: { changed: number; unchanged: number } };
    expect(sync.tags).toMatchObject({ changed: 3, unchanged: 2 });
    const exp = JSON.parse(await ferryOk(['export', '-c', cfg, '--json'])) as { images: number; parent: string | null };
    expect(exp.images).toBe(3);
    expect(exp.parent).not.toBeNull();
    const tar = await newestTar();
    await ferryOk(['verify', tar, '--trust', pub]);
    await ferryOk(['import', tar, '--trust', pub, '--registry', intra.host, '--plain-http', '--ledger', join(dir, 'ledger.db')]);
    await checkTargets(moved);
  });
});
