// An export reads the journal and the changed tags a page at a time (ExportOptions.pageSize):
// whatever the page size, and with pages ending just before, on and just after the last row,
// the bundle names the same images in the same order, requires the same digests, prunes the
// same tags and settles two entries sending one tag to one target the same way. Real
// docker-registry upstream.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, openBundle, writeKeyPair, type ExportResult, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });

describe('export in pages', () => {
  let upstream: RunningRegistry;
  let dir: string;
  let store: Store;
  let key: string;
  let trust: TrustedKey[];

  beforeAll(async () => {
    upstream = await startRegistry();
    dir = mkdtempSync(join(tmpdir(), 'ferry-export-pages-'));
    const k = await writeKeyPair(join(dir, 'ferry'));
    key = k.privateKeyPath;
    trust = [await loadTrustedKey(k.publicKeyPath)];
  });
  afterAll(async () => {
    store?.close();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Entry a mirrors every t* tag into mirror/a (pruning what leaves its filter); entry b sends
  // t2 to the same target, so one of the two rows of mirror/a:t2 is left out.
  const configWith = (include: string): Config =>
    parseConfig(
      [
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
        '  - name: b',
        `    source: ${upstream.host}/lab/a`,
        '    target: mirror/a',
        '    tags: {include: ["t2"]}',
        '',
      ].join('\n'),
      join(dir, 'ferry.yaml'),
    );
  const sync = async (config: Config): Promise<void> => {
    expect((await runSync({ config, store, logger })).failures).toEqual([]);
  };
  const what = async (r: ExportResult): Promise<unknown> => {
    const m = (await openBundle(r.files.find((f) => f.endsWith('.tar'))!, { trust })).manifest;
    return { images: m.images, requires: m.requires, pruned: m.pruned ?? [], counts: [r.images, r.blobs, r.requires, r.pruned] };
  };
  let n = 0;
  const exportWith = async (pageSize: number | undefined, more: { full?: boolean; since?: number } = {}): Promise<unknown> =>
    what(await exportBundle({ store, outDir: join(dir, `out-${++n}`), signingKey: key, ...more, ...(pageSize !== undefined ? { pageSize } : {}) }));

  it('carries the same bundle whatever the page size, at and around the page edges', async () => {
    for (let i = 0; i < 5; i++) await pushTestImage(upstream.host, 'lab/a', { tag: `t${i}`, seed: `pages-${i % 2}` });
    const config = configWith('["t*"]');
    store = Store.open(config.store);
    await sync(config);
    // Six changed rows (a: t0..t4, b: t2), five images once mirror/a:t2 is settled.
    const full = await exportWith(undefined, { full: true });
    expect((full as { images: unknown[] }).images).toHaveLength(5);
    for (const size of [1, 2, 5, 6, 7]) expect(await exportWith(size, { full: true }), `page size ${size}`).toEqual(full);
    const base = store.bundles.last()!.sequence;

    // t0 moves, t4 leaves a's filter (a removal), t2 moves under both entries.
    await pushTestImage(upstream.host, 'lab/a', { tag: 't0', seed: 'pages-moved' });
    await pushTestImage(upstream.host, 'lab/a', { tag: 't2', seed: 'pages-moved-2' });
    await sync(configWith('["t0", "t1", "t2", "t3"]'));
    const next = (await exportWith(undefined, { since: base })) as { images: Array<{ tag: string }>; pruned: Array<{ tag: string }> };
    expect(next.images.map((i) => i.tag)).toEqual(['t0', 't2']);
    expect(next.pruned.map((p) => p.tag)).toEqual(['t4']);
    for (const size of [1, 2, 3, 4]) expect(await exportWith(size, { since: base }), `page size ${size}`).toEqual(next);
  });
});
