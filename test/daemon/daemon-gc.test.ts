// The daemon's scheduled gc (gc.schedule) against a real registry: the content of a source removed
// from the configuration is collected, /status and /metrics say so, and fsck is clean after.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { checkDaemonConfig, Daemon } from '../../daemon/index.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { get, metric, waitFor } from './daemon-fixtures.js';

const silent = pino({ level: 'silent' });

describe('daemon: gc.schedule', () => {
  let reg: RunningRegistry;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-daemon-gc-'));
    reg = await startRegistry();
    await pushTestImage(reg.host, 'gc/a', { tag: 'v1', seed: 'dgc-a' });
    await pushTestImage(reg.host, 'gc/b', { tag: 'v1', seed: 'dgc-b' });
  });

  afterAll(async () => {
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('collects a removed source on its schedule', async () => {
    const head = `version: 1\nstore: ./store\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: a\n    source: ${reg.host}/gc/a\n`;
    const file = join(dir, 'ferry.yaml');
    const both = `${head}  - name: b\n    source: ${reg.host}/gc/b\n`;
    const store = Store.open(join(dir, 'store'));
    try {
      expect((await runSync({ config: parseConfig(both, file), store, logger: silent })).failures).toEqual([]);
    } finally {
      store.close();
    }
    const text = `${head}gc:\n  schedule: "* * * * * *"\n  minAge: 1ms\n`;
    writeFileSync(file, text);
    expect(() => checkDaemonConfig(parseConfig(`version: 1\ngc:\n  schedule: "61 * * * * *"\n`, file))).toThrow(/gc\.schedule: invalid cron/);
    const d = new Daemon({ configFile: file, logger: silent, listen: '127.0.0.1:0', processMetrics: false, catchUp: false });
    try {
      await d.start();
      const base = `http://127.0.0.1:${d.address!.port}`;
      const m = await waitFor('a scheduled gc that removed blobs', async () => {
        const body = (await get(`${base}/metrics`)).body;
        return (metric(body, 'ferry_gc_removed_blobs_total') ?? 0) > 0 ? body : undefined;
      });
      expect(metric(m, 'ferry_gc_freed_bytes_total')).toBeGreaterThan(0);
      expect(metric(m, 'ferry_store_tags')).toBe(1);
      const st = d.status();
      expect(st.gc).toMatchObject({ name: 'gc', kind: 'gc', schedule: '* * * * * *' });
      expect(st.sources.map((s) => s.name)).toEqual(['a']);
      expect((await get(`${base}/readyz`)).status).toBe(200);
    } finally {
      await d.stop({ graceMs: 0 });
    }
    const after = Store.open(join(dir, 'store'), { create: false });
    try {
      expect((await after.fsck()).problems).toEqual([]);
      expect(after.tags.list().map((t) => t.source)).toEqual(['a']);
    } finally {
      after.close();
    }
  });
});
