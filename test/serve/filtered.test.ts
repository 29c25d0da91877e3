// `ferry serve` and a platform-filtered tag: what the tag exposes comes from the image graph, as
// export carries it and an import into a registry tags it. The tag serves the filtered index
// (only the kept children, all of them there), so skopeo copies it whole; the upstream index
// stays reachable by its digest; the child the platforms leave out is not served.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_FILTERED_FROM, filteredIndex, sha256Digest, type Descriptor } from '../../oci/index.js';
import { startServe, type RunningServe } from '../../serve/server.js';
import { Store } from '../../store/index.js';
import { OciLayoutBuilder, type Image, type Index } from '../helpers/images.js';

const execFileP = promisify(execFile);

describe('ferry serve: a platform-filtered tag', () => {
  let work: string;
  let store: Store;
  let server: RunningServe;
  let amd: Image;
  let arm: Image;
  let idx: Index;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-serve-filtered-'));
    const layout = await OciLayoutBuilder.create(join(work, 'layout'));
    amd = await layout.addImage({ layers: [await layout.addLayer({ size: 2000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await layout.addImage({ layers: [await layout.addLayer({ size: 2000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    store = Store.open(join(work, 'store'));
    // What a sync with `platforms: [linux/amd64]` stores: the index and the amd64 image only.
    for (const d of [amd.config, ...amd.layers]) await store.content.writeBlobBytes(d.digest, await layout.readBlob(d.digest), { mediaType: d.mediaType });
    await store.content.putManifest({ digest: amd.digest, mediaType: amd.mediaType, bytes: amd.bytes, references: [amd.config, ...amd.layers], platform: 'linux/amd64' });
    const refs: Descriptor[] = idx.manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, ...(m.platform ? { platform: m.platform } : {}) }));
    await store.content.putManifest({ digest: idx.digest, mediaType: idx.mediaType, bytes: idx.bytes, references: refs });
    store.tags.set({ registry: 'up.example', repository: 'lab/app', tag: 'v1', source: 'amd64', target: 'mirror/amd64', digest: idx.digest, mediaType: idx.mediaType, platforms: ['linux/amd64'], keptDigests: [amd.digest] });
    server = await startServe({ store, listen: '127.0.0.1:0' });
  });

  afterAll(async () => {
    await server?.close();
    store?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('serves the filtered index under the tag, which skopeo copies whole; the upstream index by digest; not the dropped child', async () => {
    const want = filteredIndex(idx.bytes, [amd.digest], idx.digest);
    const res = await fetch(`${server.url}/v2/mirror/amd64/manifests/v1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(want.digest);
    expect(res.headers.get('content-type')).toBe(idx.mediaType);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.equals(want.bytes)).toBe(true);
    expect((JSON.parse(body.toString('utf8')) as { annotations: Record<string, string> }).annotations[ANNOTATION_FILTERED_FROM]).toBe(idx.digest);
    expect((await fetch(`${server.url}/v2/mirror/amd64/manifests/${want.digest}`, { method: 'HEAD' })).status).toBe(200);
    const upstream = await fetch(`${server.url}/v2/mirror/amd64/manifests/${idx.digest}`);
    expect(upstream.status).toBe(200);
    expect(sha256Digest(Buffer.from(await upstream.arrayBuffer()))).toBe(idx.digest);
    expect((await fetch(`${server.url}/v2/mirror/amd64/manifests/${arm.digest}`)).status).toBe(404);

    const out = join(work, 'pulled');
    await execFileP('skopeo', ['copy', '--all', '--quiet', '--src-tls-verify=false', `docker://${server.host}/mirror/amd64:v1`, `oci:${out}:v1`]);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(index.manifests[0]?.digest).toBe(want.digest);
  });
});
