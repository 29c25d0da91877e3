// `ferry gc` through the CLI against a store synced from a real docker-registry: a source removed
// from the configuration is listed (--dry-run changes nothing), then its tags are dropped and its
// space returned; a kill -9 between the index commit and the file deletions (at a chosen file,
// test/helpers/kill-at-rm.mjs) leaves a store fsck passes, and gc run again completes the work.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { runFerry } from '../helpers/ferry-cli.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const KILL_AT_RM = fileURLToPath(new URL('../helpers/kill-at-rm.mjs', import.meta.url));
const logger = pino({ level: 'silent' });

/** Files and bytes under the store's blobs/. */
function blobFiles(store: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const root = join(store, 'blobs', 'sha256');
  for (const d of readdirSync(root)) {
    for (const f of readdirSync(join(root, d))) {
      files++;
      bytes += statSync(join(root, d, f)).size;
    }
  }
  return { files, bytes };
}

describe('ferry gc', () => {
  let dir: string;
  let up: RunningRegistry;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-gc-'));
    up = await startRegistry();
    await pushTestImage(up.host, 'team/a', { tag: 'v1', seed: 'gc-a', layerSizes: [4096, 8192] });
    await pushTestImage(up.host, 'team/b', { tag: 'v1', seed: 'gc-b', multiArch: true, layerSizes: [65536, 32768] });
    await pushTestImage(up.host, 'team/b', { tag: 'v2', seed: 'gc-b2', layerSizes: [16384] });
  });

  afterAll(async () => {
    await up?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const head = (): string => `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\nimages:\n  - name: a\n    source: ${up.host}/team/a\n`;

  it('returns the space of a removed source, survives kill -9 with fsck clean, and completes when run again', async () => {
    const file = join(dir, 'ferry.yaml');
    const both = `${head()}  - name: b\n    source: ${up.host}/team/b\n`;
    writeFileSync(file, both);
    const store = Store.open(join(dir, 'store'));
    try {
      expect((await runSync({ config: parseConfig(both, file), store, logger })).failures).toEqual([]);
    } finally {
      store.close();
    }
    const full = blobFiles(join(dir, 'store'));

    // Nothing to collect while every source is configured.
    const none = await runFerry(['gc', '-c', file, '--min-age', '0', '--json']);
    expect(none.code).toBe(0);
    expect(JSON.parse(none.stdout)).toMatchObject({ droppedSources: [], manifests: 0, blobs: 0, bytes: 0 });

    // b leaves the configuration: the dry run lists it and changes nothing.
    writeFileSync(file, head());
    const dry = await runFerry(['gc', '-c', file, '--min-age', '0', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    const planned = JSON.parse(dry.stdout) as { droppedSources: unknown[]; manifests: number; blobs: number; bytes: number; dryRun: boolean };
    expect(planned).toMatchObject({ dryRun: true, droppedSources: [{ source: 'b', tags: 2 }] });
    // b's two tags: an index with two platform manifests and an image manifest, their configs and layers.
    expect(planned.manifests).toBe(4);
    expect(planned.blobs).toBeGreaterThan(planned.manifests);
    expect(blobFiles(join(dir, 'store'))).toEqual(full);
    // Young content stays by default (a sync beside gc stores content before its tags).
    expect(JSON.parse((await runFerry(['gc', '-c', file, '--dry-run', '--json'])).stdout)).toMatchObject({ manifests: 0, blobs: 0 });

    // kill -9 at the third file deletion: the index already says they are gone, fsck passes.
    const killed = await runFerry(['gc', '-c', file, '--min-age', '0'], { env: { NODE_OPTIONS: `--import ${KILL_AT_RM}`, FERRY_TEST_KILL_AT_RM: '3' } });
    expect(killed.signal).toBe('SIGKILL');
    const mid = blobFiles(join(dir, 'store'));
    expect(mid.files).toBe(full.files - 2);
    const fsck1 = await runFerry(['fsck', '--store', join(dir, 'store'), '--json']);
    expect(JSON.parse(fsck1.stdout)).toMatchObject({ ok: true, problems: [], unreferenced: [] });
    expect(fsck1.code).toBe(0);

    // Run again: it finishes the deletions the killed run left, and has nothing more to find.
    const again = await runFerry(['gc', '-c', file, '--min-age', '0', '--json']);
    expect(again.code).toBe(0);
    const done = JSON.parse(again.stdout) as { resumed: number; blobs: number; droppedSources: unknown[] };
    expect(done).toMatchObject({ droppedSources: [], blobs: 0, resumed: planned.blobs - 2 });
    const after = blobFiles(join(dir, 'store'));
    expect(after.files).toBe(full.files - planned.blobs);
    expect(full.bytes - after.bytes).toBe(planned.bytes);
    const fsck2 = await runFerry(['fsck', '--store', join(dir, 'store'), '--json']);
    expect(fsck2.code).toBe(0);
    expect(JSON.parse(fsck2.stdout)).toMatchObject({ ok: true, problems: [], unreferenced: [] });

    // What a kept: its tag and every blob it needs.
    const st = await runFerry(['status', '-c', file, '--json']);
    const status = JSON.parse(st.stdout) as { tags: Array<{ source: string; tag: string }>; stats: { tags: number } };
    expect(status.tags.map((t) => `${t.source}:${t.tag}`)).toEqual(['a:v1']);
    // ferry status shows a source's lifecycle, in text and JSON.
    writeFileSync(file, `${head()}    lifecycle: deprecated\n    note: use team/a2\n`);
    const text = await runFerry(['status', '-c', file]);
    expect(text.stdout).toMatch(/^ {2}a {2}deprecated \(use team\/a2\) {2}1 tags/m);
    expect((JSON.parse((await runFerry(['status', '-c', file, '--json'])).stdout) as { lifecycle: unknown }).lifecycle).toEqual([
      { kind: 'image', name: 'a', target: 'team/a', state: 'deprecated', note: 'use team/a2' },
    ]);
    // --store works on any store (for a store inside, every source kept).
    const inside = await runFerry(['gc', '--store', join(dir, 'store'), '--min-age', '0', '--dry-run']);
    expect(inside.stdout).toContain('would remove 0 manifest(s) and 0 blob(s)');
  });
});
