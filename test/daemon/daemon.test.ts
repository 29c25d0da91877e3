// The daemon driven in-process against a real registry: schedules, skip-if-running, the HTTP
// endpoints, shutdown with a grace period, and reload.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Daemon, parseListen, parseRateLimitHeader, DaemonMetrics, checkDaemonConfig, type DaemonStatus } from '../../daemon/index.js';
import { parseConfig } from '../../config/index.js';
import { Store } from '../../store/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { get, memoryLogger, metric, startStallingProxy, waitFor, type StallingProxy } from './daemon-fixtures.js';

const silent = pino({ level: 'silent' });

describe('daemon (in-process)', () => {
  let reg: RunningRegistry;
  let proxy: StallingProxy;
  let dir: string;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-daemon-'));
    reg = await startRegistry();
    proxy = await startStallingProxy(reg.host);
  });

  afterEach(async () => {
    proxy.release();
    await Promise.all(daemons.splice(0).map((d) => d.stop({ graceMs: 0 })));
  });

  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function writeConfig(name: string, body: string): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `version: 1\nstore: ./${name}-store\nconcurrency: 4\n${body}`);
    return file;
  }

  async function start(file: string, logger = silent): Promise<{ d: Daemon; base: string }> {
    const d = new Daemon({ configFile: file, logger, listen: '127.0.0.1:0', processMetrics: false });
    daemons.push(d);
    await d.start();
    return { d, base: `http://127.0.0.1:${d.address!.port}` };
  }

  async function status(base: string): Promise<DaemonStatus> {
    return JSON.parse((await get(`${base}/status`)).body) as DaemonStatus;
  }

  it('picks up a tag pushed while it runs; /metrics, /status, /healthz and /readyz reflect it', async () => {
    await pushTestImage(reg.host, 'pick/app', { tag: 'v1', seed: 'pick-v1' });
    const file = writeConfig(
      'pick',
      `schedule: "*/2 * * * * *"\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${reg.host}/pick/app\n    tags:\n      include: ["v*"]\n`,
    );
    const { d, base } = await start(file);
    expect((await get(`${base}/healthz`)).status).toBe(200);
    await waitFor('the catch-up sync of v1', async () => metric((await get(`${base}/metrics`)).body, 'ferry_source_tracked', { source: 'app' }) === 1);

    const v2 = await pushTestImage(reg.host, 'pick/app', { tag: 'v2', seed: 'pick-v2' });
    const m = await waitFor('v2 to be synced by a scheduled run', async () => {
      const text = (await get(`${base}/metrics`)).body;
      return metric(text, 'ferry_source_tracked', { source: 'app' }) === 2 && metric(text, 'ferry_store_tags') === 2 ? text : undefined;
    });
    expect(metric(m, 'ferry_source_last_success_timestamp_seconds', { source: 'app' })).toBeGreaterThan(0);
    expect(metric(m, 'ferry_source_fetched_blobs_total', { source: 'app' })).toBeGreaterThanOrEqual(4);
    expect(metric(m, 'ferry_source_fetched_bytes_total', { source: 'app' })).toBeGreaterThan(0);
    expect(metric(m, 'ferry_store_blobs')).toBeGreaterThanOrEqual(4);
    expect(metric(m, 'ferry_queue_depth')).toBeDefined();
    expect(metric(m, 'ferry_source_skipped_runs_total', { source: 'app' })).toBeDefined();
    expect(metric(m, 'process_cpu_seconds_total')).toBeUndefined(); // processMetrics: false

    const st = await status(base);
    const app = st.sources.find((s) => s.name === 'app')!;
    expect(app).toMatchObject({ kind: 'image', schedule: '*/2 * * * * *', lastError: null });
    expect(app.lastRun?.ok).toBe(true);
    expect(app.nextRun).not.toBeNull();
    expect(['idle', 'running']).toContain(app.state);
    expect(st.export).toBeNull();
    // Registry transfers and GOPROXY requests have a queue each (no goModules here: the default width).
    expect(st.queue.concurrency).toBe(4);
    expect(st.moduleQueue).toMatchObject({ concurrency: 16 });
    const ready = await get(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect((await get(`${base}/nope`)).status).toBe(404);

    await d.stop();
    const store = Store.open(join(dir, 'pick-store'), { readonly: true });
    try {
      expect(store.tags.get({ registry: reg.host, repository: 'pick/app', tag: 'v2' })?.digest).toBe(v2.top.digest);
    } finally {
      store.close();
    }
  });

  it('skips (and counts) a scheduled run while the previous one is stalled, then completes', async () => {
    const img = await pushTestImage(reg.host, 'slow/app', { tag: 'v1', seed: 'slow-v1', layerSizes: [50_000] });
    proxy.stall();
    const file = writeConfig(
      'slow',
      `schedule: "* * * * * *"\nregistries:\n  - host: ${proxy.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${proxy.host}/slow/app\n`,
    );
    const { base } = await start(file);
    await waitFor('a blob download held by the proxy', () => proxy.held() > 0);
    const text = await waitFor('a skipped run', async () => {
      const t = (await get(`${base}/metrics`)).body;
      return (metric(t, 'ferry_source_skipped_runs_total', { source: 'app' }) ?? 0) >= 1 ? t : undefined;
    });
    expect(metric(text, 'ferry_source_running', { source: 'app' })).toBe(1);
    const st = await status(base);
    expect(st.sources[0]).toMatchObject({ name: 'app', state: 'running' });
    expect(st.sources[0]!.skipped).toBeGreaterThanOrEqual(1);
    // Only one run went upstream: never two at once.
    expect(metric(text, 'ferry_source_runs_total', { source: 'app', result: 'ok' })).toBe(0);

    proxy.release();
    await waitFor('the stalled run to finish', async () => (await status(base)).sources[0]?.lastRun?.ok === true);
    const done = (await get(`${base}/metrics`)).body;
    expect(metric(done, 'ferry_store_tags')).toBe(1);
    expect((await status(base)).sources[0]!.lastError).toBeNull();
    void img;
  });

  it('stop() aborts a stalled transfer after the grace period; the store is clean and the next start completes', async () => {
    const img = await pushTestImage(reg.host, 'grace/app', { tag: 'v1', seed: 'grace-v1', layerSizes: [40_000, 30_000] });
    proxy.stall();
    const file = writeConfig('grace', `registries:\n  - host: ${proxy.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${proxy.host}/grace/app\n`);
    const mem = memoryLogger();
    const { d } = await start(file, mem.logger);
    await waitFor('a held blob download', () => proxy.held() > 0);
    await d.stop({ graceMs: 300 });
    expect(mem.lines().some((l) => String(l['msg']).includes('grace period over'))).toBe(true);
    expect(mem.lines().some((l) => l['msg'] === 'daemon stopped')).toBe(true);
    proxy.release();

    const store = Store.open(join(dir, 'grace-store'));
    try {
      expect((await store.fsck()).problems).toEqual([]);
      expect(store.tags.get({ registry: proxy.host, repository: 'grace/app', tag: 'v1' })).toBeUndefined();
      expect(store.runs.last(1)[0]?.status).toBe('aborted');
    } finally {
      store.close();
    }

    const again = await start(file);
    await waitFor('the restarted daemon to finish the sync', () => again.d.status().sources[0]?.lastRun?.ok === true);
    await again.d.stop();
    const s2 = Store.open(join(dir, 'grace-store'), { readonly: true });
    try {
      expect(s2.tags.get({ registry: proxy.host, repository: 'grace/app', tag: 'v1' })?.digest).toBe(img.top.digest);
    } finally {
      s2.close();
    }
  });

  it('stop() lets an in-flight transfer finish within the grace period', async () => {
    await pushTestImage(reg.host, 'drain/app', { tag: 'v1', seed: 'drain-v1', layerSizes: [20_000] });
    proxy.stall();
    const file = writeConfig('drain', `registries:\n  - host: ${proxy.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${proxy.host}/drain/app\n`);
    const mem = memoryLogger();
    const { d } = await start(file, mem.logger);
    await waitFor('a held blob download', () => proxy.held() > 0);
    const stopping = d.stop({ graceMs: 60_000 });
    await waitFor('the stop to begin', () => mem.lines().some((l) => l['msg'] === 'stopping: letting in-flight transfers finish'));
    proxy.release();
    await stopping;
    expect(mem.lines().some((l) => String(l['msg']).includes('grace period over'))).toBe(false);
    const store = Store.open(join(dir, 'drain-store'));
    try {
      expect((await store.fsck()).problems).toEqual([]);
      // The held blob finished: it is in the store even though the pass was cut short.
      expect(store.stats().blobs).toBeGreaterThanOrEqual(1);
    } finally {
      store.close();
    }
  });

  it('reload(): a broken file keeps the old configuration and logs where; a good one adds and syncs a source', async () => {
    await pushTestImage(reg.host, 'reload/one', { tag: 'v1', seed: 'reload-one' });
    await pushTestImage(reg.host, 'reload/two', { tag: 'v1', seed: 'reload-two' });
    const head = `registries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: one\n    source: ${reg.host}/reload/one\n`;
    const file = writeConfig('reload', head);
    const mem = memoryLogger();
    const { d, base } = await start(file, mem.logger);
    await waitFor('the first source', () => d.status().sources[0]?.lastRun?.ok === true);

    writeFileSync(file, `version: 1\nstore: ./reload-store\n${head}  - name: two\n    source: ${reg.host}/reload/two\n    tags:\n      latest: zero\n`);
    const bad = await d.reload();
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error.code).toBe('CONFIG_INVALID');
      expect(bad.error.message).toMatch(/reload\.yaml:\d+:\d+: images\[1\]\.tags\.latest/);
    }
    const logged = mem.lines().find((l) => String(l['msg']).startsWith('configuration reload failed'));
    expect(logged?.['code']).toBe('CONFIG_INVALID');
    expect(d.status().sources.map((s) => s.name)).toEqual(['one']);
    expect((await get(`${base}/healthz`)).status).toBe(200);
    expect(metric((await get(`${base}/metrics`)).body, 'ferry_config_reloads_total', { result: 'failed' })).toBe(1);

    // A bad cron expression is caught at reload too (the schema only counts fields).
    writeFileSync(file, `version: 1\nstore: ./reload-store\nschedule: "61 * * * * *"\n${head}`);
    const badCron = await d.reload();
    expect(badCron.ok).toBe(false);
    if (!badCron.ok) expect(badCron.error.message).toMatch(/schedule: invalid cron expression/);

    // A secret that does not resolve is refused at reload, with the loader's position and the file it names.
    writeFileSync(file, `version: 1\nstore: ./reload-store\n${head.replace('tls: plain-http\n', 'tls: plain-http\n    username: ferry\n    password: file:./no-such-secret\n')}`);
    const badSecret = await d.reload();
    expect(badSecret.ok).toBe(false);
    if (!badSecret.ok) {
      expect(badSecret.error.code).toBe('SECRET_UNRESOLVED');
      expect(badSecret.error.message).toBe(`${file}:7:15: registries[0].password: cannot read secret file ${join(dir, 'no-such-secret')}: ENOENT`);
    }
    expect(d.currentConfig.registries[0]?.password).toBeUndefined();
    expect(metric((await get(`${base}/metrics`)).body, 'ferry_config_reloads_total', { result: 'failed' })).toBe(3);

    writeFileSync(file, `version: 1\nstore: ./reload-store\n${head}  - name: two\n    source: ${reg.host}/reload/two\n`);
    const good = await d.reload();
    expect(good).toEqual({ ok: true, added: ['two'], removed: [] });
    await waitFor('the new source to be synced', () => d.status().sources.find((s) => s.name === 'two')?.lastRun?.ok === true);
    expect(d.currentConfig.images.map((i) => i.name)).toEqual(['one', 'two']);
  });

  it('validates options and parses helpers', () => {
    expect(parseListen('127.0.0.1:9420')).toEqual({ host: '127.0.0.1', port: 9420 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseListen('9420')).toThrow(/HOST:PORT/);
    expect(() => parseListen('host:99999')).toThrow(/HOST:PORT/);
    expect(parseRateLimitHeader('100;w=21600')).toBe(100);
    expect(parseRateLimitHeader(['42'])).toBe(42);
    expect(parseRateLimitHeader('soon')).toBeUndefined();
    const file = join(dir, 'v.yaml');
    expect(() => checkDaemonConfig(parseConfig('version: 1\nexport:\n  schedule: "0 0 * * *"\n  signingKey: k.pem\n', file))).toThrow(/export\.out: a scheduled export needs/);
    expect(() => checkDaemonConfig(parseConfig('version: 1\nimages:\n  - source: r.example/a\n    schedule: "* * * * 13"\n', file))).toThrow(/images\[0\]\.schedule: invalid cron/);
    expect(() => new Daemon({ configFile: file, config: parseConfig('version: 1\n', file), logger: silent, graceMs: -1 })).toThrow(/grace/);
  });

  it('records the rate limit an upstream reports (Docker Hub format)', async () => {
    const m = new DaemonMetrics({ store: () => undefined, queue: () => ({ size: 3, pending: 1 }), processMetrics: false });
    m.observeResponse({ url: 'https://registry-1.docker.io/v2/library/golang/manifests/1.22', headers: { 'ratelimit-remaining': '76;w=21600', 'ratelimit-limit': '100;w=21600' } });
    m.observeResponse({ url: 'https://ghcr.io/v2/', headers: {} });
    const { body } = await m.render();
    expect(metric(body, 'ferry_registry_ratelimit_remaining', { registry: 'registry-1.docker.io' })).toBe(76);
    expect(metric(body, 'ferry_registry_ratelimit_limit', { registry: 'registry-1.docker.io' })).toBe(100);
    expect(metric(body, 'ferry_registry_ratelimit_remaining', { registry: 'ghcr.io' })).toBeUndefined();
    expect(metric(body, 'ferry_queue_depth')).toBe(3);
    expect(metric(body, 'ferry_queue_pending')).toBe(1);
  });
});
