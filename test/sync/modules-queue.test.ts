// GOPROXY requests have a queue of their own, goModules.concurrency wide, apart from the
// registries' `concurrency`. Open requests are counted at the client, from the moment undici
// creates a request until its response completes or fails (its diagnostics channels), which lies
// inside the time the request holds its queue slot: the server's view (until its response's
// `close`) can outlast the client's, which had read the last byte and moved on. The server holds
// its first answers back until `want` requests are open at once, so the count does not depend on
// how fast anything runs.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const logger = pino({ level: 'silent' });
const ROOTS = 6;
/**
 * Only for liveness: if the client never opens `want` requests at once (a broken queue), the
 * held ones are released after this long so the test fails on its count instead of hanging.
 * A correct client reaches `want` without it.
 */
const LIVENESS_MS = 30_000;

describe('Go module request queue', () => {
  let dir: string;
  let server: StaticServer;
  /** Requests the server holds, waiting for `want` open at once; after that it holds none. */
  const held: Array<() => void> = [];
  let barrier = true;
  let want = 1;
  let fallback: NodeJS.Timeout | undefined;
  /** Requests to the proxy open at the client (undici's), the most seen at once, and what happened (shown when a count is off). */
  const open = new Set<object>();
  let widest = 0;
  const events: string[] = [];
  type Msg = { request: { origin?: unknown; path?: unknown }; error?: { message?: unknown } };
  const onCreate = (m: unknown): void => {
    const { request } = m as Msg;
    if (String(request.origin) !== server?.url) return;
    open.add(request);
    widest = Math.max(widest, open.size);
    events.push(`+ ${String(request.path)} (${open.size} open)`);
  };
  const onEnd = (m: unknown): void => {
    const { request, error } = m as Msg;
    if (!open.delete(request)) return;
    events.push(`- ${String(request.path)}${error ? ` failed: ${String(error.message)}` : ''}`);
  };

  const releaseAll = (): void => {
    barrier = false;
    if (fallback) clearTimeout(fallback);
    fallback = undefined;
    for (const go of held.splice(0)) go();
  };

  beforeAll(async () => {
    subscribe('undici:request:create', onCreate);
    subscribe('undici:request:trailers', onEnd);
    subscribe('undici:request:error', onEnd);
    dir = mkdtempSync(join(tmpdir(), 'ferry-modqueue-'));
    await buildProxyTree(
      join(dir, 'upstream'),
      Array.from({ length: ROOTS }, (_, i) => ({ path: `example.com/m${i}`, version: 'v1.0.0' })),
    );
    const served = await serveDir(join(dir, 'upstream'), {
      intercept: (req, res) => {
        if (!barrier) return false;
        if (held.length + 1 >= want) {
          releaseAll();
          return false;
        }
        held.push(() => served.serve(req, res));
        fallback ??= setTimeout(releaseAll, LIVENESS_MS);
        return true;
      },
    });
    server = served;
  });

  afterAll(async () => {
    unsubscribe('undici:request:create', onCreate);
    unsubscribe('undici:request:trailers', onEnd);
    unsubscribe('undici:request:error', onEnd);
    releaseAll();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function syncWith(goConcurrency: string, storeName: string): Promise<void> {
    const file = join(dir, `${storeName}.yaml`);
    const roots = Array.from({ length: ROOTS }, (_, i) => `    - path: example.com/m${i}\n      versions: [v1.0.0]\n`).join('');
    const text = `version: 1\nstore: ./${storeName}\nconcurrency: 1\ngoModules:\n  proxy: ${server.url}\n  sumdb: off\n${goConcurrency}  modules:\n${roots}`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures).toEqual([]);
      expect(store.modules.list()).toHaveLength(ROOTS);
    } finally {
      store.close();
    }
  }

  it('keeps goModules.concurrency requests open at once, whatever the registries allow', async () => {
    want = 4;
    widest = 0;
    events.length = 0;
    barrier = true;
    await syncWith('  concurrency: 4\n', 'store-4');
    expect(open.size).toBe(0);
    expect(widest, events.join('\n')).toBe(4);
  });

  it('defaults to 32: the six version lists of this pass are all asked for at once', async () => {
    want = ROOTS;
    widest = 0;
    events.length = 0;
    barrier = true;
    await syncWith('', 'store-default');
    expect(widest, events.join('\n')).toBeGreaterThanOrEqual(ROOTS);
    expect(widest, events.join('\n')).toBeLessThanOrEqual(32);
  });
});
