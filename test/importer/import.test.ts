// ferry import against real servers: bundles exported (exportBundle) from a store filled by a
// real sync from docker-registry + a static GOPROXY tree, imported into a second docker-registry,
// a Go module tree and a store; damaged bundles, broken chains, resume after kill -9.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportBundle, loadTrustedKey, writeKeyPair, type ExportResult, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { isFerryError } from '../../errors/index.js';
import { importBundles, type ImportOptions, type ImportResult } from '../../importer/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger, Store } from '../../store/index.js';
import { flipByteInEntry } from '../bundle/fixtures.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { OciLayoutBuilder, pushLayout, type Image, type Index, type Layer } from '../helpers/images.js';
import { startRegistry, type LoggedRequest, type RunningRegistry } from '../helpers/registry-server.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const ROOT = join(import.meta.dirname, '..', '..');
const logger = pino({ level: 'silent' });

/** Blob uploads (the monolithic PUT that finishes an upload) in an access log, by digest. */
const uploads = (reqs: readonly LoggedRequest[]): string[] =>
  reqs.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).map((r) => decodeURIComponent(/digest=([^&]+)/.exec(r.path)?.[1] ?? ''));

async function tagList(host: string, repo: string): Promise<{ status: number; tags: string[] }> {
  const res = await fetch(`http://${host}/v2/${repo}/tags/list`);
  const body = (await res.json()) as { tags?: string[] | null };
  return { status: res.status, tags: [...(body.tags ?? [])].sort() };
}

/** Runs the built ferry CLI. */
function ferry(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

describe('ferry import', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let goproxy: StaticServer;
  let layout: OciLayoutBuilder;
  let trust: TrustedKey[];
  let keyPath: string;
  let pubPath: string;
  let store: Store;
  let cfg: Config;
  let base: Layer;
  let amd: Image;
  let arm: Image;
  let idx: Index;
  let idx2: Index;
  let amd2: Image;
  let b1: ExportResult;
  let b2: ExportResult;
  let v2: Image;
  let client: RegistryClient;

  const bundleDir = (r: ExportResult): string => join(dir, `out-${r.sequence}`);
  const bundleTar = (r: ExportResult): string => join(bundleDir(r), `${r.name}.tar`);

  function opts(extra: Partial<ImportOptions> & { ledger: Ledger }): ImportOptions {
    return { bundles: [], trust, registry: client, logger, ...extra };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-import-test-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    client = new RegistryClient({ host: intra.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    const keys = await writeKeyPair(join(dir, 'signer'));
    keyPath = keys.privateKeyPath;
    pubPath = keys.publicKeyPath;
    trust = [await loadTrustedKey(pubPath)];

    layout = await OciLayoutBuilder.create();
    base = await layout.addLayer({ size: 64 * 1024, seed: 'base' });
    amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    await layout.tag('v1', idx);
    await pushLayout(layout.dir, 'v1', `${up.host}/team/app:v1`);
    // Another index, synced with linux/amd64 only: its arm64 child never travels.
    amd2 = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'amd2' })], platform: { os: 'linux', architecture: 'amd64' } });
    const arm2 = await layout.addImage({ layers: [await layout.addLayer({ size: 3000, seed: 'arm2' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx2 = await layout.addIndex([amd2, arm2]);
    await layout.tag('m1', idx2);
    await pushLayout(layout.dir, 'm1', `${up.host}/team/multi:v1`);

    await buildProxyTree(join(dir, 'proxy'), [
      { path: 'example.com/Hello', version: 'v1.0.0', files: { 'hello.go': 'package hello\n\nfunc Hello() string { return "hello" }\n' } },
      { path: 'example.com/Hello', version: 'v1.1.0', files: { 'hello.go': 'package hello\n\nfunc Hello() string { return "hello, again" }\n' } },
    ]);
    goproxy = await serveDir(join(dir, 'proxy'));
    const cfgFile = join(dir, 'ferry.yaml');
    const text =
      `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
      `images:\n  - name: app\n    source: ${up.host}/team/app\n  - name: multi\n    source: ${up.host}/team/multi\n    platforms: [linux/amd64]\n` +
      `goModules:\n  proxy: ${goproxy.url}\n  sumdb: "off"\n  modules:\n    - path: example.com/Hello\n      versions: [v1.0.0]\n      deps: false\n`;
    writeFileSync(cfgFile, text);
    cfg = parseConfig(text, cfgFile);
    store = Store.open(cfg.store);
    const s1 = await runSync({ config: cfg, store, logger });
    expect(s1.failures).toEqual([]);
    b1 = await exportBundle({ store, outDir: join(dir, 'out-1'), signingKey: keyPath, logger });

    // Bundle 2: a new tag sharing the base layer, and a new module version.
    v2 = await layout.addImage({ layers: [base, await layout.addLayer({ size: 5000, seed: 'v2' })] });
    await layout.tag('v2', v2);
    await pushLayout(layout.dir, 'v2', `${up.host}/team/app:v2`);
    const text2 = text.replace('versions: [v1.0.0]', 'versions: [v1.0.0, v1.1.0]');
    writeFileSync(cfgFile, text2);
    const s2 = await runSync({ config: parseConfig(text2, cfgFile), store, logger });
    expect(s2.failures).toEqual([]);
    b2 = await exportBundle({ store, outDir: join(dir, 'out-2'), signingKey: keyPath, logger });
    expect(b2.parent).toBe(b1.id);
    expect(b2.requires).toBeGreaterThan(0);
  });

  afterAll(async () => {
    store?.close();
    await client?.close();
    await Promise.all([up?.stop(), intra?.stop(), goproxy?.stop()]);
    await layout?.remove();
    if (dir && !process.env["KEEP"]) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the second bundle of a chain before the first, naming it; --force without the required blobs lists them', async () => {
    const ledger = Ledger.open(join(dir, 'chain.db'));
    try {
      const err = await importBundles(opts({ bundles: [bundleTar(b2)], ledger, gomodDir: join(dir, 'chain-gomod') })).catch((e: unknown) => e);
      expect(isFerryError(err, 'CHAIN_BROKEN')).toBe(true);
      expect((err as Error).message).toContain(`sequence 1 (${b1.id})`);
      const forced = await importBundles(opts({ bundles: [bundleTar(b2)], ledger, force: true })).catch((e: unknown) => e);
      expect(isFerryError(forced, 'REQUIRES_MISSING')).toBe(true);
      expect((forced as Error).message).toContain(base.digest);
      const tl = await tagList(intra.host, 'team/app');
      expect(tl.tags).toEqual([]);
    } finally {
      ledger.close();
    }
  });

  it('--dry-run lists what would be pushed with sizes and changes nothing, not even the ledger', async () => {
    const ledgerFile = join(dir, 'dry.db');
    const gomod = join(dir, 'dry-gomod');
    const r = ferry(['import', bundleTar(b1), '--trust', pubPath, '--registry', intra.host, '--plain-http', '--gomod-dir', gomod, '--ledger', ledgerFile, '--dry-run']);
    const out = await r.done;
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('dry run, nothing changed');
    expect(out.stdout).toMatch(/push-blob\s+sha256:[0-9a-f]{64}\s+64\.\d KiB/);
    expect(out.stdout).toContain('set-tag');
    expect(existsSync(ledgerFile)).toBe(false);
    expect(existsSync(gomod)).toBe(false);
    await intra.flushLog();
    expect(intra.requests().filter((q) => q.method !== 'HEAD' && q.method !== 'GET')).toEqual([]);
  });

  it('a flipped byte anywhere fails naming the file: no tag, gomod tree unchanged, failure in the ledger', async () => {
    const bad = join(dir, 'bad');
    cpSync(bundleDir(b1), bad, { recursive: true });
    const tar = join(bad, `${b1.name}.tar`);
    rmSync(join(bad, `${b1.name}.parts.json`));
    rmSync(join(bad, `${b1.name}.parts.json.sig`));
    // The zip is the last entry: every blob and manifest has been read (and blobs pushed) by then.
    const zipEntry = 'gomod/example.com/!hello/@v/v1.0.0.zip';
    await flipByteInEntry(tar, zipEntry, 40);
    const gomod = join(dir, 'bad-gomod');
    mkdirSync(gomod);
    writeFileSync(join(gomod, 'keep.txt'), 'x');
    const ledger = Ledger.open(join(dir, 'bad.db'));
    try {
      const err = await importBundles(opts({ bundles: [tar], ledger, gomodDir: gomod })).catch((e: unknown) => e);
      expect(isFerryError(err)).toBe(true);
      expect((err as Error).message).toContain(zipEntry);
      for (const repo of ['team/app', 'team/multi']) expect((await tagList(intra.host, repo)).tags).toEqual([]);
      expect(readdirSync(gomod)).toEqual(['keep.txt']);
      const rec = ledger.bundleRecords(b1.id);
      expect(rec.map((x) => x.result)).toEqual(['failed', 'failed']);
      expect(rec[0]!.error).toContain(zipEntry);

      // A flipped byte in a layer (streamed while pushed) fails the same way.
      cpSync(join(bundleDir(b1), `${b1.name}.tar`), tar);
      await flipByteInEntry(tar, `blobs/sha256/${base.digest.slice(7)}`, 1000);
      const err2 = await importBundles(opts({ bundles: [tar], ledger, gomodDir: gomod })).catch((e: unknown) => e);
      expect((err2 as Error).message).toContain(base.digest.slice(7));
      for (const repo of ['team/app', 'team/multi']) expect((await tagList(intra.host, repo)).tags).toEqual([]);
      expect(readdirSync(gomod)).toEqual(['keep.txt']);
    } finally {
      ledger.close();
    }
  });

  describe('full, again, then incremental', () => {
    let ledger: Ledger;
    let gomod: string;
    let first: ImportResult;

    beforeAll(() => {
      ledger = Ledger.open(join(dir, 'main.db'));
      gomod = join(dir, 'gomod');
    });
    afterAll(() => ledger?.close());

    it('imports the full bundle: upstream digests, a platform-filtered index rewritten and reported, modules re-verified', async () => {
      intra.clearRequests();
      first = await importBundles(opts({ bundles: [bundleTar(b1)], ledger, gomodDir: gomod }));
      const b = first.bundles[0]!;
      expect(b.status).toBe('imported');
      const reg = b.targets.find((t) => t.kind === 'registry')!;
      const byRepo = new Map([...reg.tags].map((t) => [t.repository, t]));
      // All platforms carried: the upstream index as it is.
      expect(byRepo.get('team/app')).toMatchObject({ tag: 'v1', digest: idx.digest, upstreamDigest: idx.digest });
      expect(byRepo.get('team/app')?.filteredFrom).toBeUndefined();
      const head = await client.manifestHead('team/app', 'v1');
      expect(head?.digest).toBe(idx.digest);
      // linux/amd64 only: distribution refuses the index without arm64, so it lands filtered.
      const multi = byRepo.get('team/multi')!;
      expect(multi.filteredFrom).toBe(idx2.digest);
      expect(multi.upstreamDigest).toBe(idx2.digest);
      expect(multi.digest).not.toBe(idx2.digest);
      expect(b.filtered.map((t) => t.repository)).toEqual(['team/multi']);
      const got = await client.manifestGet('team/multi', 'v1');
      expect(got.digest).toBe(multi.digest);
      const parsed = JSON.parse(got.bytes.toString('utf8')) as { manifests: Array<{ digest: string }>; annotations: Record<string, string> };
      expect(parsed.manifests.map((m) => m.digest)).toEqual([amd2.digest]);
      expect(parsed.annotations['io.ferry.filtered-from']).toBe(idx2.digest);
      expect(ledger.getItem(reg.target, 'tag', 'team/multi', 'v1')?.detail).toContain(idx2.digest);
      expect((await client.manifestHead('team/multi', amd2.digest))?.digest).toBe(amd2.digest);
      expect(first.warnings.join('\n')).toContain('team/multi:v1');
      // Modules: a GOPROXY tree with list, info, mod, zip.
      const v = join(gomod, 'example.com', '!hello', '@v');
      expect(readFileSync(join(v, 'list'), 'utf8')).toBe('v1.0.0\n');
      for (const f of ['v1.0.0.info', 'v1.0.0.mod', 'v1.0.0.zip']) expect(existsSync(join(v, f))).toBe(true);
      expect(readdirSync(gomod).filter((n) => n.startsWith('.ferry-staging'))).toEqual([]);
      expect(first.clientConfig.env).toMatchObject({ GOPROXY: `file://${gomod}`, GOSUMDB: 'off', GOTOOLCHAIN: 'local' });
      expect(first.clientConfig.registriesConf).toContain(`location = "${intra.host}/team/app"`);
      expect(ledger.bundleRecords(b1.id).map((r) => r.result)).toEqual(['ok', 'ok']);
    });

    it('importing the same bundle twice is a no-op that says so', async () => {
      intra.clearRequests();
      const again = await importBundles(opts({ bundles: [bundleTar(b1)], ledger, gomodDir: gomod }));
      expect(again.bundles[0]!.status).toBe('already-imported');
      await intra.flushLog();
      expect(intra.requests().filter((q) => q.method !== 'GET' && q.method !== 'HEAD')).toEqual([]);
      const out = await ferry(['import', bundleTar(b1), '--trust', pubPath, '--registry', intra.host, '--plain-http', '--gomod-dir', gomod, '--ledger', ledger.file]).done;
      expect(out.code).toBe(0);
      expect(out.stdout).toContain('already imported');
    });

    it('the incremental bundle pushes only its new blobs and merges @v/list', async () => {
      intra.clearRequests();
      const r = await importBundles(opts({ bundles: [bundleDir(b2)], ledger, gomodDir: gomod }));
      expect(r.bundles[0]!.status).toBe('imported');
      await intra.flushLog();
      const pushed = uploads(intra.requests()).sort();
      expect(pushed).toEqual([v2.config.digest, v2.layers[1]!.digest].sort());
      expect((await client.manifestHead('team/app', 'v2'))?.digest).toBe(v2.digest);
      expect(readFileSync(join(gomod, 'example.com', '!hello', '@v', 'list'), 'utf8')).toBe('v1.0.0\nv1.1.0\n');
      const status = ledger.chainStatus();
      expect(status[0]).toMatchObject({ highest: 2, missing: [] });
    });

    it('ferry ledger lists what arrived; --status shows what a chain misses', async () => {
      const out = await ferry(['ledger', '--ledger', ledger.file]).done;
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(b1.id);
      expect(out.stdout).toContain(b2.id);
      expect(out.stdout).toContain('chain complete');
      // A disc skipped with --force (Go modules need nothing from earlier bundles): the status names it.
      const gap = Ledger.open(join(dir, 'gap.db'));
      try {
        const r = await importBundles({ bundles: [bundleTar(b2)], trust, gomodDir: join(dir, 'gap-gomod'), ledger: gap, force: true, logger });
        expect(r.warnings.join('\n')).toContain('without its parent');
      } finally {
        gap.close();
      }
      const miss = await ferry(['import', '--status', '--ledger', join(dir, 'gap.db'), '--json']).done;
      const json = JSON.parse(miss.stdout) as { stores: Array<{ missing: Array<{ sequence: number; id: string | null }> }> };
      expect(json.stores[0]!.missing).toEqual([{ sequence: 1, id: b1.id }]);
      const text = await ferry(['ledger', '--gomod-dir', join(dir, 'gap-gomod'), '--ledger', join(dir, 'gap.db')]).done;
      expect(text.stdout).toContain(`missing: sequence 1 (${b1.id})`);
      const failed = await ferry(['import', '--status', '--ledger', join(dir, 'bad.db'), '--json']).done;
      const fj = JSON.parse(failed.stdout) as { stores: Array<{ bundles: Array<{ result: string }> }> };
      expect(fj.stores[0]!.bundles.map((b) => b.result)).toContain('failed');
    });
  });

  it('split bundles import from the first part and from the directory, into a store', async () => {
    const split = await exportBundle({ store, outDir: join(dir, 'out-split'), signingKey: keyPath, full: true, splitSize: 32 * 1024, logger });
    const parts = readdirSync(join(dir, 'out-split')).filter((f) => /\.tar\.\d{3}$/.test(f));
    expect(parts.length).toBeGreaterThan(2);
    const s1 = Store.open(join(dir, 'store-a'));
    const l1 = Ledger.open(join(dir, 'store-a', 'ledger.db'));
    try {
      const flush = vi.spyOn(s1, 'flush');
      const finish = vi.spyOn(l1, 'finishBundle');
      const r = await importBundles({ bundles: [join(dir, 'out-split', `${split.name}.tar.001`)], trust, store: s1, ledger: l1, logger });
      expect(r.bundles[0]!.status).toBe('imported');
      // What the bundle carried is on disk (the index flushed) before the ledger calls it done.
      expect(flush.mock.calls).toEqual([['importCommit']]);
      expect(flush.mock.invocationCallOrder[0]!).toBeLessThan(finish.mock.invocationCallOrder.at(-1)!);
      expect(s1.tags.get({ registry: up.host, repository: 'team/app', tag: 'v2' })?.digest).toBe(v2.digest);
      expect(s1.tags.get({ registry: up.host, repository: 'team/multi', tag: 'v1' })?.keptDigests).toEqual([amd2.digest]);
      expect(s1.modules.list().map((m) => m.version).sort()).toEqual(['v1.0.0', 'v1.1.0']);
      expect((await s1.fsck()).problems).toEqual([]);
      // The store can carry it one hop further.
      const next = await exportBundle({ store: s1, outDir: join(dir, 'out-hop'), signingKey: keyPath, logger });
      expect(next.images).toBe(3);
      expect(next.modules).toBe(2);
    } finally {
      l1.close();
      s1.close();
    }
    const gomod = join(dir, 'split-gomod');
    const l2 = Ledger.open(join(dir, 'split.db'));
    try {
      const r = await importBundles({ bundles: [join(dir, 'out-split')], trust, gomodDir: gomod, ledger: l2, logger });
      expect(r.bundles[0]!.status).toBe('imported');
      expect(readFileSync(join(gomod, 'example.com', '!hello', '@v', 'list'), 'utf8')).toBe('v1.0.0\nv1.1.0\n');
    } finally {
      l2.close();
    }
  });

  it('resumes after kill -9 mid-import without re-uploading finished blobs', async () => {
    // A bundle of its own with several 1 MiB layers.
    const big = await OciLayoutBuilder.create();
    const layers: Layer[] = [];
    for (let i = 0; i < 6; i++) layers.push(await big.addLayer({ size: 1024 * 1024, seed: `big-${i}` }));
    const img = await big.addImage({ layers });
    await big.tag('1.0', img);
    await pushLayout(big.dir, '1.0', `${up.host}/team/big:1.0`);
    await big.remove();
    const bigText = `version: 1\nstore: ./store-big\nregistries:\n  - host: ${up.host}\n    tls: plain-http\nimages:\n  - name: big\n    source: ${up.host}/team/big\n`;
    writeFileSync(join(dir, 'big.yaml'), bigText);
    const bigStore = Store.open(join(dir, 'store-big'));
    let bundle: ExportResult;
    try {
      expect((await runSync({ config: parseConfig(bigText, join(dir, 'big.yaml')), store: bigStore, logger })).failures).toEqual([]);
      bundle = await exportBundle({ store: bigStore, outDir: join(dir, 'out-big'), signingKey: keyPath, logger });
    } finally {
      bigStore.close();
    }

    // A loopback proxy in front of the intranet registry that holds each blob PUT back a little,
    // records what completed, and kills the importer once three uploads have finished.
    const completed: string[] = [];
    const seen: Array<{ method: string; path: string }> = [];
    let victim: ChildProcess | undefined;
    const target = intra.host;
    const proxy = createServer((req, res) => {
      seen.push({ method: req.method ?? '', path: req.url ?? '' });
      const isPut = req.method === 'PUT' && (req.url ?? '').includes('/blobs/uploads/');
      const forward = (): void => {
        const [h, p] = target.split(':');
        const upReq = httpRequest({ host: h, port: Number(p), method: req.method, path: req.url, headers: { ...req.headers, host: target } }, (upRes) => {
          const headers = { ...upRes.headers };
          if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${target}`, `//${proxyHost}`);
          res.writeHead(upRes.statusCode ?? 502, headers);
          upRes.pipe(res);
          res.on('finish', () => {
            if (isPut && upRes.statusCode === 201) {
              completed.push(decodeURIComponent(/digest=([^&]+)/.exec(req.url ?? '')?.[1] ?? ''));
              if (completed.length === 3 && victim) victim.kill('SIGKILL');
            }
          });
        });
        upReq.on('error', () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        req.pipe(upReq);
      };
      if (isPut) setTimeout(forward, 300);
      else forward();
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const ledgerFile = join(dir, 'kill.db');
      const args = ['import', join(dir, 'out-big', `${bundle.name}.tar`), '--trust', pubPath, '--registry', proxyHost, '--plain-http', '--ledger', ledgerFile, '--concurrency', '1'];
      const run1 = ferry(args);
      victim = run1.child;
      const r1 = await run1.done;
      expect(r1.code).toBeNull(); // killed by the signal
      expect(completed.length).toBeGreaterThanOrEqual(3);
      const before = [...completed];
      expect((await tagList(intra.host, 'team/big')).tags).toEqual([]);
      const ledger = Ledger.open(ledgerFile, { readonly: true });
      expect(ledger.bundleRecords(bundle.id).map((b) => b.result)).toEqual(['running']);
      ledger.close();

      seen.length = 0;
      victim = undefined;
      const r2 = await ferry(args).done;
      expect(r2.stderr).toBe('');
      expect(r2.code).toBe(0);
      const reput = seen.filter((q) => q.method === 'PUT' && before.some((d) => q.path.includes(encodeURIComponent(d)) || q.path.includes(d)));
      expect(reput).toEqual([]);
      // The first finished blob was recorded long before the kill: not even a HEAD for it.
      expect(seen.filter((q) => q.path.includes(before[0]!))).toEqual([]);
      expect((await client.manifestHead('team/big', '1.0'))?.digest).toBe(img.digest);
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('CLI usage: no target exits 2', async () => {
    const out = await ferry(['import', bundleTar(b1), '--trust', pubPath]).done;
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('at least one target');
  });
});
