// ferry import of many tags over few distinct images, against real docker-registries: each
// manifest goes up once by digest, each tag is one PUT of those bytes (the only way the
// distribution API sets a tag), nothing is asked per tag, every tag lands in the ledger; a later
// bundle moves only the tags the ledger does not hold at their digest (read a page at a time).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, writeKeyPair } from '../../bundle/index.js';
import { parseConfig } from '../../config/index.js';
import { importBundles } from '../../importer/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { OciLayoutBuilder, pushLayout, type Image, type Index } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });
const REPO = 'team/many';

/** PUTs `bytes` under `tag` (the registry already holds everything it names). */
async function putTag(host: string, tag: string, bytes: Buffer, mediaType: string): Promise<void> {
  const res = await fetch(`http://${host}/v2/${REPO}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
  if (res.status !== 201) throw new Error(`PUT ${tag}: HTTP ${res.status} ${await res.text()}`);
}

describe('ferry import, many tags over few images', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let layout: OciLayoutBuilder;
  let idx: Index;
  let amd: Image;
  let arm: Image;
  let solo: Image;
  let cfgText: string;
  let keys: { privateKeyPath: string; publicKeyPath: string };
  // More than one page of ledger reads (256 tags) for the index's tags.
  const idxTags = Array.from({ length: 300 }, (_, i) => `i${i}`);
  const soloTags = Array.from({ length: 9 }, (_, i) => `s${i}`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-import-many-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    layout = await OciLayoutBuilder.create();
    const base = await layout.addLayer({ size: 4096, seed: 'many-base' });
    amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'many-amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'many-arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    solo = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'many-solo' })] });
    await layout.tag('i0', idx);
    await layout.tag('s0', solo);
    await pushLayout(layout.dir, 'i0', `${up.host}/${REPO}:i0`);
    await pushLayout(layout.dir, 's0', `${up.host}/${REPO}:s0`);
    for (const t of idxTags.slice(1)) await putTag(up.host, t, idx.bytes, idx.mediaType);
    for (const t of soloTags.slice(1)) await putTag(up.host, t, solo.bytes, solo.mediaType);
  });

  afterAll(async () => {
    await Promise.all([up?.stop(), intra?.stop()]);
    await layout?.remove();
    if (dir && !process.env['KEEP']) rmSync(dir, { recursive: true, force: true });
  });

  it('puts each manifest once by digest, each tag once, asks nothing per tag, records every tag', async () => {
    const cfgFile = join(dir, 'ferry.yaml');
    const text = (cfgText = `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\nimages:\n  - name: many\n    source: ${up.host}/${REPO}\n`);
    writeFileSync(cfgFile, text);
    const store = Store.open(parseConfig(text, cfgFile).store);
    keys = await writeKeyPair(join(dir, 'signer'));
    let bundle: string;
    try {
      const s = await runSync({ config: parseConfig(text, cfgFile), store, logger });
      expect(s.failures).toEqual([]);
      const b = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: keys.privateKeyPath, logger });
      expect(b.images).toBe(idxTags.length + soloTags.length);
      bundle = join(dir, 'out', `${b.name}.tar`);
    } finally {
      store.close();
    }
    const client = new RegistryClient({ host: intra.host, tls: 'plain-http' });
    const ledger = Ledger.open(join(dir, 'ledger.db'));
    try {
      intra.clearRequests();
      const r = await importBundles({ bundles: [bundle], trust: [await loadTrustedKey(keys.publicKeyPath)], registry: client, ledger, logger });
      expect(r.bundles[0]!.status).toBe('imported');
      await intra.flushLog();
      const reqs = intra.requests().filter((q) => q.path.startsWith(`/v2/${REPO}/`));
      const manifestPuts = reqs.filter((q) => q.method === 'PUT' && q.path.includes('/manifests/')).map((q) => q.path.slice(`/v2/${REPO}/manifests/`.length));
      const byDigest = manifestPuts.filter((p) => p.startsWith('sha256:')).sort();
      expect(byDigest).toEqual([idx.digest, amd.digest, arm.digest, solo.digest].sort());
      const byTag = manifestPuts.filter((p) => !p.startsWith('sha256:')).sort();
      expect(byTag).toEqual([...idxTags, ...soloTags].sort());
      // Nothing is read or asked under a tag: a tag costs its PUT only.
      expect(reqs.filter((q) => q.method !== 'PUT' && /\/manifests\/(?!sha256:)/.test(q.path))).toEqual([]);
      // Each blob is asked for at most once in the repository.
      const blobAsks = reqs.filter((q) => q.method === 'HEAD' && q.path.includes('/blobs/sha256:')).map((q) => q.path);
      expect(blobAsks.length).toBe(new Set(blobAsks).size);
      const tags = (await (await fetch(`http://${intra.host}/v2/${REPO}/tags/list`)).json()) as { tags: string[] };
      expect([...tags.tags].sort()).toEqual([...idxTags, ...soloTags].sort());
      const recorded = ledger.bundleItems(r.bundles[0]!.id).filter((i) => i.kind === 'tag');
      expect(recorded.map((i) => i.key).sort()).toEqual([...idxTags, ...soloTags].sort());
      expect(recorded.every((i) => i.state === 'done' && i.digest === (i.key.startsWith('i') ? idx.digest : solo.digest))).toBe(true);
    } finally {
      ledger.close();
      await client.close();
    }
  });

  it('a later bundle moves only the tags the ledger does not hold at their digest, across ledger pages', async () => {
    const store = Store.open(parseConfig(cfgText, join(dir, 'ferry.yaml')).store);
    let bundle: string;
    try {
      const b = await exportBundle({ store, outDir: join(dir, 'out2'), signingKey: keys.privateKeyPath, full: true, logger });
      bundle = join(dir, 'out2', `${b.name}.tar`);
    } finally {
      store.close();
    }
    const client = new RegistryClient({ host: intra.host, tls: 'plain-http' });
    const ledger = Ledger.open(join(dir, 'ledger.db'));
    const target = `registry:${intra.host}`;
    try {
      // On both sides of a page boundary: forgotten, recorded at another digest, recorded as failed.
      for (const t of ['i10', 'i256', 's3']) ledger.forgetItem(target, 'tag', REPO, t);
      const item = { target, kind: 'tag', scope: REPO, bundleId: 'earlier', detail: null } as const;
      ledger.recordItem({ ...item, key: 'i255', digest: solo.digest, state: 'done' });
      ledger.recordItem({ ...item, key: 'i299', digest: idx.digest, state: 'failed' });
      const moved = ['i10', 'i255', 'i256', 'i299', 's3'];
      intra.clearRequests();
      const r = await importBundles({ bundles: [bundle], trust: [await loadTrustedKey(keys.publicKeyPath)], registry: client, ledger, logger });
      expect(r.bundles[0]!.status).toBe('imported');
      await intra.flushLog();
      const byTag = intra
        .requests()
        .filter((q) => q.method === 'PUT' && q.path.startsWith(`/v2/${REPO}/manifests/`))
        .map((q) => q.path.slice(`/v2/${REPO}/manifests/`.length))
        .filter((p) => !p.startsWith('sha256:'));
      expect(byTag.sort()).toEqual([...moved].sort());
      const reported = [...r.bundles[0]!.targets[0]!.tags];
      expect(reported.length).toBe(idxTags.length + soloTags.length);
      expect(reported.filter((t) => t.skipped !== true).map((t) => t.tag).sort()).toEqual([...moved].sort());
      expect(reported.every((t) => t.digest === (t.tag.startsWith('i') ? idx.digest : solo.digest))).toBe(true);
      const recorded = ledger.bundleItems(r.bundles[0]!.id).filter((i) => i.kind === 'tag');
      expect(recorded.map((i) => i.key).sort()).toEqual([...moved].sort());
      expect(ledger.getItem(target, 'tag', REPO, 'i255')?.digest).toBe(idx.digest);
      expect(ledger.getItem(target, 'tag', REPO, 'i299')?.state).toBe('done');
    } finally {
      ledger.close();
      await client.close();
    }
  });
});
