// A module zip bigger than IN_MEMORY_ZIP streams to a temp file; its whole transfer must happen
// inside its GOPROXY queue slot, or goModules.concurrency would not bound the bytes in flight.
// Measured at the client, with no clock: every queue task runs in an AsyncLocalStorage context,
// so each zip body knows the task that opened it, and each chunk that passes while that task has
// already finished is a transfer outside the queue.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import PQueue from 'p-queue';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import type { SyncContext } from '../../sync/images.js';
import { closeModuleContext, createModuleContext, syncModuleRoot } from '../../sync/modules.js';
import { GoProxyClient, type CallOptions } from '../../goproxy/index.js';
import { IN_MEMORY_ZIP } from '../../gomod/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const logger = pino({ level: 'silent' });
const MODULES = 3;
const CONCURRENCY = 2;

/** The queue task a piece of work runs in; `done` once its promise settled (its slot is free). */
interface Task {
  done: boolean;
}

const current = new AsyncLocalStorage<Task>();

/** A queue whose tasks each run in their own context, marked done when they settle. */
function trackedQueue(concurrency: number): PQueue {
  const queue = new PQueue({ concurrency });
  const add = queue.add.bind(queue);
  type Fn = (o: Parameters<Parameters<PQueue['add']>[0]>[0]) => unknown;
  queue.add = ((fn: Fn, opts?: Parameters<PQueue['add']>[1]) =>
    add((o) => {
      const task: Task = { done: false };
      return current.run(task, async () => {
        try {
          return await fn(o);
        } finally {
          task.done = true;
        }
      });
    }, opts)) as PQueue['add'];
  return queue;
}

/** Counts, at the client, the streamed zip bodies open at once and the chunks read outside their task. */
class WatchedProxy extends GoProxyClient {
  openBodies = 0;
  widest = 0;
  bodies = 0;
  opensOutsideQueue = 0;
  chunksOutsideTask = 0;

  override async zip(module: string, version: string, opts?: CallOptions): Promise<Readable | undefined> {
    const task = current.getStore();
    if (!task || task.done) this.opensOutsideQueue++;
    const body = await super.zip(module, version, opts);
    if (!body) return body;
    this.bodies++;
    this.openBodies++;
    this.widest = Math.max(this.widest, this.openBodies);
    let closed = false;
    const close = (): void => {
      if (!closed) this.openBodies--;
      closed = true;
    };
    const watch = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        if (!task || task.done) this.chunksOutsideTask++;
        cb(null, chunk);
      },
    });
    // 'end' is emitted before a for-await over the body finishes, so inside the task when it reads the body whole.
    watch.once('end', close).once('error', close);
    pipeline(body, watch, () => undefined);
    return watch;
  }
}

describe('GOPROXY zips bigger than IN_MEMORY_ZIP', () => {
  let dir: string;
  let server: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-zipslot-'));
    await buildProxyTree(
      join(dir, 'upstream'),
      Array.from({ length: MODULES }, (_, i) => ({
        path: `example.com/big${i}`,
        version: 'v1.0.0',
        // Random bytes do not deflate: each zip is bigger than IN_MEMORY_ZIP.
        files: { 'doc.go': `package big${i}\n`, 'data.bin': randomBytes(IN_MEMORY_ZIP + 64 * 1024) },
      })),
    );
    server = await serveDir(join(dir, 'upstream'));
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('are read whole inside their queue slot, so goModules.concurrency bounds them', async () => {
    const file = join(dir, 'ferry.yaml');
    const roots = Array.from({ length: MODULES }, (_, i) => `    - path: example.com/big${i}\n      versions: [v1.0.0]\n`).join('');
    const text = `version: 1\nstore: ./store\ngoModules:\n  proxy: ${server.url}\n  sumdb: off\n  concurrency: ${CONCURRENCY}\n  modules:\n${roots}`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    const proxy = new WatchedProxy({ baseUrl: server.url });
    try {
      const queue = trackedQueue(CONCURRENCY);
      const ctx: SyncContext = { store, queue, logger, emit: () => undefined, inflight: new Map(), counters: { blobsFetched: 0, bytesFetched: 0, manifestsFetched: 0 } };
      const mctx = await createModuleContext(ctx, proxy);
      try {
        const results = await Promise.all(cfg.goModules!.roots.map((r) => syncModuleRoot(mctx, r)));
        expect(results.flatMap((r) => r.errors)).toEqual([]);
      } finally {
        await closeModuleContext(mctx);
      }
      expect(proxy.bodies).toBe(MODULES);
      expect(proxy.opensOutsideQueue).toBe(0);
      expect(proxy.chunksOutsideTask).toBe(0);
      expect(proxy.widest).toBeLessThanOrEqual(CONCURRENCY);
      for (let i = 0; i < MODULES; i++) expect(store.modules.get(`example.com/big${i}`, 'v1.0.0')?.zipDigest).toMatch(/^sha256:/);
    } finally {
      store.close();
    }
  });
});
