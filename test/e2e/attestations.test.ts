// buildx attestation manifests follow the image they describe, through every path at once (the
// image graph, issue 14): an upstream index with linux/amd64 and linux/arm64 images and their
// attestation manifests (`unknown/unknown`, vnd.docker.reference.*), mirrored with
// `platforms: [linux/amd64]`. Sync stores the amd64 attestation and not the arm64 one; export
// carries it and lists it in the filtered index; verify accepts the bundle; ferry import into a
// real docker-registry tags the filtered index (the registry refuses the upstream one without
// arm64) and skopeo copies it whole; `ferry serve` over the synced store serves that same
// filtered index under the tag, and skopeo copies every child of it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, loadTrustedKey, verifyBundle, writeKeyPair, type TrustedKey } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { importBundles } from '../../importer/index.js';
import { ANNOTATION_FILTERED_FROM, MediaType, sha256Digest, type Descriptor, type Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { startServe, type RunningServe } from '../../serve/server.js';
import { Ledger, Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { randomData } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const execFileP = promisify(execFile);
const logger = pino({ level: 'silent' });
const INTOTO = 'application/vnd.in-toto+json';

interface Pushed extends Descriptor {
  readonly layers: Digest[];
}

describe('attestation manifests follow their image', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let upClient: RegistryClient;
  let intraClient: RegistryClient;
  let trust: TrustedKey[];
  let keyPath: string;
  let cfg: Config;
  let amd: Pushed;
  let arm: Pushed;
  let attAmd: Pushed;
  let attArm: Pushed;
  let index: Descriptor & { bytes: Buffer };

  const bufferStream = (b: Buffer): Readable => Readable.from([b]);

  async function pushBlob(b: Buffer): Promise<Digest> {
    const d = sha256Digest(b);
    await upClient.blobPut('lab/app', d, b.length, () => bufferStream(b));
    return d;
  }

  /** An image manifest over one layer; `platform` goes into the index descriptor. */
  async function pushImage(seed: string, layerType: string, platform: { os: string; architecture: string }, annotations?: Record<string, string>): Promise<Pushed> {
    // Real gzip for image layers: skopeo rewrites a manifest whose layer does not decompress.
    const layer = layerType === INTOTO ? Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', seed })) : gzipSync(randomData(3000, seed));
    const config = Buffer.from(JSON.stringify({ architecture: platform.architecture, os: platform.os, rootfs: { type: 'layers', diff_ids: [] }, seed }));
    const layerDigest = await pushBlob(layer);
    const configDigest = await pushBlob(config);
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
        layers: [{ mediaType: layerType, digest: layerDigest, size: layer.length }],
      }),
    );
    const digest = await upClient.manifestPut('lab/app', sha256Digest(bytes), bytes, MediaType.OciManifest);
    return { mediaType: MediaType.OciManifest, digest, size: bytes.length, platform, ...(annotations ? { annotations } : {}), layers: [configDigest, layerDigest] };
  }

  const descriptor = (p: Pushed): Descriptor => ({ mediaType: p.mediaType, digest: p.digest, size: p.size, ...(p.platform ? { platform: p.platform } : {}), ...(p.annotations ? { annotations: p.annotations } : {}) });
  const attestationOf = (img: Pushed): Record<string, string> => ({ 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': img.digest });
  const unknown = { os: 'unknown', architecture: 'unknown' };
  const childDigests = (bytes: string | Buffer): string[] => (JSON.parse(bytes.toString()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-att-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    upClient = new RegistryClient({ host: up.host, tls: 'plain-http' });
    intraClient = new RegistryClient({ host: intra.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
    amd = await pushImage('amd', MediaType.OciLayout, { os: 'linux', architecture: 'amd64' });
    arm = await pushImage('arm', MediaType.OciLayout, { os: 'linux', architecture: 'arm64' });
    attAmd = await pushImage('att-amd', INTOTO, unknown, attestationOf(amd));
    attArm = await pushImage('att-arm', INTOTO, unknown, attestationOf(arm));
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [amd, arm, attAmd, attArm].map(descriptor) }));
    const digest = await upClient.manifestPut('lab/app', 'v1', bytes, MediaType.OciIndex);
    index = { mediaType: MediaType.OciIndex, digest, size: bytes.length, bytes };
    const keys = await writeKeyPair(join(dir, 'signer'));
    keyPath = keys.privateKeyPath;
    trust = [await loadTrustedKey(keys.publicKeyPath)];
    const file = join(dir, 'ferry.yaml');
    const text =
      `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
      `images:\n  - name: app\n    source: ${up.host}/lab/app\n    platforms: [linux/amd64]\n    target: mirror/amd64\n`;
    writeFileSync(file, text);
    cfg = parseConfig(text, file);
  });

  afterAll(async () => {
    await Promise.all([upClient?.close(), intraClient?.close()]);
    await Promise.all([up?.stop(), intra?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sync, export, verify, import and serve keep the amd64 attestation with its image and leave the arm64 one out', async () => {
    const store = Store.open(cfg.store);
    let serve: RunningServe | undefined;
    try {
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 0 } });
      expect(s.failures).toEqual([]);
      const row = store.tags.list()[0]!;
      expect(row.keptDigests).toEqual([amd.digest, attAmd.digest].sort());
      for (const d of [amd.digest, attAmd.digest, ...amd.layers, ...attAmd.layers]) expect(store.content.hasBlob(d), d).toBe(true);
      for (const d of [arm.digest, attArm.digest, ...arm.layers, ...attArm.layers]) expect(store.content.hasBlob(d), d).toBe(false);

      const b = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: keyPath, logger });
      const tar = join(dir, 'out', `${b.name}.tar`);
      const v = await verifyBundle(tar, { trust });
      const im = v.manifest.images[0]!;
      expect(im.filtered).toMatch(/^sha256:/);
      const carried = (d: string): boolean => v.manifest.files.some((f) => f.path === `blobs/sha256/${d.slice(7)}`);
      for (const d of [attAmd.digest, ...attAmd.layers, im.filtered!]) expect(carried(d), d).toBe(true);
      expect(carried(attArm.digest)).toBe(false);

      const ledger = Ledger.open(join(dir, 'ledger.db'));
      try {
        await importBundles({ bundles: [tar], trust, registry: intraClient, ledger, logger });
      } finally {
        ledger.close();
      }
      const pushed = await intraClient.manifestGet('mirror/amd64', 'v1');
      expect(pushed.digest).toBe(im.filtered);
      expect(childDigests(pushed.bytes)).toEqual([amd.digest, attAmd.digest]);
      expect((JSON.parse(pushed.bytes.toString()) as { annotations: Record<string, string> }).annotations[ANNOTATION_FILTERED_FROM]).toBe(index.digest);
      await execFileP('skopeo', ['copy', '--all', '--quiet', '--src-tls-verify=false', `docker://${intra.host}/mirror/amd64:v1`, `oci:${join(dir, 'from-intra')}:v1`]);

      // ferry serve over the synced store: the tag serves the same filtered index, every child there.
      serve = await startServe({ store, listen: '127.0.0.1:0', logger });
      const res = await fetch(`${serve.url}/v2/mirror/amd64/manifests/v1`, { headers: { accept: MediaType.OciIndex } });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-content-digest')).toBe(im.filtered);
      const served = Buffer.from(await res.arrayBuffer());
      expect(sha256Digest(served)).toBe(im.filtered);
      // The upstream index stays reachable by digest (export carries it too); the arm64 image does not.
      expect((await fetch(`${serve.url}/v2/mirror/amd64/manifests/${index.digest}`)).status).toBe(200);
      expect((await fetch(`${serve.url}/v2/mirror/amd64/manifests/${arm.digest}`)).status).toBe(404);
      const out = join(dir, 'from-serve');
      await execFileP('skopeo', ['copy', '--all', '--quiet', '--src-tls-verify=false', `docker://${serve.host}/mirror/amd64:v1`, `oci:${out}:v1`]);
      const layoutIndex = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(layoutIndex.manifests[0]!.digest).toBe(im.filtered);
    } finally {
      await serve?.close();
      store.close();
    }
  });
});
