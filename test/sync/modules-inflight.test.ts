// New module versions in work at once are bounded (2 x goModules.concurrency): a version holds
// its slot from its .info request until its row is committed, so versions fetched but not yet
// checked, written and indexed cannot pile up however large the graph.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PQueue from 'p-queue';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { GoProxyClient, type CallOptions, type ProxyInfo } from '../../goproxy/index.js';
import type { SyncContext, SyncEvent } from '../../sync/images.js';
import { closeModuleContext, createModuleContext, syncModuleRoot, VERSIONS_PER_REQUEST_SLOT } from '../../sync/modules.js';
import { Store } from '../../store/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const logger = pino({ level: 'silent' });
const MODULES = 24;
const CONCURRENCY = 2;

/** Counts versions whose .info was asked for and whose row is not yet committed. */
class CountingProxy extends GoProxyClient {
  inWork = 0;
  widest = 0;

  override async info(module: string, version: string, opts?: CallOptions): Promise<ProxyInfo | undefined> {
    this.inWork++;
    this.widest = Math.max(this.widest, this.inWork);
    return super.info(module, version, opts);
  }
}

describe('new module versions in work at once', () => {
  let dir: string;
  let server: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-inflight-'));
    // One root requiring every other module: the whole graph is known after one .mod.
    const others = Array.from({ length: MODULES }, (_, i) => `example.com/m${i}`);
    await buildProxyTree(join(dir, 'upstream'), [
      { path: 'example.com/root', version: 'v1.0.0', require: others.map((p) => [p, 'v1.0.0'] as const), files: { 'root.go': 'package root\n' } },
      ...others.map((p, i) => ({ path: p, version: 'v1.0.0', files: { 'm.go': `package m${i}\n` } })),
    ]);
    server = await serveDir(join(dir, 'upstream'));
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('are at most VERSIONS_PER_REQUEST_SLOT x goModules.concurrency, from .info to the index row', async () => {
    const file = join(dir, 'ferry.yaml');
    const text = `version: 1\nstore: ./store\ngoModules:\n  proxy: ${server.url}\n  sumdb: off\n  concurrency: ${CONCURRENCY}\n  modules:\n    - path: example.com/root\n      versions: [v1.0.0]\n`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    const proxy = new CountingProxy({ baseUrl: server.url });
    const emit = (e: SyncEvent): void => {
      if (e.type === 'module-done') proxy.inWork--;
    };
    try {
      const ctx: SyncContext = { store, queue: new PQueue({ concurrency: CONCURRENCY }), logger, emit, inflight: new Map(), counters: { blobsFetched: 0, bytesFetched: 0, manifestsFetched: 0 } };
      const mctx = await createModuleContext(ctx, proxy);
      try {
        const results = await Promise.all(cfg.goModules!.roots.map((r) => syncModuleRoot(mctx, r)));
        expect(results.flatMap((r) => r.errors)).toEqual([]);
      } finally {
        await closeModuleContext(mctx);
      }
      expect(mctx.moduleCounters.fresh).toBe(MODULES + 1);
      expect(proxy.inWork).toBe(0);
      expect(proxy.widest).toBeLessThanOrEqual(VERSIONS_PER_REQUEST_SLOT * CONCURRENCY);
      expect(proxy.widest).toBeGreaterThan(CONCURRENCY);
    } finally {
      store.close();
    }
  });
});
