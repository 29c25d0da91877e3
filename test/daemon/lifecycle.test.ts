// Lifecycle states in the daemon and the sync engine, against a real registry: an archived source
// costs no upstream request at all (counted at a proxy in front of the registry it names), keeps
// its content, is no failure and no reason for /readyz to fail; /status and
// ferry_source_lifecycle show every state.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { Daemon, type DaemonStatus } from '../../daemon/index.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startCountingProxy, startRegistry, type CountingProxy, type RunningRegistry } from '../helpers/registry-server.js';
import { get, metric, waitFor } from './daemon-fixtures.js';

const silent = pino({ level: 'silent' });

describe('lifecycle: archived and deprecated sources', () => {
  let reg: RunningRegistry;
  let proxy: CountingProxy;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-lifecycle-'));
    reg = await startRegistry();
    proxy = await startCountingProxy(reg.host);
    await pushTestImage(reg.host, 'life/old', { tag: 'v1', seed: 'life-old' });
    await pushTestImage(reg.host, 'life/cur', { tag: 'v1', seed: 'life-cur' });
    await pushTestImage(reg.host, 'life/dep', { tag: 'v1', seed: 'life-dep' });
  });

  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // `old` is reached through the counting proxy, the others straight at the registry.
  const configText = (oldLifecycle: string): string =>
    `version: 1\nstore: ./store\nschedule: "* * * * * *"\n` +
    `registries:\n  - host: ${reg.host}\n    tls: plain-http\n  - host: ${proxy.host}\n    tls: plain-http\n` +
    `images:\n` +
    `  - name: old\n    source: ${proxy.host}/life/old\n${oldLifecycle}` +
    `  - name: cur\n    source: ${reg.host}/life/cur\n` +
    `  - name: dep\n    source: ${reg.host}/life/dep\n    lifecycle: deprecated\n    note: "use life/cur instead"\n`;

  it('an archived source is never contacted, keeps its tags, and is neither a failure nor unready', async () => {
    const file = join(dir, 'ferry.yaml');
    // First as an active source: its tag arrives through the proxy.
    writeFileSync(file, configText(''));
    const active = parseConfig(configText(''), file);
    const store = Store.open(active.store);
    try {
      const s1 = await runSync({ config: active, store, logger: silent });
      expect(s1.failures).toEqual([]);
      expect(s1.archived).toEqual([]);
      expect(proxy.requests().length).toBeGreaterThan(0);

      // Archived: a whole pass, and one asking for it by name, send it nothing.
      const text = configText('    lifecycle: archived\n    note: "kept for old builds; no updates"\n');
      writeFileSync(file, text);
      const archived = parseConfig(text, file);
      expect(archived.images[0]).toMatchObject({ name: 'old', lifecycle: 'archived', note: 'kept for old builds; no updates' });
      proxy.clear();
      const s2 = await runSync({ config: archived, store, logger: silent });
      const s3 = await runSync({ config: archived, store, logger: silent, only: ['old'] });
      expect(proxy.requests()).toEqual([]);
      expect(s2).toMatchObject({ ok: true, archived: ['old'], images: { checked: 2, failed: 0 } });
      expect(s3).toMatchObject({ ok: true, archived: ['old'], images: { checked: 0, failed: 0 } });
      expect(store.tags.list().filter((t) => t.source === 'old').map((t) => t.tag)).toEqual(['v1']);
    } finally {
      store.close();
    }

    // The daemon: no schedule and no catch-up for it, while the others run every second.
    const d = new Daemon({ configFile: file, logger: silent, listen: '127.0.0.1:0', processMetrics: false });
    try {
      await d.start();
      const base = `http://127.0.0.1:${d.address!.port}`;
      await waitFor('two finished runs of the active source', async () => (metric((await get(`${base}/metrics`)).body, 'ferry_source_runs_total', { source: 'cur', result: 'ok' }) ?? 0) >= 2);
      expect(d.trigger('old')).toBeUndefined();
      await d.whenIdle();
      expect(proxy.requests()).toEqual([]);

      const st = JSON.parse((await get(`${base}/status`)).body) as DaemonStatus;
      const old = st.sources.find((s) => s.name === 'old')!;
      expect(old).toMatchObject({ lifecycle: 'archived', note: 'kept for old builds; no updates', schedule: null, nextRun: null, lastRun: null, lastError: null });
      expect(st.sources.find((s) => s.name === 'dep')).toMatchObject({ lifecycle: 'deprecated', note: 'use life/cur instead', schedule: '* * * * * *' });
      expect(st.sources.find((s) => s.name === 'cur')).toMatchObject({ lifecycle: 'active', note: null });
      expect((await get(`${base}/readyz`)).status).toBe(200);

      const m = (await get(`${base}/metrics`)).body;
      expect(metric(m, 'ferry_source_lifecycle', { source: 'old', state: 'archived' })).toBe(1);
      expect(metric(m, 'ferry_source_lifecycle', { source: 'old', state: 'active' })).toBe(0);
      expect(metric(m, 'ferry_source_lifecycle', { source: 'dep', state: 'deprecated' })).toBe(1);
      expect(metric(m, 'ferry_source_lifecycle', { source: 'cur', state: 'active' })).toBe(1);
      expect(metric(m, 'ferry_source_runs_total', { source: 'old', result: 'ok' })).toBe(0);
      expect(metric(m, 'ferry_store_tags')).toBe(3);

      // Back to active on reload: it is synced again, through the proxy.
      writeFileSync(file, configText(''));
      expect(await d.reload()).toMatchObject({ ok: true });
      await waitFor('a run of the source made active again', () => d.status().sources.find((s) => s.name === 'old')?.lastRun?.ok === true);
      expect(proxy.requests().length).toBeGreaterThan(0);
      expect(metric((await get(`${base}/metrics`)).body, 'ferry_source_lifecycle', { source: 'old', state: 'active' })).toBe(1);
    } finally {
      await d.stop({ graceMs: 0 });
    }
  });
});
