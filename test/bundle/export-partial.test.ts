// `ferry export --only A` carries A's changes and no others; the chain remembers that per
// source, so the next plain export still carries every other source's changes (images and Go
// module versions alike), `--since` rebuilds stay exact, and the import side sees which
// sources a partial bundle carried. Real docker-registry upstream and intranet.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, openBundle, pendingChanges, writeKeyPair, type BundleManifest, type ExportResult, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { importBundles } from '../../importer/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { runFerry } from '../helpers/ferry-cli.js';
import { pushTestImage, skopeoInspect, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });
const MODULE = 'example.com/partial';

describe('export --only', () => {
  let upstream: RunningRegistry;
  let intranet: RunningRegistry;
  let dir: string;
  let cfgFile: string;
  let config: Config;
  let store: Store;
  let key: string;
  let trust: TrustedKey[];
  let a2: TestImage;
  let b2: TestImage;
  const out = (): string => join(dir, 'out');
  const tar = (r: ExportResult): string => r.files.find((f) => f.endsWith('.tar'))!;
  const manifest = async (r: ExportResult): Promise<BundleManifest> => (await openBundle(tar(r), { trust })).manifest;
  const summary = (m: BundleManifest): { images: string[]; modules: string[] } => ({
    images: m.images.map((i) => `${i.target}:${i.tag}@${i.digest}`).sort(),
    modules: m.modules.map((x) => `${x.path}@${x.version}`),
  });

  /** Records a module version of root MODULE (its files stored), as a module sync would. */
  async function putModule(version: string): Promise<void> {
    const info = await store.content.writeBlobBytes(undefined, Buffer.from(`{"Version":"${version}","Time":"2024-01-01T00:00:00Z"}`));
    const mod = await store.content.writeBlobBytes(undefined, Buffer.from(`module ${MODULE}\n`));
    store.modules.put({
      module: MODULE,
      version,
      time: '2024-01-01T00:00:00Z',
      infoDigest: info.digest,
      modDigest: mod.digest,
      zipDigest: null,
      h1Zip: null,
      h1Mod: 'h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      root: MODULE,
    });
  }

  beforeAll(async () => {
    [upstream, intranet] = await Promise.all([startRegistry(), startRegistry()]);
    dir = mkdtempSync(join(tmpdir(), 'ferry-export-partial-'));
    const k = await writeKeyPair(join(dir, 'ferry'));
    key = k.privateKeyPath;
    trust = [await loadTrustedKey(k.publicKeyPath)];
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v1', seed: 'partial-a1' });
    await pushTestImage(upstream.host, 'lab/b', { tag: 'v1', seed: 'partial-b1' });
    const text = [
      'version: 1',
      'store: ./store',
      'registries:',
      `  - host: ${upstream.host}`,
      '    tls: plain-http',
      'images:',
      '  - name: a',
      `    source: ${upstream.host}/lab/a`,
      '    target: mirror/a',
      '  - name: b',
      `    source: ${upstream.host}/lab/b`,
      '    target: mirror/b',
      'export:',
      `  signingKey: ${key}`,
      `  out: ${join(dir, 'cli-out')}`,
      '',
    ].join('\n');
    cfgFile = join(dir, 'ferry.yaml');
    writeFileSync(cfgFile, text);
    config = parseConfig(text, cfgFile);
    store = Store.open(config.store);
    expect((await runSync({ config, store, logger })).failures).toEqual([]);
  });

  afterAll(async () => {
    store?.close();
    await Promise.all([upstream?.stop(), intranet?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a partial bundle carries its sources; the next plain export carries every other change; --since rebuilds are exact', async () => {
    const full = await exportBundle({ store, outDir: out(), signingKey: key });
    expect(full.images).toBe(2);

    // Both images move upstream and a module version of another root arrives.
    a2 = await pushTestImage(upstream.host, 'lab/a', { tag: 'v1', seed: 'partial-a2' });
    b2 = await pushTestImage(upstream.host, 'lab/b', { tag: 'v1', seed: 'partial-b2' });
    expect((await runSync({ config, store, logger })).tags.changed).toBe(2);
    await putModule('v1.0.0');
    const newA = `mirror/a:v1@${a2.top.digest}`;
    const newB = `mirror/b:v1@${b2.top.digest}`;
    const mod = `${MODULE}@v1.0.0`;

    const onlyA = await exportBundle({ store, outDir: out(), signingKey: key, only: ['a'] });
    expect(onlyA).toMatchObject({ parent: full.id, sources: ['a'] });
    const mA = await manifest(onlyA);
    expect(summary(mA)).toEqual({ images: [newA], modules: [] });
    expect(mA.sources).toEqual(['a']);
    // b and the module are still due: the daemon would export them.
    expect(pendingChanges(store, store.bundles.last())).toBe(2);

    const plain = await exportBundle({ store, outDir: out(), signingKey: key });
    expect(plain).toMatchObject({ parent: onlyA.id, sources: null });
    const mPlain = await manifest(plain);
    expect(summary(mPlain)).toEqual({ images: [newB], modules: [mod] });
    expect(mPlain.sources).toBeUndefined();
    expect(pendingChanges(store, store.bundles.last())).toBe(0);
    expect((await exportBundle({ store, outDir: out(), signingKey: key })).empty).toBe(true);

    // Rebuilds: since the full bundle, the union; since the partial one, what it did not carry.
    const sinceFull = await manifest(await exportBundle({ store, outDir: out(), signingKey: key, since: full.sequence }));
    expect(summary(sinceFull)).toEqual({ images: [newA, newB], modules: [mod] });
    const sincePartial = await manifest(await exportBundle({ store, outDir: out(), signingKey: key, since: onlyA.id }));
    expect(summary(sincePartial)).toEqual({ images: [newB], modules: [mod] });

    // Inside: after the full and the partial bundle the ledger says b is as of the full one;
    // after the plain one, nothing is partial any more; both images arrive.
    const client = new RegistryClient({ host: intranet.host, tls: 'plain-http' });
    const ledger = Ledger.open(join(dir, 'ledger.db'));
    try {
      await importBundles({ bundles: [tar(full), tar(onlyA)], trust, registry: client, ledger, logger });
      const st = ledger.chainStatus()[0]!;
      expect(st).toMatchObject({ highest: 2, missing: [], allSourcesThrough: 1, partial: [{ sequence: 2, id: onlyA.id, sources: ['a'] }] });
      await importBundles({ bundles: [tar(plain)], trust, registry: client, ledger, logger });
      expect(ledger.chainStatus()[0]).toMatchObject({ highest: 3, allSourcesThrough: 3, partial: [] });
    } finally {
      ledger.close();
      await client.close();
    }
    for (const [repo, img] of [['mirror/a', a2], ['mirror/b', b2]] as const) {
      expect(((await skopeoInspect(`${intranet.host}/${repo}:v1`)) as { Digest: string }).Digest).toBe(img.top.digest);
    }
  });

  it('ferry export --only refuses a name that is not a source, and says which only it carried', async () => {
    const bad = await runFerry(['export', '-c', cfgFile, '--only', 'nosuch']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--only nosuch: no such source');
    store.close();
    try {
      const ok = await runFerry(['export', '-c', cfgFile, '--full', '--only', 'b']);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain('only b');
    } finally {
      store = Store.open(config.store);
    }
  });
});
