// GOPROXY requests have a queue of their own, goModules.concurrency wide, apart from the
// registries' `concurrency`. The server holds its first answers back until `want` requests are
// open at once (or, if the client never opens that many, until a fallback moment), so the
// count does not depend on how fast anything runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { runSync } from '../../daemon/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const logger = pino({ level: 'silent' });
const ROOTS = 6;

describe('Go module request queue', () => {
  let dir: string;
  let server: StaticServer;
  /** Requests the server holds, waiting for `want` open at once; after that it holds none. */
  const held: Array<() => void> = [];
  let barrier = true;
  let open = 0;
  let widest = 0;
  let want = 1;
  let fallback: NodeJS.Timeout | undefined;

  const releaseAll = (): void => {
    barrier = false;
    if (fallback) clearTimeout(fallback);
    fallback = undefined;
    for (const go of held.splice(0)) go();
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-modqueue-'));
    await buildProxyTree(
      join(dir, 'upstream'),
      Array.from({ length: ROOTS }, (_, i) => ({ path: `example.com/m${i}`, version: 'v1.0.0' })),
    );
    const served = await serveDir(join(dir, 'upstream'), {
      intercept: (req, res) => {
        open++;
        widest = Math.max(widest, open);
        res.on('close', () => open--);
        if (!barrier) return false;
        if (held.length + 1 >= want) {
          releaseAll();
          return false;
        }
        held.push(() => served.serve(req, res));
        fallback ??= setTimeout(releaseAll, 2000);
        return true;
      },
    });
    server = served;
  });

  afterAll(async () => {
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
      expect(store.listModuleVersions()).toHaveLength(ROOTS);
    } finally {
      store.close();
    }
  }

  it('keeps goModules.concurrency requests open at once, whatever the registries allow', async () => {
    want = 4;
    widest = 0;
    barrier = true;
    await syncWith('  concurrency: 4\n', 'store-4');
    expect(widest).toBe(4);
  });

  it('defaults to 32: the six version lists of this pass are all asked for at once', async () => {
    want = ROOTS;
    widest = 0;
    barrier = true;
    await syncWith('', 'store-default');
    expect(widest).toBeGreaterThanOrEqual(ROOTS);
    expect(widest).toBeLessThanOrEqual(32);
  });
});
