// Pruning across the gap on real parts: an upstream docker-registry whose tags are deleted, a
// store synced from it with `prune: true` on one entry and not on another, bundles carrying the
// removal, and ferry import deleting at an intranet docker-registry (deletes enabled) only the
// tags Ferry placed there; skopeo list-tags is the judge. --no-prune and --dry-run, and import.sh
// saying that it deletes nothing.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, verifyBundle, writeKeyPair, type ExportResult, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { importBundles } from '../../importer/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { pushTestImage, type TestImage } from '../helpers/images.js';
import { runSh } from '../helpers/sh.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const run = promisify(execFile);
const logger = pino({ level: 'silent' });

async function listTags(host: string, repo: string): Promise<string[]> {
  const r = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${host}/${repo}`]);
  return [...(JSON.parse(r.stdout) as { Tags: string[] }).Tags].sort();
}

async function deleteUpstream(host: string, repo: string, img: TestImage): Promise<void> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${img.top.digest}`, { method: 'DELETE' });
  expect(res.status).toBe(202);
}

describe('prune: true across the gap', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let other: RunningRegistry;
  let client: RegistryClient;
  let otherClient: RegistryClient;
  let trust: TrustedKey[];
  let pubPath: string;
  let keyPath: string;
  let store: Store;
  let cfg: Config;
  const imgs: Record<string, TestImage> = {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-prune-'));
    [up, intra, other] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
    client = new RegistryClient({ host: intra.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    otherClient = new RegistryClient({ host: other.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    const keys = await writeKeyPair(join(dir, 'signer'));
    keyPath = keys.privateKeyPath;
    pubPath = keys.publicKeyPath;
    trust = [await loadTrustedKey(pubPath)];
    for (const t of ['v1', 'v2', 'v3']) imgs[`app:${t}`] = await pushTestImage(up.host, 'team/app', { tag: t, seed: `prune-app-${t}` });
    imgs['keep:v1'] = await pushTestImage(up.host, 'team/keep', { tag: 'v1', seed: 'prune-keep-v1' });
    imgs['keep:v2'] = await pushTestImage(up.host, 'team/keep', { tag: 'v2', seed: 'prune-keep-v2' });
    const text =
      `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
      `images:\n  - name: app\n    source: ${up.host}/team/app\n    target: mirror/app\n    prune: true\n` +
      `  - name: keep\n    source: ${up.host}/team/keep\n    target: mirror/keep\n`;
    const file = join(dir, 'ferry.yaml');
    writeFileSync(file, text);
    cfg = parseConfig(text, file);
    expect(cfg.images.map((i) => i.prune)).toEqual([true, false]);
    store = Store.open(cfg.store);
  });

  afterAll(async () => {
    store?.close();
    await client?.close();
    await otherClient?.close();
    await Promise.all([up?.stop(), intra?.stop(), other?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function exportN(n: number): Promise<{ r: ExportResult; tar: string; out: string }> {
    const out = join(dir, `out-${n}`);
    const r = await exportBundle({ store, outDir: out, signingKey: keyPath, logger });
    return { r, tar: join(out, `${r.name}.tar`), out };
  }

  it('a tag deleted upstream disappears from the intranet registry with prune: true, and stays without it', async () => {
    const s1 = await runSync({ config: cfg, store, logger });
    expect(s1.failures).toEqual([]);
    expect(s1.pruned).toEqual([]);
    const b1 = await exportN(1);

    const ledger = Ledger.open(join(dir, 'ledger.db'));
    const otherLedger = Ledger.open(join(dir, 'other-ledger.db'));
    try {
      await importBundles({ bundles: [b1.tar], trust, registry: client, ledger, logger });
      await importBundles({ bundles: [b1.tar], trust, registry: otherClient, ledger: otherLedger, logger });
      expect(await listTags(intra.host, 'mirror/app')).toEqual(['v1', 'v2', 'v3']);
      // Tags Ferry did not place: one of someone else's image, one naming the manifest v2 names.
      await pushTestImage(intra.host, 'mirror/app', { tag: 'local', seed: 'prune-local' });
      await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${intra.host}/mirror/app:v2`, `docker://${intra.host}/mirror/app:mine`]);

      // Upstream: app v1 and v2 and keep v1 are deleted.
      await deleteUpstream(up.host, 'team/app', imgs['app:v1']!);
      await deleteUpstream(up.host, 'team/app', imgs['app:v2']!);
      await deleteUpstream(up.host, 'team/keep', imgs['keep:v1']!);
      const s2 = await runSync({ config: cfg, store, logger });
      expect(s2.failures).toEqual([]);
      expect(s2.pruned).toEqual([{ source: 'app', tag: 'v1' }, { source: 'app', tag: 'v2' }]);
      expect(store.tags.list({ source: 'app' }).map((t) => t.tag)).toEqual(['v3']);
      // Without prune the tag stays live in the store.
      expect(store.tags.list({ source: 'keep' }).map((t) => t.tag)).toEqual(['v1', 'v2']);
      // A second pass has nothing more to prune.
      expect((await runSync({ config: cfg, store, logger })).pruned).toEqual([]);

      const b2 = await exportN(2);
      expect(b2.r).toMatchObject({ images: 0, pruned: 2, empty: false });
      const v = await verifyBundle(b2.tar, { trust });
      expect(v.manifest.pruned).toEqual([
        { target: 'mirror/app', tag: 'v1', digest: imgs['app:v1']!.top.digest },
        { target: 'mirror/app', tag: 'v2', digest: imgs['app:v2']!.top.digest },
      ]);

      // --dry-run shows it and changes nothing.
      const dry = await importBundles({ bundles: [b2.tar], trust, registry: client, ledger, dryRun: true, logger });
      expect(dry.bundles[0]!.plan!.filter((p) => p.action === 'delete-tag').map((p) => p.what)).toEqual([
        `mirror/app:v1 (${imgs['app:v1']!.top.digest}): removed upstream`,
        `mirror/app:v2 (${imgs['app:v2']!.top.digest}): removed upstream`,
      ]);
      expect(await listTags(intra.host, 'mirror/app')).toEqual(['local', 'mine', 'v1', 'v2', 'v3']);

      // --no-prune (the other registry) skips it.
      const kept = await importBundles({ bundles: [b2.tar], trust, registry: otherClient, ledger: otherLedger, prune: false, logger });
      expect(kept.bundles[0]!.targets[0]!.pruned).toBeUndefined();
      expect(await listTags(other.host, 'mirror/app')).toEqual(['v1', 'v2', 'v3']);

      // The import deletes v1 (distribution deletes no tags: its manifest, which only v1 names),
      // keeps v2 (someone else's "mine" names the same manifest), and leaves others' tags alone.
      const r = await importBundles({ bundles: [b2.tar], trust, registry: client, ledger, logger });
      const pruned = r.bundles[0]!.targets[0]!.pruned!;
      expect(pruned.map((p) => [p.tag, p.action])).toEqual([
        ['v1', 'manifest'],
        ['v2', 'kept'],
      ]);
      expect(pruned[1]!.detail).toMatch(/mine \(not Ferry's\) also names/);
      expect(await listTags(intra.host, 'mirror/app')).toEqual(['local', 'mine', 'v2', 'v3']);
      expect(await listTags(intra.host, 'mirror/keep')).toEqual(['v1', 'v2']);
      // The ledger forgets what was deleted, and still knows the tag it kept.
      expect(ledger.getItem(`registry:${intra.host}`, 'tag', 'mirror/app', 'v1')).toBeUndefined();
      expect(ledger.getItem(`registry:${intra.host}`, 'tag', 'mirror/app', 'v2')?.digest).toBe(imgs['app:v2']!.top.digest);

      // import.sh says it deletes nothing, naming what was removed.
      const res = await runSh(join(b2.out, 'import.sh'), ['--trust', pubPath, '--registry', other.host, '--plain-http', b2.tar]);
      expect(res.code).toBe(0);
      expect(res.stderr).toContain('import.sh: warning: this bundle removes 2 tag(s) that left upstream; import.sh deletes nothing');
      expect(res.stderr).toContain('import.sh: warning:   removed upstream: mirror/app:v1\n');
      expect(await listTags(other.host, 'mirror/app')).toEqual(['v1', 'v2', 'v3']);
    } finally {
      ledger.close();
      otherLedger.close();
    }
  });

  it('a tag that no longer matches the filters is pruned too, and a pruned tag that comes back is carried again', async () => {
    const text = `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${up.host}/team/app\n    target: mirror/app\n    prune: true\n    tags:\n      exclude: [v3]\n  - name: keep\n    source: ${up.host}/team/keep\n    target: mirror/keep\n`;
    const c2 = parseConfig(text, cfg.file);
    await pushTestImage(up.host, 'team/app', { tag: 'v1', seed: 'prune-app-v1' });
    const s = await runSync({ config: c2, store, logger });
    expect(s.pruned).toEqual([{ source: 'app', tag: 'v3' }]);
    const b = await exportN(3);
    const v = await verifyBundle(b.tar, { trust });
    expect(v.manifest.images.map((i) => `${i.target}:${i.tag}`)).toEqual(['mirror/app:v1']);
    expect(v.manifest.pruned).toEqual([{ target: 'mirror/app', tag: 'v3', digest: imgs['app:v3']!.top.digest }]);
  });
});
