// Lifecycle across the gap, on real parts: a store synced from docker-registry and a static
// GOPROXY, bundles exported with the configuration's deprecated and archived sources, imported
// by ferry import (warnings, the ledger) and by the bundled import.sh (/bin/sh, warnings).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, verifyBundle, writeKeyPair, type ExportResult, type TrustedKey } from '../../bundle/index.js';
import { inactiveSources, parseConfig, type Config } from '../../config/index.js';
import { importBundles } from '../../importer/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { pushTestImage } from '../helpers/images.js';
import { runSh } from '../helpers/sh.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const logger = pino({ level: 'silent' });
const NOTE = 'use "mirror/app2" — après 2027 plus de mises à jour';

describe('lifecycle across the gap', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let goproxy: StaticServer;
  let client: RegistryClient;
  let trust: TrustedKey[];
  let pubPath: string;
  let keyPath: string;
  let store: Store;
  let cfgFile: string;

  const configText = (appLifecycle: string): string =>
    `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
    `images:\n  - name: app\n    source: ${up.host}/team/app\n    target: mirror/app\n${appLifecycle}` +
    `  - name: app2\n    source: ${up.host}/team/app2\n    target: mirror/app2\n` +
    `  - name: legacy\n    source: ${up.host}/team/legacy\n    lifecycle: archived\n` +
    `goModules:\n  proxy: ${goproxy.url}\n  sumdb: "off"\n  modules:\n    - path: example.com/hello\n      versions: [v1.0.0]\n      deps: false\n      lifecycle: deprecated\n      note: use example.com/hello/v2\n`;

  async function syncAndExport(cfg: Config, n: number): Promise<ExportResult> {
    const s = await runSync({ config: cfg, store, logger });
    expect(s.failures).toEqual([]);
    return exportBundle({ store, outDir: join(dir, `out-${n}`), signingKey: keyPath, lifecycle: inactiveSources(cfg), logger });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-lifecycle-import-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    client = new RegistryClient({ host: intra.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    const keys = await writeKeyPair(join(dir, 'signer'));
    keyPath = keys.privateKeyPath;
    pubPath = keys.publicKeyPath;
    trust = [await loadTrustedKey(pubPath)];
    await pushTestImage(up.host, 'team/app', { tag: 'v1', seed: 'life-app' });
    await pushTestImage(up.host, 'team/app2', { tag: 'v1', seed: 'life-app2' });
    await buildProxyTree(join(dir, 'proxy'), [{ path: 'example.com/hello', version: 'v1.0.0', files: { 'hello.go': 'package hello\n' } }]);
    goproxy = await serveDir(join(dir, 'proxy'));
    cfgFile = join(dir, 'ferry.yaml');
    store = Store.open(join(dir, 'store'));
  });

  afterAll(async () => {
    store?.close();
    await client?.close();
    await Promise.all([up?.stop(), intra?.stop(), goproxy?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a deprecated image and module are announced inside by ferry import and import.sh, and recorded in the ledger', async () => {
    const text = configText(`    lifecycle: deprecated\n    note: ${JSON.stringify(NOTE)}\n`);
    writeFileSync(cfgFile, text);
    const cfg = parseConfig(text, cfgFile);
    const b1 = await syncAndExport(cfg, 1);
    const tar = join(dir, 'out-1', `${b1.name}.tar`);

    // The signed manifest lists the sources that are not active, last, one per line.
    const v = await verifyBundle(tar, { trust });
    expect(v.manifest.lifecycle).toEqual([
      { kind: 'image', name: 'app', target: 'mirror/app', state: 'deprecated', note: NOTE },
      { kind: 'image', name: 'legacy', target: 'team/legacy', state: 'archived' },
      { kind: 'module', name: 'example.com/hello', target: 'example.com/hello', state: 'deprecated', note: 'use example.com/hello/v2' },
    ]);
    // The archived source names a repository the upstream does not even have: never asked, no failure.
    expect(readFileSync(join(dir, 'out-1', 'import.sh'), 'utf8')).toContain('2c. deprecated and archived sources');

    const expected = [`image mirror/app is deprecated: ${NOTE}`, 'Go module example.com/hello is deprecated: use example.com/hello/v2'];
    // A dry run announces them too, and changes nothing.
    const dry = await importBundles({ bundles: [tar], trust, registry: client, dryRun: true, logger });
    expect(dry.warnings).toEqual(expected);

    const ledger = Ledger.open(join(dir, 'ledger.db'));
    try {
      const r = await importBundles({ bundles: [tar], trust, registry: client, gomodDir: join(dir, 'gomod'), ledger, logger });
      expect(r.warnings).toEqual(expected);
      expect(r.bundles[0]!.lifecycle.map((l) => `${l.name}:${l.state}`)).toEqual(['app:deprecated', 'legacy:archived', 'example.com/hello:deprecated']);
      expect(ledger.lifecycle().map((l) => ({ kind: l.kind, name: l.name, target: l.target, state: l.state, note: l.note, bundleId: l.bundleId }))).toEqual([
        { kind: 'image', name: 'app', target: 'mirror/app', state: 'deprecated', note: NOTE, bundleId: b1.id },
        { kind: 'image', name: 'legacy', target: 'team/legacy', state: 'archived', note: null, bundleId: b1.id },
        { kind: 'module', name: 'example.com/hello', target: 'example.com/hello', state: 'deprecated', note: 'use example.com/hello/v2', bundleId: b1.id },
      ]);

      // import.sh says the same, after every check and before it pushes.
      const res = await runSh(join(dir, 'out-1', 'import.sh'), ['--trust', pubPath, '--registry', intra.host, '--plain-http', tar]);
      expect(res.stderr).toContain(`import.sh: warning: image mirror/app is deprecated: ${NOTE}\n`);
      expect(res.stderr).toContain('import.sh: warning: Go module example.com/hello is deprecated: use example.com/hello/v2\n');
      expect(res.stderr).not.toContain('legacy');
      expect(res.code).toBe(0);

      // The image made active again: the next bundle no longer lists it, and the ledger forgets it.
      const text2 = configText('');
      writeFileSync(cfgFile, text2);
      await pushTestImage(up.host, 'team/app', { tag: 'v2', seed: 'life-app-v2' });
      const b2 = await syncAndExport(parseConfig(text2, cfgFile), 2);
      const tar2 = join(dir, 'out-2', `${b2.name}.tar`);
      const r2 = await importBundles({ bundles: [tar2], trust, registry: client, ledger, logger });
      expect(r2.warnings).toEqual(['Go module example.com/hello is deprecated: use example.com/hello/v2']);
      expect(ledger.lifecycle().map((l) => `${l.name}:${l.state}@${l.sequence}`)).toEqual(['legacy:archived@2', 'example.com/hello:deprecated@2']);

      // An older bundle imported again elsewhere does not bring back what a newer one said.
      ledger.recordLifecycle(store.id, b1.id, b1.sequence, [{ kind: 'image', name: 'app', target: 'mirror/app', state: 'deprecated' }]);
      expect(ledger.lifecycle().map((l) => l.name)).toEqual(['legacy', 'example.com/hello']);
    } finally {
      ledger.close();
    }
  });

  it('a bundle whose sources are all active has no lifecycle list', async () => {
    const text = configText('').replace(`  - name: legacy\n    source: ${up.host}/team/legacy\n    lifecycle: archived\n`, '').replace('      lifecycle: deprecated\n      note: use example.com/hello/v2\n', '');
    writeFileSync(cfgFile, text);
    const cfg = parseConfig(text, cfgFile);
    expect(inactiveSources(cfg)).toEqual([]);
    await pushTestImage(up.host, 'team/app2', { tag: 'v2', seed: 'life-app2-v2' });
    const b = await syncAndExport(cfg, 3);
    const v = await verifyBundle(join(dir, 'out-3', `${b.name}.tar`), { trust });
    expect(v.manifest.lifecycle).toBeUndefined();
  });
});
