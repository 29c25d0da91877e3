// The catalog page of `ferry serve` (`/`, assets under `/-/ui/`): what a store and a static module
// tree hold, server-rendered with every upstream string escaped, and never in the way of a
// GOPROXY or registry route.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashGoMod, hashZip, modulePathError } from '../../gomod/index.js';
import { cosignTag, type Descriptor, type Digest } from '../../oci/index.js';
import { CatalogReader } from '../../serve/catalog-data.js';
import { formatBytes, renderCatalog } from '../../serve/catalog.js';
import { escapeHtml, html, trusted } from '../../serve/html.js';
import { OciRepositories } from '../../serve/oci.js';
import { requestHost } from '../../serve/pages.js';
import { startServe, type RunningServe } from '../../serve/server.js';
import { UI_ASSETS, UI_PREFIX } from '../../serve/ui-assets.js';
import { Ledger, Store } from '../../store/index.js';
import { EMPTY_CONFIG, SIGNATURE_ANNOTATION, SIMPLESIGNING, SPDX } from '../helpers/cosign.js';
import { buildProxyTree, writeModuleZip } from '../helpers/goproxy-tree.js';
import { digestOf, OCI, OciLayoutBuilder, type Image } from '../helpers/images.js';

const EVIL = `<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">`;
const PSEUDO = 'v0.0.0-20240301000000-abcdefabcdef';

async function putImage(store: Store, b: OciLayoutBuilder, img: Image): Promise<void> {
  for (const d of [img.config, ...img.layers]) await store.content.writeBlobBytes(d.digest, await b.readBlob(d.digest), { mediaType: d.mediaType });
  const p = img.platform ? `${img.platform.os}/${img.platform.architecture}${img.platform.variant ? `/${img.platform.variant}` : ''}` : undefined;
  await store.content.putManifest({ digest: img.digest, mediaType: img.mediaType, bytes: img.bytes, references: [img.config, ...img.layers], ...(p ? { platform: p } : {}) });
}

/**
 * Stores an attachment manifest of `subject` as sync does (its blobs, the manifest, then the
 * attachments row): a cosign signature under its digest tag, or an OCI 1.1 referrer.
 */
async function putAttachment(store: Store, subject: Descriptor, a: { cosign: 'sig' } | { artifactType: string; layerType: string }): Promise<Digest> {
  const payload = Buffer.from(JSON.stringify({ subject: subject.digest }));
  const layerType = 'cosign' in a ? SIMPLESIGNING : a.layerType;
  const layer = { mediaType: layerType, digest: digestOf(payload), size: payload.length, ...('cosign' in a ? { annotations: { [SIGNATURE_ANNOTATION]: 'c2ln' } } : {}) };
  const config = 'cosign' in a ? { mediaType: 'application/vnd.oci.image.config.v1+json', bytes: Buffer.from('{"architecture":"","os":""}') } : EMPTY_CONFIG;
  const configDesc = { mediaType: config.mediaType, digest: digestOf(config.bytes), size: config.bytes.length };
  const doc = {
    schemaVersion: 2,
    mediaType: OCI.manifest,
    ...('artifactType' in a ? { artifactType: a.artifactType } : {}),
    config: configDesc,
    layers: [layer],
    ...('artifactType' in a ? { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = digestOf(bytes);
  await store.content.writeBlobBytes(configDesc.digest, config.bytes, { mediaType: config.mediaType });
  await store.content.writeBlobBytes(layer.digest, payload, { mediaType: layerType });
  await store.content.putManifest({ digest, mediaType: OCI.manifest, bytes, references: [configDesc, layer] });
  const descriptor: Descriptor = { mediaType: OCI.manifest, digest, size: bytes.length, ...('artifactType' in a ? { artifactType: a.artifactType } : {}) };
  store.attachments.add([{ subject: subject.digest, descriptor, ...('cosign' in a ? { tag: cosignTag(subject.digest, a.cosign) } : {}) }]);
  return digest;
}

async function putVersion(store: Store, work: string, module: string, version: string, withZip = true): Promise<void> {
  const gomod = `module ${module}\n\ngo 1.21\n`;
  const time = '2024-03-01T00:00:00Z';
  const infoDigest = (await store.content.writeBlobBytes(undefined, Buffer.from(`${JSON.stringify({ Version: version, Time: time })}\n`))).digest;
  const modDigest = (await store.content.writeBlobBytes(undefined, Buffer.from(gomod))).digest;
  let zipDigest: Digest | null = null;
  let h1Zip: string | null = null;
  if (withZip) {
    const file = join(work, `${module.replace(/\//g, '_')}@${version}.zip`);
    await writeModuleZip(file, module, version, { 'go.mod': gomod, 'doc.go': 'package lib\n' }, new Date(time));
    zipDigest = (await store.content.writeBlobBytes(undefined, await readFile(file), { mediaType: 'application/zip' })).digest;
    h1Zip = await hashZip(file);
  }
  store.modules.put({ module, version, time, infoDigest, modDigest, zipDigest, h1Zip, h1Mod: hashGoMod(Buffer.from(gomod)), root: 'test' });
}

describe('html helper', () => {
  it('escapes every interpolated value unless it is markup made by html or trusted', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p title="${'"><x'}">${inner}${['<', html`<br>`, 3, null, undefined, false]}</p>`.text).toBe('<p title="&quot;&gt;&lt;x"><b>&lt;i&gt;</b>&lt;<br>3</p>');
    expect(html`${trusted('<style>')}`.text).toBe('<style>');
    // Repeated calls do not depend on a global regex's state.
    for (let i = 0; i < 3; i++) expect(escapeHtml('a<b')).toBe('a&lt;b');
  });

  it('keeps the page small before data: the empty catalog with its stylesheet and script is well under 100 KB', () => {
    const page = renderCatalog({ repositories: [], modules: [], modulesFrom: 'store', sumdbs: [], ledger: undefined }, { host: 'registry.example:8080', scheme: 'http', query: '' });
    const total = Buffer.byteLength(page) + [...UI_ASSETS.values()].reduce((n, a) => n + a.bytes.length, 0);
    expect(total).toBeLessThan(20_000);
  });

  it('keeps a request Host only when it is a plain host[:port]', () => {
    expect(requestHost('registry.lan:5000', 'f')).toBe('registry.lan:5000');
    expect(requestHost('[::1]:8080', 'f')).toBe('[::1]:8080');
    expect(requestHost('evil"><script>', 'f')).toBe('f');
    expect(requestHost(undefined, 'f')).toBe('f');
  });
});

describe('ferry serve: the catalog of a store', () => {
  let work: string;
  let store: Store;
  let server: RunningServe;
  let single: Image;
  let amd: Image;
  let arm: Image;
  let indexDigest: Digest;
  let indexSize: number;
  let sigDigest: Digest;
  let sbomDigest: Digest;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-catalog-'));
    const b = await OciLayoutBuilder.create(join(work, 'layout'));
    single = await b.addImage({
      layers: [await b.addLayer({ size: 3000, seed: 'one' })],
      annotations: { 'org.opencontainers.image.description': EVIL },
    });
    amd = await b.addImage({ layers: [await b.addLayer({ size: 2000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await b.addImage({ layers: [await b.addLayer({ size: 2000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const idx = await b.addIndex([amd, arm]);
    indexDigest = idx.digest;
    indexSize = idx.size;
    store = Store.open(join(work, 'store'));
    for (const img of [single, amd, arm]) await putImage(store, b, img);
    const refs: Descriptor[] = idx.manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, ...(m.platform ? { platform: m.platform } : {}) }));
    await store.content.putManifest({ digest: idx.digest, mediaType: idx.mediaType, bytes: idx.bytes, references: refs });
    store.tags.set({ registry: 'up.example', repository: 'lib/app', tag: 'v1', source: 'app', target: 'mirror/app', digest: single.digest, mediaType: single.mediaType, platforms: null, keptDigests: [] });
    store.tags.set({ registry: 'up.example', repository: 'lib/golang', tag: '1.22', source: 'golang', target: 'mirror/golang', digest: idx.digest, mediaType: idx.mediaType, platforms: null, keptDigests: [amd.digest, arm.digest] });
    // golang:1.22 is signed (a cosign digest tag) and has an SBOM (an OCI 1.1 referrer).
    const subject: Descriptor = { mediaType: idx.mediaType, digest: idx.digest, size: idx.size };
    sigDigest = await putAttachment(store, subject, { cosign: 'sig' });
    sbomDigest = await putAttachment(store, subject, { artifactType: SPDX, layerType: SPDX });
    await putVersion(store, work, 'example.com/lib', 'v1.2.0');
    await putVersion(store, work, 'example.com/lib', 'v1.1.0', false);
    await putVersion(store, work, 'example.com/lib', PSEUDO);
    // An import ledger beside the store: bundle 1 and 3 arrived, 2 did not.
    const ledger = Ledger.open(join(work, 'store', 'ledger.db'));
    const ids = ['ferry-20240301-0001-aaaaaaaa', 'ferry-20240302-0002-bbbbbbbb', 'ferry-20240303-0003-cccccccc'];
    for (const seq of [1, 3]) {
      const id = ids[seq - 1]!;
      ledger.startBundle({ id, target: 'store:/srv/store', sequence: seq, parent: seq > 1 ? ids[seq - 2]! : null, chain: ids.slice(0, seq - 1), sourceStore: 'dmz-store', created: '2024-03-01T00:00:00Z', manifestDigest: null, sources: null });
      ledger.finishBundle(id, 'store:/srv/store', 'ok');
    }
    // The newest bundle said the app source is deprecated, with a note an attacker may write.
    ledger.recordLifecycle('dmz-store', ids[2]!, 3, [
      { kind: 'image', name: 'app', target: 'mirror/app', state: 'deprecated', note: EVIL },
      { kind: 'module', name: 'lib', target: 'example.com/lib', state: 'archived', note: 'moved to example.com/lib2' },
    ]);
    ledger.close();
    server = await startServe({ store, listen: '127.0.0.1:0' });
  });

  afterAll(async () => {
    await server?.close();
    store?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('lists repositories, tags, short digests, platforms, sizes and the pull command for this host', async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const page = await res.text();
    expect(page).toContain('<h3>mirror/golang</h3>');
    expect(page).toContain(`<code title="${indexDigest}">${indexDigest.slice(0, 19)}</code>`);
    expect(page).toContain('<td>linux/amd64, linux/arm64/v8</td>');
    expect(page).toContain(`docker pull ${server.host}/mirror/golang:1.22`);
    expect(page).toContain(`docker pull ${server.host}/mirror/app:v1`);
    // Sizes come from the store's rows: the index, both children and their configs and layers.
    const want = [amd, arm].reduce((n, i) => n + i.size + i.config.size + i.layers.reduce((m, l) => m + l.size, 0), 0);
    expect(page).toContain(`<td>linux/amd64, linux/arm64/v8</td><td class="num">${formatBytes(indexSize + want)}</td>`);
  });

  it('shows the attachments of a tag in one compact cell with their digests in its title, and none where there are none', async () => {
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).toContain('<th scope="col">Attachments</th>');
    const cell = /<td class="attachments ok" title="([^"]*)">signed · SBOM<\/td>/.exec(page);
    expect(cell).not.toBeNull();
    expect(cell![1]).toBe(`signature ${sigDigest} (tag ${cosignTag(indexDigest, 'sig')})\nsbom ${sbomDigest} (${SPDX})`);
    // The unsigned app tag says so plainly.
    expect(page).toMatch(/<td class="num">[^<]+<\/td><td class="muted">—<\/td><td class="wrap">&lt;script&gt;/);
    // The filter finds signed tags.
    const signed = await (await fetch(`${server.url}/?q=signed`)).text();
    expect(signed).toMatch(/<tr data-f="mirror\/golang 1\.22[^"]*signed · sbom[^"]*">/);
    expect(signed).toMatch(/<tr data-f="mirror\/app v1[^"]*" hidden>/);
  });

  it('shows a repository or module whose source the imported bundles deprecated or archived, with its note escaped', async () => {
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).toContain(`<h3>mirror/app</h3><p class="warn lifecycle" title="announced by dmz-store in bundle ferry-20240303-0003-cccccccc">deprecated: ${escapeHtml(EVIL)}</p>`);
    expect(page).toMatch(/<h3>mirror\/golang<\/h3>\n<table>/);
    // A module root archived likewise is marked on its row.
    expect(page).toContain('<th scope="row" class="wrap">example.com/lib<span class="badge bad" title="archived: moved to example.com/lib2">archived</span></th>');
    expect(page).not.toContain('<img src=x');
    expect(page.match(/<script/g)).toHaveLength(1);
  });

  it('follows attachments recorded later, though the journal did not move', async () => {
    const reader = new CatalogReader({ store, repos: new OciRepositories(store) });
    const before = (await reader.read()).repositories?.find((r) => r.name === 'mirror/app')?.tags.find((t) => t.tag === 'v1');
    expect(before?.attachments).toEqual([]);
    const att = await putAttachment(store, { mediaType: single.mediaType, digest: single.digest, size: single.size }, { artifactType: 'application/vnd.in-toto+json', layerType: 'application/vnd.in-toto+json' });
    const after = (await reader.read()).repositories?.find((r) => r.name === 'mirror/app')?.tags.find((t) => t.tag === 'v1');
    expect(after?.attachments).toEqual([{ kind: 'attestation', digest: att, artifactType: 'application/vnd.in-toto+json', tag: undefined }]);
  });

  it('lists Go modules with pseudo-versions marked, the go get line and the GOPROXY to use', async () => {
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).toContain('<th scope="row" class="wrap">example.com/lib<span class="badge bad"');
    expect(page).toMatch(new RegExp(`<code title="[^"]*">${PSEUDO}</code><span class="badge" title="pseudo-version`));
    expect(page).toMatch(/<code title="[^"]*">v1\.1\.0<\/code><span class="badge" title="only go.mod is carried">/);
    expect(page).toContain('go get example.com/lib@v1.2.0');
    expect(page).toContain(`go env -w GOPROXY=${server.url}`);
    expect(page).toContain('GOSUMDB=off');
  });

  it('shows the bundles the ledger beside the store records, and the gap in the chain', async () => {
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).toContain('<h2 id="bundles">Bundles imported</h2>');
    expect(page).toContain('<code>ferry-20240303-0003-cccccccc</code>');
    expect(page).toContain('Missing from the chain: bundle 2 (<code>ferry-20240302-0002-bbbbbbbb</code>)');
  });

  it('escapes an annotation carrying markup: no tag or attribute of it survives', async () => {
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).toContain(escapeHtml(EVIL));
    expect(page).not.toContain('<script>window');
    expect(page).not.toContain('<img src=x');
    expect(page.match(/<script/g)).toHaveLength(1);
  });

  it('narrows the page with ?q= without a script', async () => {
    const page = await (await fetch(`${server.url}/?q=ARM64%20golang`)).text();
    expect(page).toContain('value="arm64 golang"');
    expect(page).toMatch(/<tr data-f="mirror\/golang 1\.22[^"]*">/);
    expect(page).toMatch(/<tr data-f="mirror\/app v1[^"]*" hidden>/);
    expect(page).toMatch(/<tr data-f="example\.com\/lib[^"]*" hidden>/);
  });

  it('serves its own assets under /-/ui/ with validators, and 404 for anything else there', async () => {
    for (const [name, a] of UI_ASSETS) {
      const res = await fetch(`${server.url}${UI_PREFIX}${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(a.contentType);
      expect(Buffer.from(await res.arrayBuffer()).equals(a.bytes)).toBe(true);
      expect((await fetch(`${server.url}${UI_PREFIX}${name}`, { headers: { 'if-none-match': a.etag } })).status).toBe(304);
    }
    expect((await fetch(`${server.url}${UI_PREFIX}nope.js`)).status).toBe(404);
  });

  it('shows a tag that moved since the last page (the cached rows follow the journal)', async () => {
    const before = await (await fetch(`${server.url}/`)).text();
    expect(before).not.toContain('docker pull ' + server.host + '/mirror/app:v2');
    store.tags.set({ registry: 'up.example', repository: 'lib/app', tag: 'v2', source: 'app', target: 'mirror/app', digest: amd.digest, mediaType: amd.mediaType, platforms: null, keptDigests: [] });
    const after = await (await fetch(`${server.url}/`)).text();
    expect(after).toContain(`docker pull ${server.host}/mirror/app:v2`);
    expect(after).toMatch(/<th scope="row" class="tag">v2<\/th>\n<td><code title="[^"]+">[^<]+<\/code><\/td>\n<td>linux\/amd64<\/td>/);
  });

  it('shares one rebuild among concurrent pages, and a page whose client left does not spoil it', async () => {
    const reader = new CatalogReader({ store, repos: new OciRepositories(store) });
    const reads: string[] = [];
    const original = store.content.readBlobBytes.bind(store.content);
    store.content.readBlobBytes = (d, max, o) => {
      reads.push(d);
      return original(d, max, o);
    };
    try {
      const gone = new AbortController();
      gone.abort();
      const [a, b] = await Promise.all([reader.read(gone.signal), reader.read()]);
      expect(a.repositories).toBe(b.repositories);
      expect(new Set(reads).size).toBe(reads.length);
      const app = b.repositories?.find((r) => r.name === 'mirror/app')?.tags.find((t) => t.tag === 'v1');
      expect(app?.description).toBe(EVIL);
    } finally {
      store.content.readBlobBytes = original;
    }
  });

  it('never shadows a registry or GOPROXY route', async () => {
    // No Go module path can start with the pages' element, so no GOPROXY request reaches them.
    expect(modulePathError('-/ui/ferry.css')).toBeDefined();
    expect(modulePathError('-')).toBeDefined();
    const v2 = await fetch(`${server.url}/v2/`);
    expect(v2.status).toBe(200);
    expect(v2.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(await (await fetch(`${server.url}/v2/_catalog`)).json()).toEqual({ repositories: ['mirror/app', 'mirror/golang'] });
    expect((await fetch(`${server.url}/v2/mirror/app/manifests/v1`, { headers: { accept: single.mediaType } })).status).toBe(200);
    expect(await (await fetch(`${server.url}/example.com/lib/@v/list`)).text()).toBe(`v1.2.0\n`);
    const info = await fetch(`${server.url}/example.com/lib/@v/v1.2.0.info`);
    expect(info.status).toBe(200);
    // A module path that merely starts like the pages is still a GOPROXY path (and unknown here).
    expect((await fetch(`${server.url}/-/ui`)).status).toBe(404);
    expect((await fetch(`${server.url}/example.com/-/ui/ferry.css`)).status).toBe(404);
  });
});

describe('ferry serve: the catalog of a static module tree', () => {
  let work: string;
  let server: RunningServe;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-catalog-tree-'));
    await buildProxyTree(join(work, 'tree'), [
      { path: 'example.com/Upper/tool', version: 'v2.0.0' },
      { path: 'example.com/Upper/tool', version: 'v1.9.0' },
      { path: 'golang.org/x/mini', version: PSEUDO },
    ]);
    server = await startServe({ gomodDir: join(work, 'tree'), listen: '127.0.0.1:0' });
  });

  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('lists the modules of the tree (paths unescaped), no images section, and the GOPROXY to use', async () => {
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).not.toContain('id="images"');
    expect(page).toContain('<th scope="row" class="wrap">example.com/Upper/tool</th>');
    expect(page).toContain('go get example.com/Upper/tool@v2.0.0');
    expect(page).toMatch(new RegExp(`${PSEUDO}</code><span class="badge" title="pseudo-version`));
    expect(page).toContain('(from the Go module tree)');
    expect(page).not.toContain('Bundles imported');
    expect((await fetch(`${server.url}/example.com/!upper/tool/@v/list`)).status).toBe(200);
  });
});
