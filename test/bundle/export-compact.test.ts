// `ferry gc` compacts the journal entries every confirmed bundle covers: a tag's superseded
// entries and its covered removal go, each live tag's newest entry stays, an export from the
// newest confirmed bundle carries exactly what it carried before and a full one the same images.
// Real
// docker-registry upstream.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confirmedCoverage } from '../../bundle/export.js';
import { exportBundle, loadTrustedKey, openBundle, writeKeyPair, type ExportResult, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });

describe('journal compaction by gc', () => {
  let upstream: RunningRegistry;
  let dir: string;
  let config: Config;
  let store: Store;
  let key: string;
  let trust: TrustedKey[];

  beforeAll(async () => {
    upstream = await startRegistry();
    dir = mkdtempSync(join(tmpdir(), 'ferry-export-compact-'));
    const k = await writeKeyPair(join(dir, 'ferry'));
    key = k.privateKeyPath;
    trust = [await loadTrustedKey(k.publicKeyPath)];
    config = configWith('["v*"]');
    store = Store.open(config.store);
  });
  const configWith = (include: string): Config => {
    const text = [
      'version: 1',
      `store: ${join(dir, 'store')}`,
      'registries:',
      `  - host: ${upstream.host}`,
      '    tls: plain-http',
      'images:',
      '  - name: a',
      `    source: ${upstream.host}/lab/a`,
      '    target: mirror/a',
      `    tags: {include: ${include}}`,
      '    prune: true',
      '',
    ].join('\n');
    return parseConfig(text, join(dir, 'ferry.yaml'));
  };

  afterAll(async () => {
    store?.close();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sync = async (): Promise<void> => {
    expect((await runSync({ config, store, logger })).failures).toEqual([]);
  };
  const summary = async (r: ExportResult): Promise<{ images: string[]; pruned: string[] }> => {
    const m = (await openBundle(r.files.find((f) => f.endsWith('.tar'))!, { trust })).manifest;
    return { images: m.images.map((i) => `${i.target}:${i.tag}@${i.digest}`).sort(), pruned: (m.pruned ?? []).map((p) => `${p.target}:${p.tag}@${p.digest}`).sort() };
  };
  const out = (): string => join(dir, 'out');
  const seqs = (): number[] => store.journal.since(0).map((e) => e.seq);

  it('keeps what an export from the newest confirmed bundle or a full export reads, and compacts the rest', async () => {
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v1', seed: 'compact-1' });
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v2', seed: 'compact-2' });
    await sync();
    const first = await exportBundle({ store, outDir: out(), signingKey: key });
    // v1 moves twice and v2 leaves the filter (a removal); then a second bundle.
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v1', seed: 'compact-1b' });
    await sync();
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v1', seed: 'compact-1c' });
    await pushTestImage(upstream.host, 'lab/a', { tag: 'x2', seed: 'compact-2' });
    config = configWith('["v1", "v3"]');
    await sync();
    const second = await exportBundle({ store, outDir: out(), signingKey: key });
    // After it: v3 arrives and v1 moves again (not covered by any bundle).
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v3', seed: 'compact-3' });
    await pushTestImage(upstream.host, 'lab/a', { tag: 'v1', seed: 'compact-1d' });
    await sync();
    const journalBefore = seqs();
    expect(journalBefore).toHaveLength(7); // v1, v2, v1, v1, v2 removed, v3, v1

    const before = { sinceFirst: await summary(await exportBundle({ store, outDir: out(), signingKey: key, since: first.id })), sinceSecond: await summary(await exportBundle({ store, outDir: out(), signingKey: key, since: second.id })), full: await summary(await exportBundle({ store, outDir: out(), signingKey: key, full: true })) };
    expect(before.sinceFirst.pruned).toEqual([`mirror/a:v2@${store.journal.since(0).find((e) => e.tag === 'v2')!.digest}`]);

    // No confirmed bundle: nothing compacted.
    expect(confirmedCoverage(store.bundles, new Set())).toBeUndefined();
    // The first confirmed: the entries at or below its seqTo that later ones supersede go (v1's
    // and v2's first), in a dry run only counted.
    const dry = await store.gc({ dryRun: true, journalCovered: confirmedCoverage(store.bundles, new Set([first.id]))! });
    expect(dry.journal).toBe(2);
    expect(seqs()).toEqual(journalBefore);
    // The second confirmed too (the newest decides): every entry up to it goes (each superseded later, or a removal).
    const r = await store.gc({ journalCovered: confirmedCoverage(store.bundles, new Set([first.id, second.id]))! });
    expect(r.journal).toBe(5);
    expect(seqs()).toEqual([journalBefore[5], journalBefore[6]]);
    expect(store.journal.currentSeq()).toBe(journalBefore[6]);
    expect((await store.gc({ journalCovered: confirmedCoverage(store.bundles, new Set([second.id]))! })).journal).toBe(0);

    // The export from the newest confirmed bundle carries what it did.
    expect(await summary(await exportBundle({ store, outDir: out(), signingKey: key, since: second.id }))).toEqual(before.sinceSecond);
    // A full export carries the same images; the removal of v2, which the confirmed bundles
    // carried inside, is no longer repeated in it.
    expect(await summary(await exportBundle({ store, outDir: out(), signingKey: key, full: true }))).toEqual({ images: before.full.images, pruned: [] });
    expect(before.full.pruned).toHaveLength(1);
    expect((await store.fsck()).problems).toEqual([]);
  });
});
