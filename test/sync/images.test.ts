// Image sync end to end against three real docker-registry instances on 127.0.0.1 (open,
// htpasswd basic auth, token auth), with images pushed by skopeo and read back by skopeo.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync, TAGS_IN_FLIGHT, type SyncSummary } from '../../sync/index.js';
import { sha256Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import { OciLayoutBuilder, pushLayout, skopeoInspect, type Image, type Index, type Layer } from '../helpers/images.js';
import { startRegistry, type LoggedRequest, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });
const BASIC_USER = 'alice';
const BASIC_PASS = 'basic pass: with spaces';
const TOKEN_USER = 'bob';
const TOKEN_PASS = 'token-secret-42';
// Credentials reach Ferry only through env: references, as a real deployment would pass them.
const ENV_BASIC = 'FERRY_E2E_BASIC_PASSWORD';
const ENV_TOKEN = 'FERRY_E2E_TOKEN_PASSWORD';

const blobGets = (reqs: LoggedRequest[]): string[] =>
  reqs.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path)).map((r) => r.path.replace(/^.*\/blobs\//, '').replace(/\?.*$/, ''));
const manifestGets = (reqs: LoggedRequest[]): LoggedRequest[] => reqs.filter((r) => r.method === 'GET' && r.path.includes('/manifests/'));

describe('image sync against real registries', () => {
  let dir: string;
  let open: RunningRegistry;
  let basic: RunningRegistry;
  let token: RunningRegistry;
  let layout: OciLayoutBuilder;
  let base: Layer;
  let amdOnly: Layer;
  let armOnly: Layer;
  let amd: Image;
  let arm: Image;
  let idx: Index;
  /** Every tag pushed upstream: `host/repo:tag` → skopeo credentials. */
  const upstream = new Map<string, string | undefined>();
  const basicCreds = `${BASIC_USER}:${BASIC_PASS}`;
  const tokenCreds = `${TOKEN_USER}:${TOKEN_PASS}`;

  async function push(tag: string, target: Image | Index, dest: string, creds?: string): Promise<void> {
    await layout.tag(tag, target);
    await pushLayout(layout.dir, tag, dest, creds ? { creds } : {});
    upstream.set(dest, creds);
  }

  async function single(seed: string, layers: Layer[] = [base]): Promise<Image> {
    const own = await layout.addLayer({ size: 4000, seed });
    return layout.addImage({ layers: [...layers, own], labels: { seed } });
  }

  beforeAll(async () => {
    process.env[ENV_BASIC] = BASIC_PASS;
    process.env[ENV_TOKEN] = TOKEN_PASS;
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-sync-'));
    [open, basic, token] = await Promise.all([
      startRegistry({ auth: 'none' }),
      startRegistry({ auth: 'htpasswd', users: { [BASIC_USER]: BASIC_PASS } }),
      startRegistry({ auth: 'token', users: { [TOKEN_USER]: TOKEN_PASS } }),
    ]);
    layout = await OciLayoutBuilder.create();
    // One base layer shared by every image in the open registry, across two repositories.
    base = await layout.addLayer({ size: 96 * 1024, seed: 'base' });
    amdOnly = await layout.addLayer({ size: 5000, seed: 'amd-only' });
    armOnly = await layout.addLayer({ size: 6000, seed: 'arm-only' });
    amd = await layout.addImage({ layers: [base, amdOnly], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await layout.addImage({ layers: [base, armOnly], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    idx = await layout.addIndex([amd, arm]);
    const o = open.host;
    await push('v1.0.0', idx, `${o}/team/app:v1.0.0`);
    await push('v1.1.0', await single('app-1.1'), `${o}/team/app:v1.1.0`);
    const v12 = await single('app-1.2');
    await push('v1.2.0', v12, `${o}/team/app:v1.2.0`);
    await push('latest', v12, `${o}/team/app:latest`);
    await push('v2.0.0-rc1', await single('app-2.0-rc1'), `${o}/team/app:v2.0.0-rc1`);
    await push('dev-abc', await single('app-dev'), `${o}/team/app:dev-abc`);
    await push('1.0', await single('tools-1.0'), `${o}/team/tools:1.0`);
    // Basic auth: two tags of one repository sharing their first layer.
    const dbBase = await layout.addLayer({ size: 20_000, seed: 'db-base' });
    await push('db-v1', await single('db-1', [dbBase]), `${basic.host}/private/db:v1`, basicCreds);
    await push('db-v2', await single('db-2', [dbBase]), `${basic.host}/private/db:v2`, basicCreds);
    // Token auth: a multi-arch index and a single image.
    await push('api-v1', idx, `${token.host}/secure/api:v1`, tokenCreds);
    await push('api-v2', await single('api-2'), `${token.host}/secure/api:v2`, tokenCreds);
  });

  afterAll(async () => {
    await Promise.all([open?.stop(), basic?.stop(), token?.stop()]);
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
    delete process.env[ENV_BASIC];
    delete process.env[ENV_TOKEN];
  });

  /** Writes a config file over the three registries with the given images block; returns it parsed. */
  function config(name: string, images: string): Config {
    const file = join(dir, `${name}.yaml`);
    const text =
      `version: 1\nstore: ./${name}-store\nconcurrency: 4\n` +
      `registries:\n` +
      `  - host: ${open.host}\n    tls: plain-http\n` +
      `  - host: ${basic.host}\n    tls: plain-http\n    username: ${BASIC_USER}\n    password: env:${ENV_BASIC}\n` +
      `  - host: ${token.host}\n    tls: plain-http\n    username: ${TOKEN_USER}\n    password: env:${ENV_TOKEN}\n` +
      `images:\n${images}`;
    writeFileSync(file, text);
    return parseConfig(text, file);
  }

  async function sync(cfg: Config, store: Store): Promise<SyncSummary> {
    return runSync({ config: cfg, store, logger, retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
  }

  async function upstreamDigest(ref: string): Promise<string> {
    const creds = upstream.get(ref);
    const raw = (await skopeoInspect(ref, { raw: true, ...(creds ? { creds } : {}) })) as string;
    return sha256Digest(Buffer.from(raw, 'utf8'));
  }

  async function syncTags(name: string, tagsYaml: string): Promise<string[]> {
    const cfg = config(name, `  - name: app\n    source: ${open.host}/team/app\n    tags:\n${tagsYaml}`);
    const store = Store.open(cfg.store);
    try {
      const s = await sync(cfg, store);
      expect(s.failures).toEqual([]);
      return store.tags
        .list()
        .map((t) => t.tag)
        .sort();
    } finally {
      store.close();
    }
  }

  describe('full mirror, then nothing changed, then a moved tag', () => {
    let cfg: Config;
    let store: Store;

    beforeAll(() => {
      cfg = config(
        'full',
        `  - name: app\n    source: ${open.host}/team/app\n` +
          `  - name: tools\n    source: ${open.host}/team/tools\n` +
          `  - name: db\n    source: ${basic.host}/private/db\n` +
          `  - name: api\n    source: ${token.host}/secure/api\n`,
      );
      store = Store.open(cfg.store);
    });
    afterAll(() => store?.close());

    it('stores every upstream tag with the digest skopeo sees, complete and fsck-clean, each shared blob fetched once', async () => {
      for (const r of [open, basic, token]) r.clearRequests();
      const s = await sync(cfg, store);
      expect(s.failures).toEqual([]);
      expect(s.ok).toBe(true);
      expect(s.images).toEqual({ checked: 4, changed: 4, unchanged: 0, failed: 0 });
      expect(s.tags.checked).toBe(upstream.size);

      const tags = store.tags.list();
      expect(tags).toHaveLength(upstream.size);
      for (const ref of upstream.keys()) {
        const [hostRepo, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
        const registry = hostRepo.slice(0, hostRepo.indexOf('/'));
        const repository = hostRepo.slice(hostRepo.indexOf('/') + 1);
        const row = store.tags.get({ registry, repository, tag });
        expect(row, ref).toBeDefined();
        expect(row?.digest, ref).toBe(await upstreamDigest(ref));
      }
      // Every index child (no platform filter), config and layer is stored, with exact bytes.
      for (const d of [idx.digest, amd.digest, arm.digest, base.digest, amdOnly.digest, armOnly.digest, amd.config.digest, arm.config.digest]) {
        expect(store.content.hasBlob(d), d).toBe(true);
      }
      expect(store.content.getManifest(idx.digest)?.references.map((r) => r.digest)).toEqual([amd.digest, arm.digest]);
      const fsck = await store.fsck();
      expect(fsck.problems).toEqual([]);

      // The base layer is shared by 7 tags over two repositories: one GET in all.
      await open.flushLog();
      const gets = blobGets(open.requests());
      expect(gets.filter((d) => d === base.digest)).toHaveLength(1);
      expect(new Set(gets).size).toBe(gets.length);
      for (const r of [basic, token]) {
        await r.flushLog();
        const g = blobGets(r.requests());
        expect(new Set(g).size).toBe(g.length);
      }
      expect(s.blobs.fetched).toBe(store.stats().blobs - store.stats().manifests);
    });

    it('a second sync with nothing changed sends only HEADs and writes nothing', async () => {
      const seq = store.journal.currentSeq();
      const before = store.stats();
      for (const r of [open, basic, token]) r.clearRequests();
      const s = await sync(cfg, store);
      expect(s.ok).toBe(true);
      expect(s.images).toEqual({ checked: 4, changed: 0, unchanged: 4, failed: 0 });
      expect(s.tags).toEqual({ checked: upstream.size, changed: 0, unchanged: upstream.size, failed: 0 });
      expect(s.blobs).toEqual({ fetched: 0, bytes: 0 });
      expect(s.manifestsFetched).toBe(0);
      let heads = 0;
      for (const r of [open, basic, token]) {
        await r.flushLog();
        const reqs = r.requests();
        expect(manifestGets(reqs), r.host).toEqual([]);
        expect(blobGets(reqs), r.host).toEqual([]);
        heads += reqs.filter((q) => q.method === 'HEAD' && q.path.includes('/manifests/') && q.status === 200).length;
      }
      expect(heads).toBe(upstream.size);
      expect(store.journal.currentSeq()).toBe(seq);
      const after = store.stats();
      expect(after.blobs).toBe(before.blobs);
      expect(after.bytes).toBe(before.bytes);
      expect(after.manifests).toBe(before.manifests);
    });

    it('a tag moved upstream fetches only the new blobs and journals one entry with the previous digest', async () => {
      const ref = `${open.host}/team/app:latest`;
      const old = store.tags.get({ registry: open.host, repository: 'team/app', tag: 'latest' });
      expect(old).toBeDefined();
      const moved = await single('app-latest-moved');
      await push('latest', moved, ref);
      const newBlobs = [moved.config.digest, (moved.layers[1] as Layer).digest].sort();
      // The base layer is shared with the old image: it must not travel again.
      expect(moved.layers[0]?.digest).toBe(base.digest);
      const seq = store.journal.currentSeq();
      open.clearRequests();

      const s = await sync(cfg, store);
      expect(s.ok).toBe(true);
      expect(s.tags.changed).toBe(1);
      expect(s.images.changed).toBe(1);
      await open.flushLog();
      const reqs = open.requests();
      expect(blobGets(reqs).sort()).toEqual(newBlobs);
      expect(manifestGets(reqs).map((r) => r.path)).toEqual([`/v2/team/app/manifests/${moved.digest}`]);
      expect(s.blobs.fetched).toBe(2);

      const journal = store.journal.since(seq);
      expect(journal).toHaveLength(1);
      expect(journal[0]).toMatchObject({
        kind: 'tag',
        registry: open.host,
        repository: 'team/app',
        tag: 'latest',
        digest: moved.digest,
        previousDigest: old?.digest,
      });
      expect(store.tags.get({ registry: open.host, repository: 'team/app', tag: 'latest' })?.digest).toBe(await upstreamDigest(ref));
      expect((await store.fsck()).problems).toEqual([]);
    });
  });

  it('keeps only the configured platform of an index: its child and blobs, not the other child', async () => {
    const cfg = config('arm', `  - name: app-arm\n    source: ${open.host}/team/app\n    tags:\n      include: [v1.0.0]\n    platforms: [linux/arm64]\n`);
    const store = Store.open(cfg.store);
    try {
      const s = await sync(cfg, store);
      expect(s.failures).toEqual([]);
      const t = store.tags.get({ registry: open.host, repository: 'team/app', tag: 'v1.0.0' });
      expect(t?.digest).toBe(idx.digest);
      expect(t?.keptDigests).toEqual([arm.digest]);
      expect(t?.platforms).toEqual(['linux/arm64']);
      // The index is kept byte for byte (it still names both children).
      expect(store.content.hasManifest(idx.digest)).toBe(true);
      expect(store.content.hasManifest(arm.digest)).toBe(true);
      expect(store.content.getManifest(arm.digest)?.platform).toBe('linux/arm64/v8');
      expect(store.content.hasManifest(amd.digest)).toBe(false);
      expect(store.content.hasBlob(amd.digest)).toBe(false);
      expect(store.content.hasBlob(amdOnly.digest)).toBe(false);
      expect(store.content.hasBlob(amd.config.digest)).toBe(false);
      for (const d of [base.digest, armOnly.digest, arm.config.digest]) expect(store.content.hasBlob(d), d).toBe(true);
      expect((await store.fsck()).problems).toEqual([]);

      // Widening the filter to both platforms moves nothing upstream but fetches the amd64 child.
      const both = config('arm', `  - name: app-arm\n    source: ${open.host}/team/app\n    tags:\n      include: [v1.0.0]\n    platforms: [linux/arm64, linux/amd64]\n`);
      const s2 = await sync(both, store);
      expect(s2.failures).toEqual([]);
      expect(s2.tags.changed).toBe(1);
      expect(store.tags.get({ registry: open.host, repository: 'team/app', tag: 'v1.0.0' })?.keptDigests).toEqual([amd.digest, arm.digest].sort());
      expect(store.content.hasBlob(amdOnly.digest)).toBe(true);
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('moves the tags past the first wave naming one index with what its copy worked out: the kept child, a journal entry each', async () => {
    // More tags than TAGS_IN_FLIGHT: those picked up after the first copy finished reuse it.
    await push('m00', idx, `${open.host}/team/multi:m00`);
    const got = await fetch(`http://${open.host}/v2/team/multi/manifests/${idx.digest}`, { headers: { accept: idx.mediaType } });
    expect(got.status).toBe(200);
    const bytes = Buffer.from(await got.arrayBuffer());
    const tags = Array.from({ length: TAGS_IN_FLIGHT + 6 }, (_, i) => `m${String(i).padStart(2, '0')}`);
    for (const t of tags.slice(1)) {
      const put = await fetch(`http://${open.host}/v2/team/multi/manifests/${t}`, { method: 'PUT', headers: { 'content-type': idx.mediaType }, body: bytes });
      expect(put.status, t).toBe(201);
    }
    const cfg = config('multi', `  - name: multi\n    source: ${open.host}/team/multi\n    platforms: [linux/arm64]\n`);
    const store = Store.open(cfg.store);
    try {
      const seq = store.journal.currentSeq();
      const s = await sync(cfg, store);
      expect(s.failures).toEqual([]);
      expect(s.tags.changed).toBe(tags.length);
      for (const tag of tags) {
        const t = store.tags.get({ registry: open.host, repository: 'team/multi', tag });
        expect(t?.digest, tag).toBe(idx.digest);
        expect(t?.keptDigests, tag).toEqual([arm.digest]);
        expect(t?.platforms, tag).toEqual(['linux/arm64']);
      }
      expect(store.journal.since(seq).map((e) => e.tag).sort()).toEqual(tags);
      expect(store.content.hasManifest(amd.digest)).toBe(false);
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });

  describe('tag filters', () => {
    it('include glob', async () => {
      expect(await syncTags('f-glob', `      include: ["v1.*"]\n`)).toEqual(['v1.0.0', 'v1.1.0', 'v1.2.0']);
    });
    it('include regex', async () => {
      expect(await syncTags('f-regex', `      include: ['/^v\\d+\\.\\d+\\.\\d+$/']\n`)).toEqual(['v1.0.0', 'v1.1.0', 'v1.2.0']);
    });
    it('include with exclude', async () => {
      expect(await syncTags('f-exclude', `      include: ["v*", latest]\n      exclude: ["*-rc*", "v1.0.*"]\n`)).toEqual(['latest', 'v1.1.0', 'v1.2.0']);
    });
    it('latest N by version', async () => {
      expect(await syncTags('f-latest', `      exclude: ["*-rc*"]\n      latest: 2\n`)).toEqual(['v1.1.0', 'v1.2.0']);
    });
    it('no match stores nothing and is not a failure', async () => {
      expect(await syncTags('f-none', `      include: ["nothing-*"]\n`)).toEqual([]);
    });
  });
});
