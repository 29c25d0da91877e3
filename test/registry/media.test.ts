// A registry repository as a source and a sink of the one copy, between two real docker-registry
// instances: a whole index lands byte for byte; a platform-filtered one, refused by distribution
// without its left-out child, lands as its filtered index, which the tag then names.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy, filteredIndex } from '../../oci/index.js';
import { RegistryClient, RegistrySink, RegistrySource } from '../../registry/index.js';
import { buildTestImage, pushLayout, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

describe('registry media', () => {
  let up: RunningRegistry;
  let down: RunningRegistry;
  let upClient: RegistryClient;
  let downClient: RegistryClient;
  let img: TestImage;

  beforeAll(async () => {
    [up, down] = await Promise.all([startRegistry(), startRegistry()]);
    img = await buildTestImage({ multiArch: true, seed: 'registry-media', tag: 'v1', layerSizes: [5000, 1000] });
    await pushLayout(img.layout.dir, 'v1', `${up.host}/lab/app:v1`);
    upClient = new RegistryClient({ host: up.host, tls: 'plain-http' });
    downClient = new RegistryClient({ host: down.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
  });

  afterAll(async () => {
    await Promise.all([upClient?.close(), downClient?.close()]);
    await Promise.all([up?.stop(), down?.stop()]);
    if (img) await img.layout.remove();
  });

  it('copies a whole index byte for byte, and a filtered one as its filtered index', async () => {
    const src = new RegistrySource(upClient, 'lab/app');
    const root = { digest: img.top.digest, mediaType: img.top.mediaType, size: img.top.size };
    await copy(src, new RegistrySink(downClient, 'mirror/all'), [{ descriptor: root, selection: { platforms: null }, tag: 'v1' }]);
    expect((await downClient.manifestGet('mirror/all', 'v1')).bytes.equals(img.top.bytes)).toBe(true);

    const [amd, arm] = img.images as [TestImage['images'][number], TestImage['images'][number]];
    const r = await copy(src, new RegistrySink(downClient, 'mirror/amd64'), [{ descriptor: root, selection: { platforms: ['linux/amd64'] }, tag: 'v1' }]);
    const want = filteredIndex(img.top.bytes, [amd.digest], img.top.digest);
    expect(r.images[0]!.image.digest).toBe(want.digest);
    const got = await downClient.manifestGet('mirror/amd64', 'v1');
    expect(got.digest).toBe(want.digest);
    expect(await downClient.manifestHead('mirror/amd64', amd.digest)).toBeDefined();
    expect(await downClient.manifestHead('mirror/amd64', arm.digest)).toBeUndefined();
  });
});
