// One sync over hostile and stalling upstreams beside a real one (issue 13 items 8 and 9), with the
// bounds set in the configuration: a registry whose tag pages never end fails that source with
// TAG_LIST_LIMIT while the others go on; a blob and a GOPROXY zip that stall mid-body with the
// connection left open resume with Range after the configured idle timeout. The real
// docker-registry source and the store are the judges of what arrived; no clock is.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { proxyPath } from '../../gomod/index.js';
import { sha256Digest, type Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { OCI, pushTestImage, randomData, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { startFake, type FakeServer } from '../net/fake-server.js';

const logger = pino({ level: 'silent' });

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const b = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(b.length), ...headers });
  res.end(b);
}

describe('sync with bounded upstreams', () => {
  let dir: string;
  let real: RunningRegistry;
  let good: TestImage;
  let endless: FakeServer;
  let stalling: FakeServer;
  let goproxy: StaticServer;
  const layer = randomData(512 * 1024, 'stall-layer');
  const layerDigest = sha256Digest(layer);
  const cfgBlob = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config: { mediaType: OCI.config, digest: sha256Digest(cfgBlob), size: cfgBlob.length },
      layers: [{ mediaType: OCI.layer, digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = sha256Digest(manifest);
  let bigZip: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-limits-'));
    real = await startRegistry();
    good = await pushTestImage(real.host, 'team/good', { layerSizes: [2000], tag: 'v1' });

    // Every page links to a new one.
    endless = await startFake((req, res) => {
      const u = new URL(req.url, 'http://x');
      if (u.pathname === '/v2/') return json(res, 200, {});
      const n = Number(u.searchParams.get('page') ?? '0');
      json(res, 200, { tags: [`t${n}`] }, { link: `</v2/team/endless/tags/list?page=${n + 1}>; rel="next"` });
    });

    // One image whose layer stalls mid-body on its first GET, the connection left open.
    const blobs = new Map<Digest, Buffer>([
      [sha256Digest(cfgBlob), cfgBlob],
      [layerDigest, layer],
    ]);
    let stalled = false;
    stalling = await startFake((req, res) => {
      const u = new URL(req.url, 'http://x');
      if (u.pathname === '/v2/') return json(res, 200, {});
      if (u.pathname === '/v2/team/stall/tags/list') return json(res, 200, { tags: ['v1'] });
      if (u.pathname.startsWith('/v2/team/stall/manifests/')) {
        res.writeHead(200, { 'content-type': OCI.manifest, 'content-length': String(manifest.length), 'docker-content-digest': manifestDigest });
        res.end(req.method === 'HEAD' ? undefined : manifest);
        return;
      }
      const blob = blobs.get(u.pathname.replace('/v2/team/stall/blobs/', '') as Digest);
      if (!blob) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (blob === layer && !stalled) {
        stalled = true;
        res.writeHead(200, { 'content-length': String(blob.length) });
        res.write(blob.subarray(0, 200_000));
        return;
      }
      const start = range ? Number(range[1]) : 0;
      res.writeHead(range ? 206 : 200, {
        'content-length': String(blob.length - start),
        ...(range ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
      });
      res.end(blob.subarray(start));
    });

    // A module whose zip is bigger than what is read in memory (8 MiB), so it streams; every
    // request for it without Range stalls after 1 MiB.
    const tree = join(dir, 'proxy');
    await buildProxyTree(tree, [{ path: 'example.com/big', version: 'v1.0.0', files: { 'doc.go': 'package big\n', 'data.bin': randomData(9 * 1024 * 1024, 'big-zip') } }]);
    const zipFile = join(tree, ...proxyPath('example.com/big', 'zip', 'v1.0.0').split('/'));
    bigZip = await readFile(zipFile);
    expect(bigZip.length).toBeGreaterThan(8 * 1024 * 1024);
    goproxy = await serveDir(tree, {
      intercept: (req: IncomingMessage, res: ServerResponse) => {
        if (!req.url?.endsWith('.zip')) return false;
        const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        if (!range) {
          res.writeHead(200, { 'content-length': String(bigZip.length) });
          res.write(bigZip.subarray(0, 1024 * 1024));
          return true;
        }
        const start = Number(range[1]);
        res.writeHead(206, { 'content-length': String(bigZip.length - start), 'content-range': `bytes ${start}-${bigZip.length - 1}/${bigZip.length}` });
        res.end(bigZip.subarray(start));
        return true;
      },
    });
  });

  afterAll(async () => {
    await Promise.all([real?.stop(), endless?.close(), stalling?.close(), goproxy?.stop()]);
    await good?.layout.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fails only the endless source; the stalled blob and zip resume with Range and arrive whole', async () => {
    const file = join(dir, 'ferry.yaml');
    const text =
      `version: 1\nstore: ./store\n` +
      `registries:\n` +
      `  - host: ${real.host}\n    tls: plain-http\n` +
      `  - host: ${endless.host}\n    tls: plain-http\n    maxTagPages: 20\n` +
      `  - host: ${stalling.host}\n    tls: plain-http\n    idleTimeout: 200ms\n` +
      `images:\n` +
      `  - name: endless\n    source: ${endless.host}/team/endless\n` +
      `  - name: good\n    source: ${real.host}/team/good\n` +
      `  - name: stall\n    source: ${stalling.host}/team/stall\n` +
      `goModules:\n  proxy: ${goproxy.url}\n  sumdb: "off"\n  idleTimeout: 200ms\n` +
      `  modules:\n    - path: example.com/big\n      versions: [v1.0.0]\n      deps: false\n`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
      expect(s.failures.map((f) => ({ source: f.source, code: f.code }))).toEqual([{ source: 'endless', code: 'TAG_LIST_LIMIT' }]);
      expect(s.failures[0]!.message).toContain('maxTagPages');
      expect(endless.seen.filter((r) => r.url.includes('/tags/list')).length).toBe(20);

      const tags = Object.fromEntries(store.tags.list().map((t) => [t.source, t.digest]));
      expect(tags).toEqual({ good: good.top.digest, stall: manifestDigest });
      expect(store.content.hasBlob(layerDigest)).toBe(true);
      const layerGets = stalling.seen.filter((r) => r.method === 'GET' && r.url.endsWith(layerDigest));
      expect(layerGets.map((r) => r.headers.range === undefined)).toEqual([true, false]);

      const mv = store.modules.list().find((m) => m.module === 'example.com/big');
      expect(mv?.zipDigest).toBe(sha256Digest(bigZip));
      expect(goproxy.requests.filter((r) => r.path.endsWith('.zip') && r.headers.range !== undefined).length).toBe(1);
      expect((await store.fsck()).problems).toEqual([]);
    } finally {
      store.close();
    }
  });
});
