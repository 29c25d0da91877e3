// Foreign (non-distributable) layers end to end (issue 13 item 17): a Windows-style image whose
// manifest names a layer by `urls` that the registry does not hold (docker-registry accepts such a
// manifest), synced, exported, verified, imported into a second docker-registry and checked with
// fsck; skopeo judges that the manifest arrived byte for byte. With `foreignLayers: fetch` the
// layer comes from its urls, verified, without the registry's credentials.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, verifyBundle, writeKeyPair, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { importBundles } from '../../importer/index.js';
import { MediaType, sha256Digest, type Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { runFerry } from '../helpers/ferry-cli.js';
import { randomData, skopeoInspect } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { startFake, type FakeServer } from '../net/fake-server.js';

const logger = pino({ level: 'silent' });
const USER = 'win';
const PASS = 'win-SECRET-pass';
const ENV_PASS = 'FERRY_E2E_FOREIGN_PASS';
const FOREIGN_DOCKER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
const FOREIGN_OCI = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';

interface Pushed {
  readonly digest: Digest;
  readonly bytes: Buffer;
  readonly foreign: Digest;
  readonly normal: Digest;
}

describe('foreign layers', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let layerHost: FakeServer;
  let upClient: RegistryClient;
  let intraClient: RegistryClient;
  let trust: TrustedKey[];
  let keyPath: string;
  const foreignBytes = randomData(40_000, 'windows-base-layer');
  const foreignDigest = sha256Digest(foreignBytes);
  const ociForeignBytes = randomData(30_000, 'oci-nondistributable');
  const ociForeignDigest = sha256Digest(ociForeignBytes);
  let docker: Pushed;
  let oci: Pushed;

  /** Pushes config + one normal layer, and a manifest that also names a foreign layer by URL only. */
  async function pushForeignImage(repo: string, tag: string, manifestType: string, configType: string, layerType: string, foreign: { type: string; digest: Digest; size: number }, seed: string): Promise<Pushed> {
    const normal = randomData(5000, seed);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'windows', 'os.version': '10.0.17763.1', rootfs: { type: 'layers', diff_ids: [] }, seed }));
    const normalDigest = sha256Digest(normal);
    for (const b of [normal, config]) await upClient.blobPut(repo, sha256Digest(b), b.length, () => bufferStream(b));
    const bytes = Buffer.from(
      JSON.stringify(
        {
          schemaVersion: 2,
          mediaType: manifestType,
          config: { mediaType: configType, size: config.length, digest: sha256Digest(config) },
          layers: [
            { mediaType: foreign.type, size: foreign.size, digest: foreign.digest, urls: [`http://${layerHost.host}/layers/${foreign.digest.slice(7)}`] },
            { mediaType: layerType, size: normal.length, digest: normalDigest },
          ],
        },
        null,
        3,
      ),
    );
    const digest = await upClient.manifestPut(repo, tag, bytes, manifestType);
    return { digest, bytes, foreign: foreign.digest, normal: normalDigest };
  }

  function config(name: string, foreignLayers?: 'fetch'): Config {
    const file = join(dir, `${name}.yaml`);
    const text =
      `version: 1\nstore: ./${name}-store\n` +
      `registries:\n  - host: ${up.host}\n    tls: plain-http\n    username: ${USER}\n    password: env:${ENV_PASS}\n` +
      `images:\n  - name: win\n    source: ${up.host}/windows/servercore\n${foreignLayers ? `    foreignLayers: ${foreignLayers}\n` : ''}`;
    writeFileSync(file, text);
    return parseConfig(text, file);
  }

  beforeAll(async () => {
    process.env[ENV_PASS] = PASS;
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-foreign-'));
    [up, intra] = await Promise.all([startRegistry({ auth: 'htpasswd', users: { [USER]: PASS }, foreignUrls: true }), startRegistry({ foreignUrls: true })]);
    layerHost = await startFake((req, res) => {
      const hex = req.url.replace('/layers/', '');
      const body = `sha256:${hex}` === foreignDigest ? foreignBytes : `sha256:${hex}` === ociForeignDigest ? ociForeignBytes : undefined;
      if (!body) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-length': String(body.length), 'content-type': 'application/octet-stream' });
      res.end(body);
    });
    upClient = new RegistryClient({ host: up.host, tls: 'plain-http', credentials: { username: USER, password: PASS } });
    intraClient = new RegistryClient({ host: intra.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    docker = await pushForeignImage(
      'windows/servercore',
      'ltsc2019',
      MediaType.DockerManifest,
      MediaType.DockerConfig,
      MediaType.DockerLayer,
      { type: FOREIGN_DOCKER, digest: foreignDigest, size: foreignBytes.length },
      'docker-normal',
    );
    oci = await pushForeignImage(
      'windows/servercore',
      'oci',
      MediaType.OciManifest,
      MediaType.OciConfig,
      MediaType.OciLayout,
      { type: FOREIGN_OCI, digest: ociForeignDigest, size: ociForeignBytes.length },
      'oci-normal',
    );
    // The registry took both manifests without the foreign blobs.
    expect(await upClient.blobHead('windows/servercore', foreignDigest)).toBeUndefined();
    expect(await upClient.blobHead('windows/servercore', ociForeignDigest)).toBeUndefined();
    const keys = await writeKeyPair(join(dir, 'signer'));
    keyPath = keys.privateKeyPath;
    trust = [await loadTrustedKey(keys.publicKeyPath)];
  });

  afterAll(async () => {
    await Promise.all([upClient?.close(), intraClient?.close()]);
    await Promise.all([up?.stop(), intra?.stop(), layerHost?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
    delete process.env[ENV_PASS];
  });

  it('skips them by default through sync, export, verify, import and fsck, naming them at each step', async () => {
    const cfg = config('skip');
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 0 } });
      expect(s.failures).toEqual([]);
      expect(s.foreignLayers.map((f) => [f.source, f.digest, f.mediaType, f.stored]).sort()).toEqual(
        [
          ['win', foreignDigest, FOREIGN_DOCKER, false],
          ['win', ociForeignDigest, FOREIGN_OCI, false],
        ].sort(),
      );
      expect(s.foreignLayers.find((f) => f.digest === foreignDigest)?.urls).toEqual([`http://${layerHost.host}/layers/${foreignDigest.slice(7)}`]);
      expect(layerHost.seen).toEqual([]);
      expect(store.tags.list().map((t) => `${t.tag} ${t.digest}`).sort()).toEqual([`ltsc2019 ${docker.digest}`, `oci ${oci.digest}`]);
      expect(store.content.hasBlob(foreignDigest)).toBe(false);
      expect(store.content.hasBlob(docker.normal)).toBe(true);

      const fsck = await store.fsck();
      expect(fsck.problems).toEqual([]);
      expect(fsck.foreignLayers).toEqual([foreignDigest, ociForeignDigest].sort());

      const out = join(dir, 'out-skip');
      const b = await exportBundle({ store, outDir: out, signingKey: keyPath, logger });
      expect(b.images).toBe(2);
      expect(b.foreignLayers).toEqual([foreignDigest, ociForeignDigest].sort());
      const tar = join(out, `${b.name}.tar`);

      const v = await verifyBundle(tar, { trust });
      expect(v.foreignLayers).toEqual([foreignDigest, ociForeignDigest].sort());
      expect(v.manifest.files.some((f) => f.path.endsWith(foreignDigest.slice(7)))).toBe(false);

      const ledger = Ledger.open(join(dir, 'ledger-skip.db'));
      try {
        const r = await importBundles({ bundles: [tar], trust, registry: intraClient, ledger, logger, prefix: 'skip' });
        expect(r.bundles[0]!.targets[0]!.foreignLayers).toEqual([foreignDigest, ociForeignDigest].sort());
        expect(r.warnings.some((w) => w.includes('foreign layer') && w.includes(foreignDigest) && w.includes(ociForeignDigest))).toBe(true);
      } finally {
        ledger.close();
      }
      // The manifests arrived unchanged, without the foreign blobs, exactly as upstream holds them.
      for (const [tag, p] of [['ltsc2019', docker], ['oci', oci]] as const) {
        const raw = (await skopeoInspect(`${intra.host}/skip/windows/servercore:${tag}`, { raw: true })) as string;
        expect(Buffer.from(raw, 'utf8').equals(p.bytes)).toBe(true);
        expect(await intraClient.blobHead('skip/windows/servercore', p.foreign)).toBeUndefined();
        expect(await intraClient.blobHead('skip/windows/servercore', p.normal)).toEqual({ size: 5000 });
      }

      // import.sh (sh, curl, openssl) into the same registry, unprefixed: the same manifests.
      const sh = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn('/bin/sh', [join(out, 'import.sh'), '--trust', join(dir, 'signer.pub'), '--registry', intra.host, '--plain-http', `${b.name}.tar`], { cwd: out });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect(sh.stderr).toBe('');
      expect(sh.code).toBe(0);
      expect(sh.stdout).toContain(`foreign layer ${foreignDigest} not carried`);
      expect(sh.stdout).toContain(`foreign layer ${ociForeignDigest} not carried`);
      for (const [tag, p] of [['ltsc2019', docker], ['oci', oci]] as const) {
        const raw = (await skopeoInspect(`${intra.host}/windows/servercore:${tag}`, { raw: true })) as string;
        expect(Buffer.from(raw, 'utf8').equals(p.bytes)).toBe(true);
      }

      // A second import into a store: the same manifests, fsck-clean, the foreign layers named.
      const inside = Store.open(join(dir, 'inside-store'));
      const ledger2 = Ledger.open(join(dir, 'ledger-store.db'));
      try {
        const r = await importBundles({ bundles: [tar], trust, store: inside, ledger: ledger2, logger });
        expect(r.bundles[0]!.targets[0]!.foreignLayers).toEqual([foreignDigest, ociForeignDigest].sort());
        const f2 = await inside.fsck();
        expect(f2.problems).toEqual([]);
        expect(f2.foreignLayers).toEqual([foreignDigest, ociForeignDigest].sort());
      } finally {
        ledger2.close();
        inside.close();
      }
    } finally {
      store.close();
    }
  });

  it('the command line names them: sync, fsck, export and verify', async () => {
    const cfg = config('cli');
    const file = cfg.file;
    writeFileSync(file, `${readFileSync(file, 'utf8')}export:\n  signingKey: ${keyPath}\n  out: ${join(dir, 'out-cli')}\n`);
    const env = { [ENV_PASS]: PASS };
    const sync = await runFerry(['sync', '-c', file], { env });
    expect(sync.code).toBe(0);
    expect(sync.stderr).toContain(`ferry: win: foreign layer ${foreignDigest} (${FOREIGN_DOCKER}) left out; its urls: "http://${layerHost.host}/layers/${foreignDigest.slice(7)}"`);
    const fsck = await runFerry(['fsck', '-c', file]);
    expect(fsck.code).toBe(0);
    expect(fsck.stdout).toContain(`2 foreign layer(s) not stored, by design (non-distributable): ${[foreignDigest, ociForeignDigest].sort().join(', ')}`);
    const exp = await runFerry(['export', '-c', file], { env });
    expect(exp.code).toBe(0);
    expect(exp.stdout).toContain(`not carried: foreign layer ${foreignDigest}`);
    const tar = exp.stdout.split('\n').map((l) => l.trim()).find((l) => l.endsWith('.tar'))!;
    const ver = await runFerry(['verify', tar, '--trust', join(dir, 'signer.pub')]);
    expect(ver.code).toBe(0);
    expect(ver.stdout).toContain(`not carried: foreign layer ${ociForeignDigest}`);
  });

  it('an entry switched from skip to fetch fetches the layers its stored tags left out, and the next incremental bundle carries them', async () => {
    const skip = config('switch');
    const store = Store.open(skip.store);
    try {
      expect((await runSync({ config: skip, store, logger, retry: { retries: 0 } })).failures).toEqual([]);
      expect(store.content.hasBlob(foreignDigest)).toBe(false);
      const first = await exportBundle({ store, outDir: join(dir, 'out-switch'), signingKey: keyPath, logger });
      expect([...first.foreignLayers].sort()).toEqual([foreignDigest, ociForeignDigest].sort());
      const fetch = config('switch', 'fetch');
      const s = await runSync({ config: fetch, store, logger, retry: { retries: 0 } });
      expect(s.failures).toEqual([]);
      // The tags did not move, but their closures gained the layers: they are journaled again.
      expect(s.tags.changed).toBe(2);
      expect(store.content.hasBlob(foreignDigest)).toBe(true);
      expect(store.content.hasBlob(ociForeignDigest)).toBe(true);
      expect((await store.fsck()).foreignLayers).toEqual([]);
      // Nothing changes afterwards: the next sync is HEADs only.
      const again = await runSync({ config: fetch, store, logger, retry: { retries: 0 } });
      expect(again.foreignLayers).toEqual([]);
      expect(again.manifestsFetched).toBe(0);
      expect(again.tags.changed).toBe(0);
      const b = await exportBundle({ store, outDir: join(dir, 'out-switch'), signingKey: keyPath, logger });
      expect(b.parent).toBe(first.id);
      expect(b.foreignLayers).toEqual([]);
      const v = await verifyBundle(join(dir, 'out-switch', `${b.name}.tar`), { trust });
      for (const d of [foreignDigest, ociForeignDigest]) expect(v.manifest.files.some((f) => f.path === `blobs/sha256/${d.slice(7)}`)).toBe(true);
    } finally {
      store.close();
    }
  });

  it('fetches them from their urls with foreignLayers: fetch, verified, without credentials, and carries them', async () => {
    const cfg = config('fetch', 'fetch');
    const store = Store.open(cfg.store);
    try {
      layerHost.seen.length = 0;
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 0 } });
      expect(s.failures).toEqual([]);
      expect(s.foreignLayers.map((f) => [f.digest, f.stored]).sort()).toEqual([[foreignDigest, true], [ociForeignDigest, true]].sort());
      expect(layerHost.seen.map((r) => r.url).sort()).toEqual([`/layers/${foreignDigest.slice(7)}`, `/layers/${ociForeignDigest.slice(7)}`].sort());
      for (const r of layerHost.seen) expect(r.headers.authorization).toBeUndefined();
      expect(store.content.hasBlob(foreignDigest)).toBe(true);
      expect((await store.fsck()).foreignLayers).toEqual([]);

      const out = join(dir, 'out-fetch');
      const b = await exportBundle({ store, outDir: out, signingKey: keyPath, logger });
      expect(b.foreignLayers).toEqual([]);
      const tar = join(out, `${b.name}.tar`);
      const v = await verifyBundle(tar, { trust });
      expect(v.foreignLayers).toEqual([]);
      expect(v.manifest.files.some((f) => f.path === `blobs/sha256/${foreignDigest.slice(7)}`)).toBe(true);
      const ledger = Ledger.open(join(dir, 'ledger-fetch.db'));
      try {
        const r = await importBundles({ bundles: [tar], trust, registry: intraClient, ledger, logger, prefix: 'fetch' });
        expect(r.bundles[0]!.targets[0]!.foreignLayers).toEqual([]);
      } finally {
        ledger.close();
      }
      const raw = (await skopeoInspect(`${intra.host}/fetch/windows/servercore:ltsc2019`, { raw: true })) as string;
      expect(Buffer.from(raw, 'utf8').equals(docker.bytes)).toBe(true);
      expect(await intraClient.blobHead('fetch/windows/servercore', foreignDigest)).toEqual({ size: foreignBytes.length });

      // A registry that accepts no foreign urls (distribution's default) refuses the manifest: the
      // error says why, and no tag is left behind.
      const strict = await startRegistry();
      const strictClient = new RegistryClient({ host: strict.host, tls: 'plain-http', retry: { retries: 0 } });
      const ledger2 = Ledger.open(join(dir, 'ledger-strict.db'));
      try {
        const err = await importBundles({ bundles: [tar], trust, registry: strictClient, ledger: ledger2, logger }).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(err?.message).toContain('foreign layers');
        expect(err?.message).toContain('validation.manifests.urls.allow');
        expect((await fetch(`http://${strict.host}/v2/windows/servercore/tags/list`)).status).toBe(404);
      } finally {
        ledger2.close();
        await strictClient.close();
        await strict.stop();
      }
    } finally {
      store.close();
    }
  });
});

function bufferStream(b: Buffer): Readable {
  return Readable.from([b]);
}
