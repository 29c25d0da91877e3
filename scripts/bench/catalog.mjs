// The catalog page of `ferry serve` over a store of many tags: how long the server takes to read
// the data and render the page, cold (a fresh reader: the tag and manifest queries and every
// manifest's and config's bytes read once) and warm (the journal unchanged: render only; and
// after a tag moved: the two queries again, manifest bytes still cached). In process, on the
// built modules in dist/, so no HTTP or browser time is counted.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Builds a store of `tags` tags over `repos` repositories, one image per tag; returns the timings. */
export async function benchCatalog({ root, dir, tags, repos = 50 }) {
  const load = (p) => import(pathToFileURL(join(root, 'dist', p)).href);
  const [{ Store }, { CatalogReader }, { renderCatalog }, { OciRepositories }] = await Promise.all([
    load('store/index.js'),
    load('serve/catalog-data.js'),
    load('serve/catalog.js'),
    load('serve/oci.js'),
  ]);
  const store = Store.open(join(dir, 'store-catalog'));
  const t0 = performance.now();
  const layer = Buffer.from('a shared layer for the catalog benchmark');
  const layerDesc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length };
  await store.content.writeBlobBytes(layerDesc.digest, layer, { mediaType: layerDesc.mediaType });
  for (let i = 0; i < tags; i++) {
    const config = Buffer.from(JSON.stringify({ architecture: i % 2 ? 'arm64' : 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(`d${i}`)] }, n: i }));
    const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length };
    await store.content.writeBlobBytes(configDesc.digest, config, { mediaType: configDesc.mediaType });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: configDesc,
        layers: [layerDesc],
        annotations: { 'org.opencontainers.image.description': `benchmark image ${i} <with markup & "quotes">` },
      }),
    );
    const digest = sha(manifest);
    await store.content.putManifest({ digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: manifest, references: [configDesc, layerDesc] });
    const repo = `bench/repo-${String(i % repos).padStart(3, '0')}`;
    store.tags.set({ registry: 'up.example', repository: repo, tag: `1.${i}`, source: repo, target: `mirror/${repo}`, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', platforms: null, keptDigests: [] });
  }
  const setupMs = performance.now() - t0;
  const ctx = { host: 'registry.example:8080', scheme: 'http', query: '' };
  const repositories = new OciRepositories(store);
  const reader = new CatalogReader({ store, repos: repositories });
  const time = async () => {
    const s = performance.now();
    const data = await reader.read();
    const page = renderCatalog(data, ctx);
    return { ms: performance.now() - s, bytes: Buffer.byteLength(page) };
  };
  const cold = await time();
  const warm = [];
  for (let i = 0; i < 5; i++) warm.push((await time()).ms);
  // A tag moves (a sync ran): the tag and manifest rows are read again, manifest bytes are not.
  const first = store.tags.list()[0];
  store.tags.set({ ...first, target: first.target, keptDigests: [], contentAdded: true });
  const moved = await time();
  store.close();
  warm.sort((a, b) => a - b);
  return { setupMs, coldMs: cold.ms, warmMs: warm[Math.floor(warm.length / 2)], movedMs: moved.ms, pageBytes: cold.bytes };
}
