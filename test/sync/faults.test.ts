// Sync under faults a real registry will not produce on demand: rate limits, a reset in the
// middle of a blob, wrong bytes, a persistent 5xx. An in-process fake registry serves the
// distribution API from memory and lets each test break one request.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { sha256Digest, type Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import { OCI, randomData } from '../helpers/images.js';
import { recordingSleep, startFake, type FakeServer, type SeenRequest } from '../net/fake-server.js';

const logger = pino({ level: 'silent' });

/** An image held in memory: its manifest bytes and blobs. */
interface MemImage {
  readonly digest: Digest;
  readonly manifest: Buffer;
  readonly config: Digest;
  readonly layers: readonly Digest[];
  readonly blobs: ReadonlyMap<Digest, Buffer>;
}

function memImage(seed: string, layers: readonly Buffer[]): MemImage {
  const blobs = new Map<Digest, Buffer>();
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { seed } }, rootfs: { type: 'layers', diff_ids: [] } }));
  const cfgDigest = sha256Digest(cfg);
  blobs.set(cfgDigest, cfg);
  const layerDescs = layers.map((l) => {
    const d = sha256Digest(l);
    blobs.set(d, l);
    return { mediaType: OCI.layer, digest: d, size: l.length };
  });
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config: { mediaType: OCI.config, digest: cfgDigest, size: cfg.length }, layers: layerDescs }),
  );
  return { digest: sha256Digest(manifest), manifest, config: cfgDigest, layers: layerDescs.map((l) => l.digest), blobs };
}

/** What a fault hook may do with a request: answer it itself (true) or let the registry answer. */
type Fault = (req: SeenRequest, res: ServerResponse) => boolean;

/** A fake distribution registry over in-memory repositories, with one replaceable fault hook. */
class FakeRegistry {
  readonly repos = new Map<string, Map<string, MemImage>>();
  private readonly manifests = new Map<Digest, Buffer>();
  private readonly blobs = new Map<Digest, Buffer>();
  fault: Fault | undefined;
  private constructor(readonly server: FakeServer) {}

  static async start(): Promise<FakeRegistry> {
    // The handler needs the instance, which needs the started server.
    const holder: { reg?: FakeRegistry } = {};
    const server = await startFake((req, res) => {
      const reg = holder.reg as FakeRegistry;
      if (reg.fault?.(req, res)) return;
      reg.answer(req, res);
    });
    holder.reg = new FakeRegistry(server);
    return holder.reg;
  }

  get host(): string {
    return this.server.host;
  }

  /** Requests seen whose path contains `part`. */
  seen(method: string, part: string): SeenRequest[] {
    return this.server.seen.filter((r) => r.method === method && r.url.includes(part));
  }

  put(repo: string, tag: string, img: MemImage): void {
    let r = this.repos.get(repo);
    if (!r) this.repos.set(repo, (r = new Map()));
    r.set(tag, img);
    this.manifests.set(img.digest, img.manifest);
    for (const [d, b] of img.blobs) this.blobs.set(d, b);
  }

  private answer(req: SeenRequest, res: ServerResponse): void {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/v2/' || url.pathname === '/v2') return json(res, 200, {});
    const m = /^\/v2\/(.+)\/(tags\/list|manifests\/([^/]+)|blobs\/([^/]+))$/.exec(url.pathname);
    const repo = m?.[1] !== undefined ? this.repos.get(m[1]) : undefined;
    if (!m || !repo) return json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    if (m[2] === 'tags/list') return json(res, 200, { name: m[1], tags: [...repo.keys()] });
    if (m[3] !== undefined) {
      const ref = m[3];
      const bytes = ref.startsWith('sha256:') ? this.manifests.get(ref as Digest) : this.manifests.get(repo.get(ref)?.digest ?? ('' as Digest));
      if (!bytes) return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
      res.writeHead(200, { 'content-type': OCI.manifest, 'content-length': bytes.length, 'docker-content-digest': sha256Digest(bytes) });
      res.end(req.method === 'HEAD' ? undefined : bytes);
      return;
    }
    const blob = this.blobs.get(m[4] as Digest);
    if (!blob) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] });
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      res.writeHead(206, { 'content-length': blob.length - start, 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'docker-content-digest': m[4] });
      res.end(req.method === 'HEAD' ? undefined : blob.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/octet-stream', 'docker-content-digest': m[4] });
    res.end(req.method === 'HEAD' ? undefined : blob);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const b = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': b.length });
  res.end(b);
}

describe('sync under registry faults', () => {
  let dir: string;
  let reg: FakeRegistry;
  let other: FakeRegistry;
  let n = 0;
  const base = randomData(64 * 1024, 'fault-base');
  const big = randomData(2 * 1024 * 1024, 'fault-big');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-faults-'));
    [reg, other] = await Promise.all([FakeRegistry.start(), FakeRegistry.start()]);
  });
  afterEach(() => {
    reg.fault = undefined;
    other.fault = undefined;
  });
  afterAll(async () => {
    await Promise.all([reg?.close(), other?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh store and a config over the given `name: host/repo` images. */
  function setup(images: Record<string, string>): { cfg: Config; store: Store } {
    const name = `case-${++n}`;
    const file = join(dir, `${name}.yaml`);
    const text =
      `version: 1\nstore: ./${name}-store\nconcurrency: 4\nregistries:\n` +
      `  - host: ${reg.host}\n    tls: plain-http\n  - host: ${other.host}\n    tls: plain-http\n` +
      `images:\n${Object.entries(images)
        .map(([k, v]) => `  - name: ${k}\n    source: ${v}\n`)
        .join('')}`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    return { cfg, store: Store.open(cfg.store) };
  }

  it('waits out a 429 with Retry-After and then succeeds', async () => {
    const img = memImage('rl', [base, randomData(3000, 'rl-1')]);
    reg.put('rl/app', 'v1', img);
    const layer = img.layers[1] as Digest;
    let limited = 0;
    const done = new Set<string>();
    reg.fault = (req, res) => {
      // The first manifest HEAD and the first GET of the layer are rate limited, once each.
      const kind = req.method === 'HEAD' && req.url.includes('/rl/app/manifests/') ? 'head' : req.method === 'GET' && req.url.endsWith(layer) ? 'layer' : undefined;
      if (kind === undefined || done.has(kind)) return false;
      done.add(kind);
      limited++;
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
      return true;
    };
    const rec = recordingSleep();
    const { cfg, store } = setup({ rl: `${reg.host}/rl/app` });
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 2000, sleep: rec.sleep } });
      expect(s.failures).toEqual([]);
      expect(s.ok).toBe(true);
      expect(limited).toBe(2);
      // Retry-After: 1 was honoured (a recorded wait of one second each time, not slept for real).
      expect(rec.waits.filter((w) => w === 1000)).toHaveLength(2);
      expect(store.tags.get({ registry: reg.host, repository: 'rl/app', tag: 'v1' })?.digest).toBe(img.digest);
      expect(store.content.hasBlob(layer)).toBe(true);
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('reports RATE_LIMITED when the Retry-After is longer than it may wait, and stores nothing for the tag', async () => {
    const img = memImage('rl2', [randomData(2000, 'rl2-1')]);
    reg.put('rl2/app', 'v1', img);
    reg.fault = (req, res) => {
      if (!req.url.includes('/rl2/app/manifests/')) return false;
      res.writeHead(429, { 'retry-after': '3600' });
      res.end();
      return true;
    };
    const { cfg, store } = setup({ rl2: `${reg.host}/rl2/app` });
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      expect(s.ok).toBe(false);
      expect(s.failures).toHaveLength(1);
      expect(s.failures[0]).toMatchObject({ source: 'rl2', tag: 'v1', code: 'RATE_LIMITED' });
      expect(store.tags.list()).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('resumes a blob with Range after the connection is reset mid-body', async () => {
    const img = memImage('reset', [base, big]);
    reg.put('reset/app', 'v1', img);
    const bigDigest = sha256Digest(big);
    let resets = 0;
    reg.fault = (req, res) => {
      if (req.method !== 'GET' || !req.url.endsWith(bigDigest) || req.headers.range !== undefined || resets > 0) return false;
      resets++;
      res.writeHead(200, { 'content-length': big.length, 'content-type': 'application/octet-stream' });
      // Half the body, flushed, then the socket dies without finishing the response.
      res.write(big.subarray(0, big.length / 2), () => setTimeout(() => res.socket?.destroy(), 100));
      return true;
    };
    const { cfg, store } = setup({ reset: `${reg.host}/reset/app` });
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      expect(s.failures).toEqual([]);
      expect(resets).toBe(1);
      const gets = reg.seen('GET', `/reset/app/blobs/${bigDigest}`);
      expect(gets).toHaveLength(2);
      const resumedAt = /^bytes=(\d+)-$/.exec(gets[1]?.headers.range ?? '');
      expect(resumedAt, 'the second GET asks for the rest with Range').not.toBeNull();
      expect(Number(resumedAt?.[1])).toBeGreaterThan(0);
      expect(Number(resumedAt?.[1])).toBeLessThanOrEqual(big.length / 2);
      expect(store.content.hasBlob(bigDigest)).toBe(true);
      expect(store.content.blobSize(bigDigest)).toBe(big.length);
      expect(store.tags.get({ registry: reg.host, repository: 'reset/app', tag: 'v1' })?.digest).toBe(img.digest);
      expect((await store.fsck()).problems).toEqual([]);
      expect(readdirSync(join(cfg.store, 'tmp'))).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('refuses wrong bytes for a blob: DIGEST_MISMATCH naming the digest, nothing stored, the tag not moved', async () => {
    const v1 = memImage('wrong-v1', [base]);
    reg.put('wrong/app', 'stable', v1);
    const { cfg, store } = setup({ wrong: `${reg.host}/wrong/app` });
    try {
      expect((await runSync({ config: cfg, store, logger })).ok).toBe(true);
      const key = { registry: reg.host, repository: 'wrong/app', tag: 'stable' };
      expect(store.tags.get(key)?.digest).toBe(v1.digest);
      const seq = store.journal.currentSeq();

      // The tag moves upstream to an image whose new layer the registry serves corrupted.
      const good = randomData(50_000, 'wrong-layer');
      const v2 = memImage('wrong-v2', [base, good]);
      reg.put('wrong/app', 'stable', v2);
      const bad = Buffer.from(good);
      bad[1234] = (bad[1234] as number) ^ 0xff;
      const goodDigest = sha256Digest(good);
      reg.fault = (req, res) => {
        if (req.method !== 'GET' || !req.url.endsWith(goodDigest)) return false;
        res.writeHead(200, { 'content-length': bad.length, 'content-type': 'application/octet-stream' });
        res.end(bad);
        return true;
      };
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      expect(s.ok).toBe(false);
      expect(s.failures).toHaveLength(1);
      expect(s.failures[0]).toMatchObject({ source: 'wrong', tag: 'stable', code: 'DIGEST_MISMATCH' });
      expect(s.failures[0]?.message).toContain(goodDigest);
      expect(store.content.hasBlob(goodDigest)).toBe(false);
      expect(store.content.hasManifest(v2.digest)).toBe(false);
      expect(store.tags.get(key)?.digest).toBe(v1.digest);
      expect(store.journal.currentSeq()).toBe(seq);
      expect(readdirSync(join(cfg.store, 'tmp'))).toEqual([]);
      expect((await store.fsck()).problems).toEqual([]);
      expect(store.runs.sourceStates().find((x) => x.source === 'wrong')).toMatchObject({ ok: false });
    } finally {
      store.close();
    }
  });

  it('a failed tag does not return before its other blob downloads have settled', async () => {
    // The layer is corrupt and fails fast; the config blob of the same manifest is still
    // downloading, the rest of its body held back. A correct engine cannot return while it is
    // held; a wrong one returns with the write in flight, and the file lands after the CLI has
    // closed the store. The rest is sent on the turn of the event loop after the layer's write
    // failed: after every reaction to that failure that needs no I/O, which in a wrong engine
    // includes its whole way back out of runSync. So the order below is the engine's, not a clock's.
    const layer = randomData(30_000, 'straggler-layer');
    const img = memImage('straggler', [layer]);
    reg.put('straggler/app', 'v1', img);
    const layerDigest = sha256Digest(layer);
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const order: string[] = [];
    reg.fault = (req, res) => {
      if (req.method === 'GET' && req.url.endsWith(layerDigest)) {
        const bad = Buffer.from(layer);
        bad[0] = (bad[0] as number) ^ 1;
        res.writeHead(200, { 'content-length': bad.length });
        res.end(bad);
        return true;
      }
      if (req.method === 'GET' && req.url.endsWith(img.config)) {
        const cfgBytes = img.blobs.get(img.config) as Buffer;
        res.writeHead(200, { 'content-length': cfgBytes.length });
        res.write(cfgBytes.subarray(0, 10));
        void released.then(() => res.end(cfgBytes.subarray(10)));
        return true;
      }
      return false;
    };
    const { cfg, store } = setup({ straggler: `${reg.host}/straggler/app` });
    // Observes the layer's write failing (the store refuses the bytes).
    const writeBlob = store.content.writeBlob.bind(store.content);
    store.content.writeBlob = (d, source, opts) => {
      const p = writeBlob(d, source, opts);
      if (d === layerDigest) {
        p.catch(() =>
          setImmediate(() => {
            order.push('config-released');
            release();
          }),
        );
      }
      return p;
    };
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 0, baseDelayMs: 1, maxDelayMs: 5 } });
      order.push('sync-returned');
      // What the CLI would find when it closes the store now: nothing of this pass still being written.
      const configStored = store.content.hasBlob(img.config);
      const tmp = readdirSync(join(cfg.store, 'tmp'));
      release();
      expect(s.failures).toMatchObject([{ source: 'straggler', tag: 'v1', code: 'DIGEST_MISMATCH' }]);
      expect(order).toEqual(['config-released', 'sync-returned']);
      expect(configStored).toBe(true);
      expect(tmp).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('a persistent 500 on one image fails that image only; the other is stored', async () => {
    const broken = memImage('broken', [randomData(2000, 'broken-1')]);
    const fine = memImage('fine', [base, randomData(4000, 'fine-1')]);
    reg.put('broken/app', 'v1', broken);
    other.put('fine/app', 'v1', fine);
    reg.fault = (req, res) => {
      if (req.method !== 'GET' || !req.url.includes('/broken/app/manifests/')) return false;
      json(res, 500, { errors: [{ code: 'UNKNOWN', message: 'storage backend down' }] });
      return true;
    };
    const { cfg, store } = setup({ broken: `${reg.host}/broken/app`, fine: `${other.host}/fine/app` });
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      expect(s.ok).toBe(false);
      expect(s.images).toEqual({ checked: 2, changed: 1, unchanged: 0, failed: 1 });
      expect(s.failures).toHaveLength(1);
      expect(s.failures[0]).toMatchObject({ source: 'broken', tag: 'v1', code: 'HTTP_STATUS' });
      expect(s.failures[0]?.message).toContain('500');
      // First try plus two retries, then it gives up.
      expect(reg.seen('GET', '/broken/app/manifests/')).toHaveLength(3);
      expect(store.tags.get({ registry: reg.host, repository: 'broken/app', tag: 'v1' })).toBeUndefined();
      expect(store.tags.get({ registry: other.host, repository: 'fine/app', tag: 'v1' })?.digest).toBe(fine.digest);
      for (const d of fine.blobs.keys()) expect(store.content.hasBlob(d)).toBe(true);
      expect((await store.fsck()).problems).toEqual([]);
      expect(store.runs.last(1)[0]?.status).toBe('partial');
    } finally {
      store.close();
    }
  });
});
