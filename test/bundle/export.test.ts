// Export from a real store synced from a real docker-registry: full, incremental, empty,
// --since, skopeo reading the bundle as an oci-archive, and import.sh loading it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, parseBundleManifest, writeKeyPair, type ExportResult } from '../../bundle/index.js';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { Store } from '../../store/index.js';
import { buildTestImage, pushLayout, skopeoInspect, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const execFileP = promisify(execFile);
const logger = pino({ level: 'silent' });

async function bundleManifest(r: ExportResult): Promise<ReturnType<typeof parseBundleManifest>> {
  const tar = r.files.find((f) => f.endsWith('.tar'))!;
  const { stdout } = await execFileP('tar', ['-xOf', tar, 'ferry-bundle.json'], { encoding: 'buffer', maxBuffer: 1 << 26 });
  return parseBundleManifest(stdout);
}

describe('ferry export', () => {
  let upstream: RunningRegistry;
  let intranet: RunningRegistry;
  let dir: string;
  let config: Config;
  let store: Store;
  let key: string;
  let pub: string;
  let base: TestImage;
  const exports: ExportResult[] = [];

  beforeAll(async () => {
    [upstream, intranet] = await Promise.all([startRegistry(), startRegistry()]);
    dir = mkdtempSync(join(tmpdir(), 'ferry-export-'));
    const k = await writeKeyPair(join(dir, 'ferry'));
    key = k.privateKeyPath;
    pub = k.publicKeyPath;
    base = await buildTestImage({ multiArch: true, seed: 'export-base', tag: 'v1', layerSizes: [300_000, 5000] });
    await pushLayout(base.layout.dir, 'v1', `${upstream.host}/lab/app:v1`);
    const single = await buildTestImage({ seed: 'export-single', tag: 'v2', layerSizes: [200_000] });
    await pushLayout(single.layout.dir, 'v2', `${upstream.host}/lab/app:v2`);
    const text = `version: 1\nstore: ./store\nregistries:\n  - host: ${upstream.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${upstream.host}/lab/app\n    target: mirror/app\n`;
    writeFileSync(join(dir, 'ferry.yaml'), text);
    config = parseConfig(text, join(dir, 'ferry.yaml'));
    store = Store.open(config.store);
    const s = await runSync({ config, store, logger });
    expect(s.failures).toEqual([]);
  });

  afterAll(async () => {
    store?.close();
    await Promise.all([upstream?.stop(), intranet?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a full bundle is an oci-archive skopeo reads and copies with upstream digests', async () => {
    const r = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: key });
    exports.push(r);
    expect(r.parent).toBeNull();
    expect(r.images).toBe(2);
    const tar = r.files.find((f) => f.endsWith('.tar'))!;
    const up = (await skopeoInspect(`${upstream.host}/lab/app:v1`, { raw: true })) as string;
    const ref = `${upstream.host}/lab/app:v1`;
    const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci-archive:${tar}:${ref}`]);
    expect(stdout).toBe(up);
    await execFileP('skopeo', ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci-archive:${tar}:${ref}`, `docker://${intranet.host}/copied/app:v1`]);
    const copied = (await skopeoInspect(`${intranet.host}/copied/app:v1`, { raw: true })) as string;
    expect(copied).toBe(up);
    // openssl checks the signature with nothing but the public key.
    const ex = join(dir, 'ex');
    await execFileP('mkdir', ['-p', ex]);
    await execFileP('tar', ['-xf', tar, '-C', ex, 'ferry-bundle.json', 'ferry-bundle.json.sig']);
    writeFileSync(join(ex, 'sig.der'), Buffer.from(readFileSync(join(ex, 'ferry-bundle.json.sig'), 'utf8'), 'base64'));
    const v = await execFileP('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', join(ex, 'sig.der'), join(ex, 'ferry-bundle.json')]);
    expect(v.stdout).toContain('Verified OK');
  });

  it('after one tag moves, the next bundle carries only its new blobs and requires the reused ones', async () => {
    // v1 moves to a new single image that shares the base layer content of the old index's images.
    const moved = await buildTestImage({ seed: 'export-base', tag: 'v1', layerSizes: [300_000, 7000] });
    await pushLayout(moved.layout.dir, 'v1', `${upstream.host}/lab/app:v1`);
    const s = await runSync({ config, store, logger });
    expect(s.tags.changed).toBe(1);
    const r = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: key });
    exports.push(r);
    expect(r.parent).toBe(exports[0]!.id);
    expect(r.images).toBe(1);
    const m = await bundleManifest(r);
    const carried = m.files.filter((f) => f.path.startsWith('blobs/')).map((f) => `sha256:${f.path.slice('blobs/sha256/'.length)}`);
    const img = moved.images[0]!;
    const expected = [img.digest, img.config.digest, img.layers[1]!.digest].sort();
    expect(carried.sort()).toEqual(expected);
    // The shared 300 kB layer was carried before: required, not carried.
    expect(m.requires).toContain(img.layers[0]!.digest);
    expect(base.images[0]!.layers[0]!.digest).toBe(img.layers[0]!.digest);
  });

  it('with nothing changed the bundle carries no blob', async () => {
    const r = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: key });
    exports.push(r);
    expect(r.empty).toBe(true);
    expect(r.blobs).toBe(0);
    const m = await bundleManifest(r);
    expect(m.files.filter((f) => f.path.startsWith('blobs/'))).toEqual([]);
    expect(m.chain).toEqual([exports[0]!.id, exports[1]!.id]);
  });

  it('--since an older bundle reproduces the union of the deltas since then', async () => {
    const r = await exportBundle({ store, outDir: join(dir, 'out'), signingKey: key, since: exports[0]!.sequence });
    expect(r.parent).toBe(exports[0]!.id);
    const union = await bundleManifest(exports[1]!);
    const m = await bundleManifest(r);
    expect(m.images.map((i) => i.digest)).toEqual(union.images.map((i) => i.digest));
    expect(m.files.filter((f) => f.path.startsWith('blobs/')).map((f) => f.path)).toEqual(
      union.files.filter((f) => f.path.startsWith('blobs/')).map((f) => f.path),
    );
  });

  it('import.sh loads the full and then the incremental bundle into a registry', async () => {
    const script = join(dir, 'out', 'import.sh');
    for (const r of exports.slice(0, 2)) {
      const tar = r.files.find((f) => f.endsWith('.tar'))!;
      await execFileP('sh', [script, '--trust', pub, '--registry', intranet.host, '--plain-http', tar], { maxBuffer: 1 << 24 });
    }
    for (const tag of ['v1', 'v2']) {
      const up = (await skopeoInspect(`${upstream.host}/lab/app:${tag}`, { raw: true })) as string;
      const got = (await skopeoInspect(`${intranet.host}/mirror/app:${tag}`, { raw: true })) as string;
      expect(got).toBe(up);
    }
  });
});
