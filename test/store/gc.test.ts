// The store's gc on its own: the index stays bounded (old run rows go, the newest KEEP_RUNS and
// running ones stay), and content younger than minAgeMs is never collected.
import { afterEach, describe, expect, it } from 'vitest';
import { KEEP_RUNS } from '../../store/gc.js';
import { tempStore } from './helpers.js';

describe('store gc', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  it('keeps the newest finished runs and every running one', async () => {
    const { store, cleanup } = tempStore();
    cleanups.push(() => {
      store.close();
      cleanup();
    });
    const running = store.runs.start('sync');
    for (let i = 0; i < KEEP_RUNS + 5; i++) store.runs.finish(store.runs.start('sync'), { status: 'ok' });
    const dry = await store.gc({ dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, runs: 5, manifests: 0, blobs: 0 });
    const r = await store.gc();
    expect(r.runs).toBe(5);
    const left = store.runs.last(KEEP_RUNS + 10);
    expect(left).toHaveLength(KEEP_RUNS + 1);
    expect(left.some((x) => x.id === running)).toBe(true);
    expect((await store.gc()).runs).toBe(0);
  });

  it('never collects content younger than minAgeMs, and does once it is older', async () => {
    const { store, cleanup } = tempStore();
    cleanups.push(() => {
      store.close();
      cleanup();
    });
    const { digest: put } = await store.content.writeBlobBytes(undefined, Buffer.from('nobody uses me'));
    expect((await store.gc()).blobs).toBe(0);
    const later = new Date(Date.now() + 2 * 3_600_000);
    const r = await store.gc({ now: () => later });
    expect(r).toMatchObject({ blobs: 1, bytes: 14 });
    expect(store.content.hasBlob(put)).toBe(false);
    expect((await store.fsck()).problems).toEqual([]);
  });

  it('compacts only the covered journal entries a later one supersedes, and never without coverage', async () => {
    const { store, cleanup } = tempStore();
    cleanups.push(() => {
      store.close();
      cleanup();
    });
    // One module version recorded twice (its .mod changed): two entries, the first superseded.
    for (const text of ['module example.com/m\n', 'module example.com/m // again\n']) {
      const info = await store.content.writeBlobBytes(undefined, Buffer.from('{"Version":"v1.0.0"}'));
      const mod = await store.content.writeBlobBytes(undefined, Buffer.from(text));
      store.modules.put({ module: 'example.com/m', version: 'v1.0.0', time: '2024-01-01T00:00:00Z', infoDigest: info.digest, modDigest: mod.digest, zipDigest: null, h1Zip: null, h1Mod: 'h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', root: 'example.com/m' });
    }
    const [first, second] = store.journal.since(0).map((e) => e.seq);
    expect(second).toBeDefined();
    expect((await store.gc()).journal).toBe(0);
    // Covered below the first entry: nothing; covered past both: the first goes, the newest stays.
    expect((await store.gc({ journalCovered: () => first! - 1 })).journal).toBe(0);
    expect((await store.gc({ dryRun: true, journalCovered: () => second! })).journal).toBe(1);
    expect(store.journal.since(0)).toHaveLength(2);
    expect((await store.gc({ journalCovered: (source) => (source === 'example.com/m' ? second! : 0) })).journal).toBe(1);
    expect(store.journal.since(0).map((e) => e.seq)).toEqual([second]);
    expect(store.journal.currentSeq()).toBe(second);
    expect((await store.fsck()).problems).toEqual([]);
  });
});
