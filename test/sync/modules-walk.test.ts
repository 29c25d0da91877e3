// The module walk: require cycles end, roots sharing dependencies fetch each version once,
// the pass totals count each version once while each root reports what it reached.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

describe('Go module walk', () => {
  let dir: string;
  let server: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-modwalk-'));
    await buildProxyTree(join(dir, 'upstream'), [
      // a and b require each other (legal in Go); c reaches the cycle through b.
      { path: 'example.com/a', version: 'v1.0.0', require: [['example.com/b', 'v1.0.0']] },
      { path: 'example.com/b', version: 'v1.0.0', require: [['example.com/a', 'v1.0.0'], ['example.com/leaf', 'v1.0.0']] },
      { path: 'example.com/c', version: 'v1.0.0', require: [['example.com/b', 'v1.0.0']] },
      { path: 'example.com/leaf', version: 'v1.0.0' },
    ]);
    server = await serveDir(join(dir, 'upstream'));
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ends at require cycles; shared versions are fetched once and counted once in the totals', async () => {
    const file = join(dir, 'ferry.yaml');
    const text =
      `version: 1\nstore: ./store\ngoModules:\n  proxy: ${server.url}\n  sumdb: off\n  modules:\n` +
      `    - path: example.com/a\n      versions: [v1.0.0]\n    - path: example.com/c\n      versions: [v1.0.0]\n`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    try {
      const before = server.requests.length;
      const s = await runSync({ config: cfg, store, logger });
      expect(s.failures).toEqual([]);
      expect(store.modules.list().map((m) => `${m.module}@${m.version}`).sort()).toEqual([
        'example.com/a@v1.0.0',
        'example.com/b@v1.0.0',
        'example.com/c@v1.0.0',
        'example.com/leaf@v1.0.0',
      ]);
      expect(s.modules.versionsNew).toBe(4);
      expect(s.modules.versionsChecked).toBe(4);
      const byRoot = new Map(s.moduleResults.map((r) => [r.name, r]));
      // Each root counts its own closure, new this pass, whichever root fetched it.
      expect(byRoot.get('example.com/a')).toMatchObject({ versionsChecked: 3, versionsNew: 3 });
      expect(byRoot.get('example.com/c')).toMatchObject({ versionsChecked: 4, versionsNew: 4 });
      const zips = server.requests.slice(before).filter((r) => r.path.endsWith('.zip'));
      expect(zips).toHaveLength(4);
      // The zips were validated under the store's tmp/ and moved in: nothing is left there.
      expect(readdirSync(join(cfg.store, 'tmp'))).toEqual([]);
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });
});
