// `ferry serve` against real clients: the go command (GOPROXY), skopeo (OCI pulls), plain HTTP
// requests for ranges and errors; a store filled through its API and a static module tree.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashGoMod, hashZip, proxyPath } from '../../gomod/index.js';
import { createServeHandler, parseListen, startServe, type RunningServe } from '../../serve/server.js';
import { parseRange } from '../../serve/http.js';
import type { Descriptor, Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import { buildProxyTree, writeModuleZip, type ProxyTree } from '../helpers/goproxy-tree.js';
import { OCI, OciLayoutBuilder, type Image, type Index } from '../helpers/images.js';

const execFileP = promisify(execFile);

const UPPER = 'example.com/Upper/lib';
const OLD = 'example.com/old';
const PSEUDO = 'v1.2.1-0.20240301000000-abcdefabcdef';

interface StoredVersion {
  readonly module: string;
  readonly version: string;
  readonly h1Zip: string | null;
  readonly h1Mod: string;
  readonly infoDigest: Digest;
}

function sha(b: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Stores one module version through the Store API, as a sync would. */
async function putVersion(
  store: Store,
  work: string,
  module: string,
  version: string,
  opts: { files?: Record<string, string>; gomod?: string; withZip?: boolean; zipGoMod?: boolean; time?: string } = {},
): Promise<StoredVersion> {
  const gomod = opts.gomod ?? `module ${module}\n\ngo 1.19\n`;
  const time = opts.time ?? '2024-01-01T00:00:00Z';
  const info = `${JSON.stringify({ Version: version, Time: time })}\n`;
  const infoDigest = (await store.content.writeBlobBytes(undefined, Buffer.from(info))).digest;
  const modDigest = (await store.content.writeBlobBytes(undefined, Buffer.from(gomod))).digest;
  let zipDigest: Digest | null = null;
  let h1Zip: string | null = null;
  if (opts.withZip !== false) {
    const file = join(work, `${module.replace(/\//g, '_')}@${version}.zip`);
    const files: Record<string, string> = { ...(opts.files ?? { 'doc.go': 'package lib\n' }) };
    if (opts.zipGoMod !== false) files['go.mod'] = gomod;
    await writeModuleZip(file, module, version, files, new Date(time));
    const bytes = await readFile(file);
    zipDigest = (await store.content.writeBlobBytes(undefined, bytes, { mediaType: 'application/zip' })).digest;
    h1Zip = await hashZip(file);
  }
  const h1Mod = hashGoMod(Buffer.from(gomod));
  store.modules.put({ module, version, time, infoDigest, modDigest, zipDigest, h1Zip, h1Mod, root: 'test' });
  return { module, version, h1Zip, h1Mod, infoDigest };
}

/** Copies an image (config, layers, manifest) from a test layout into the store. */
async function putImage(store: Store, b: OciLayoutBuilder, img: Image, platform?: string): Promise<void> {
  for (const d of [img.config, ...img.layers]) await store.content.writeBlobBytes(d.digest, await b.readBlob(d.digest), { mediaType: d.mediaType });
  const refs: Descriptor[] = [img.config, ...img.layers].map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size }));
  await store.content.putManifest({ digest: img.digest, mediaType: img.mediaType, bytes: img.bytes, references: refs, ...(platform ? { platform } : {}) });
}

async function putIndex(store: Store, idx: Index): Promise<void> {
  const refs: Descriptor[] = idx.manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, ...(m.platform ? { platform: m.platform } : {}) }));
  await store.content.putManifest({ digest: idx.digest, mediaType: idx.mediaType, bytes: idx.bytes, references: refs });
}

function tag(store: Store, target: string, name: string, digest: Digest, mediaType: string, keptDigests: Digest[] = []): void {
  store.tags.set({ registry: 'upstream.example', repository: target, tag: name, source: target, target, digest, mediaType, platforms: null, keptDigests });
}

/** The environment of an isolated go command talking only to `proxy`. */
function goEnv(home: string, proxy: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['GONOSUMDB', 'GOPRIVATE', 'GONOPROXY', 'GOINSECURE', 'GOFLAGS', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'GOROOT_FINAL']) delete env[k];
  return {
    ...env,
    HOME: home,
    GOPATH: join(home, 'gopath'),
    GOMODCACHE: join(home, 'modcache'),
    GOCACHE: join(home, 'gocache'),
    GOENV: 'off',
    GOPROXY: proxy,
    GOSUMDB: 'off',
    GOFLAGS: '-mod=mod',
    GOTOOLCHAIN: 'local',
  };
}

async function goCmd(cwd: string, env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('go', args, { cwd, env, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    throw new Error(`go ${args.join(' ')} failed: ${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

async function skopeo(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    throw new Error(`skopeo ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? ''}`);
  }
}

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** One request with the path sent exactly as given (fetch would normalise `..`). */
function raw(url: string, method: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
  });
}

describe('ferry serve', () => {
  let work: string;
  let storeDir: string;
  let store: Store;
  let reader: Store;
  let server: RunningServe;
  const logLines: Array<Record<string, unknown>> = [];
  const versions = new Map<string, StoredVersion>();
  let layout: OciLayoutBuilder;
  let single: Image;
  let amd: Image;
  let arm: Image;
  let idx: Index;
  let foreign: Image;
  let bigLayer: Digest;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-serve-'));
    storeDir = join(work, 'store');
    store = Store.open(storeDir);
    const zips = join(work, 'zips');
    await mkdir(zips);
    const lib = { 'lib.go': 'package lib\n\n// Hello greets.\nfunc Hello() string { return "hello from lib" }\n' };
    for (const [v, time] of [
      ['v1.0.0', '2024-01-01T00:00:00Z'],
      ['v1.1.0-rc.1', '2024-02-01T00:00:00Z'],
      ['v1.2.0', '2024-02-15T00:00:00Z'],
      [PSEUDO, '2024-03-01T00:00:00Z'],
    ] as const) {
      versions.set(`${UPPER}@${v}`, await putVersion(store, zips, UPPER, v, { files: lib, time }));
    }
    // A version whose .mod only is carried: visible by name, never listed, no zip.
    versions.set(`${UPPER}@v0.9.0`, await putVersion(store, zips, UPPER, 'v0.9.0', { withZip: false }));
    versions.set(`${OLD}@v1.0.0`, await putVersion(store, zips, OLD, 'v1.0.0', { files: { 'old.go': 'package old\n' } }));
    // +incompatible: a v2 tag of a module without go.mod; the proxy synthesises the .mod.
    versions.set(
      `${OLD}@v2.0.0+incompatible`,
      await putVersion(store, zips, OLD, 'v2.0.0+incompatible', { files: { 'old.go': 'package old\n' }, gomod: `module ${OLD}\n`, zipGoMod: false }),
    );
    // Only pseudo-versions: @latest falls back to the newest one.
    versions.set(`example.com/pseudoonly@v0.0.0-20240101000000-111111111111`, await putVersion(store, zips, 'example.com/pseudoonly', 'v0.0.0-20240101000000-111111111111'));
    versions.set(`example.com/pseudoonly@v0.0.0-20240201000000-222222222222`, await putVersion(store, zips, 'example.com/pseudoonly', 'v0.0.0-20240201000000-222222222222'));

    layout = await OciLayoutBuilder.create(join(work, 'layout'));
    const shared = await layout.addLayer({ size: 4096, seed: 'shared' });
    const big = await layout.addLayer({ size: 16 * 1024 * 1024, seed: 'big' });
    bigLayer = big.digest;
    single = await layout.addImage({ layers: [shared, big] });
    amd = await layout.addImage({ layers: [shared, await layout.addLayer({ size: 1000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    arm = await layout.addImage({ layers: [shared, await layout.addLayer({ size: 1000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    idx = await layout.addIndex([amd, arm]);
    foreign = await layout.addImage({ layers: [await layout.addLayer({ size: 2000, seed: 'foreign' })] });
    await putImage(store, layout, single);
    await putImage(store, layout, amd, 'linux/amd64');
    await putImage(store, layout, arm, 'linux/arm64/v8');
    await putIndex(store, idx);
    await putImage(store, layout, foreign);
    tag(store, 'mirror/app', 'v1', single.digest, single.mediaType);
    for (const t of ['a', 'b', 'c']) tag(store, 'mirror/app', t, single.digest, single.mediaType);
    tag(store, 'mirror/app', 'multi', idx.digest, idx.mediaType, [amd.digest, arm.digest]);
    tag(store, 'other/thing', 'v1', foreign.digest, foreign.mediaType);

    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    // Served from a second, read-only handle, the way `ferry serve` runs beside a sync.
    reader = Store.open(storeDir, { readonly: true });
    server = await startServe({ store: reader, listen: '127.0.0.1:0', logger });
  });

  afterAll(async () => {
    await server?.close();
    reader?.close();
    store?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('GOPROXY from a store', () => {
    it('regenerates @v/list from versions with a zip, in semver order, without pseudo-versions', async () => {
      const res = await fetch(`${server.url}/${proxyPath(UPPER, 'list')}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await res.text()).toBe('v1.0.0\nv1.1.0-rc.1\nv1.2.0\n');
      const old = await fetch(`${server.url}/${proxyPath(OLD, 'list')}`);
      expect(await old.text()).toBe('v1.0.0\nv2.0.0+incompatible\n');
    });

    it('serves .info, .mod and .zip verbatim with types and lengths', async () => {
      const info = await fetch(`${server.url}/${proxyPath(UPPER, 'info', 'v1.2.0')}`);
      expect(info.headers.get('content-type')).toBe('application/json');
      expect(await info.json()).toEqual({ Version: 'v1.2.0', Time: '2024-02-15T00:00:00Z' });
      const mod = await fetch(`${server.url}/${proxyPath(UPPER, 'mod', 'v1.2.0')}`);
      expect(mod.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await mod.text()).toBe(`module ${UPPER}\n\ngo 1.19\n`);
      const zip = await fetch(`${server.url}/${proxyPath(UPPER, 'zip', 'v1.2.0')}`);
      expect(zip.headers.get('content-type')).toBe('application/zip');
      const bytes = Buffer.from(await zip.arrayBuffer());
      expect(Number(zip.headers.get('content-length'))).toBe(bytes.length);
      const row = store.modules.get(UPPER, 'v1.2.0');
      expect(sha(bytes)).toBe(row?.zipDigest);
    });

    it('answers @latest with the latest carried release, or the newest pseudo-version', async () => {
      expect(await (await fetch(`${server.url}/${proxyPath(UPPER, 'latest')}`)).json()).toEqual({ Version: 'v1.2.0', Time: '2024-02-15T00:00:00Z' });
      const p = (await (await fetch(`${server.url}/${proxyPath('example.com/pseudoonly', 'latest')}`)).json()) as { Version: string };
      expect(p.Version).toBe('v0.0.0-20240201000000-222222222222');
    });

    it('404s with a plain body for unknown modules, versions and zip-less versions', async () => {
      for (const path of [proxyPath('example.com/nothing', 'list'), proxyPath(UPPER, 'info', 'v9.9.9'), proxyPath(UPPER, 'zip', 'v0.9.0'), '/x/@v/', `/${escapeNothing()}`]) {
        const res = await fetch(`${server.url}/${path.replace(/^\//, '')}`);
        expect(res.status, path).toBe(404);
        expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
        expect(await res.text()).toMatch(/^not found/);
      }
      // The .mod of a zip-less version is still there (MVS reads it).
      expect((await fetch(`${server.url}/${proxyPath(UPPER, 'mod', 'v0.9.0')}`)).status).toBe(200);
    });

    it('works with the go command: download, list -versions, and a build', async () => {
      const home = join(work, 'gohome');
      await mkdir(home, { recursive: true });
      const env = goEnv(home, server.url);
      for (const key of [`${UPPER}@v1.2.0`, `${UPPER}@${PSEUDO}`, `${OLD}@v2.0.0+incompatible`, `${UPPER}@v1.1.0-rc.1`]) {
        const out = JSON.parse(await goCmd(home, env, ['mod', 'download', '-json', key])) as { Sum: string; GoModSum: string; Error?: string };
        const want = versions.get(key);
        expect(out.Error, key).toBeUndefined();
        expect(out.Sum, key).toBe(want?.h1Zip);
        expect(out.GoModSum, key).toBe(want?.h1Mod);
      }
      const app = join(work, 'app');
      await mkdir(app, { recursive: true });
      await writeFile(join(app, 'go.mod'), `module example.com/app\n\ngo 1.19\n\nrequire ${UPPER} v1.2.0\n`);
      await writeFile(join(app, 'main.go'), `package main\n\nimport (\n\t"fmt"\n\n\t"${UPPER}"\n)\n\nfunc main() { fmt.Println(lib.Hello()) }\n`);
      const versionsOut = await goCmd(app, env, ['list', '-m', '-versions', UPPER]);
      expect(versionsOut.trim()).toBe(`${UPPER} v1.0.0 v1.1.0-rc.1 v1.2.0`);
      await goCmd(app, env, ['build', '-o', join(app, 'app'), '.']);
      const { stdout } = await execFileP(join(app, 'app'));
      expect(stdout).toBe('hello from lib\n');
      const sum = await readFile(join(app, 'go.sum'), 'utf8');
      expect(sum).toContain(`${UPPER} v1.2.0 ${versions.get(`${UPPER}@v1.2.0`)?.h1Zip}`);
    });

    it('sees versions a writer adds while it serves (read-only handle, WAL)', async () => {
      await putVersion(store, join(work, 'zips'), UPPER, 'v1.3.0', { time: '2024-04-01T00:00:00Z' });
      expect(await (await fetch(`${server.url}/${proxyPath(UPPER, 'list')}`)).text()).toBe('v1.0.0\nv1.1.0-rc.1\nv1.2.0\nv1.3.0\n');
    });
  });

  describe('OCI distribution (pull only)', () => {
    it('answers /v2/ with the API version header', async () => {
      const res = await fetch(`${server.url}/v2/`);
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
      expect(await res.json()).toEqual({});
    });

    it('lists tags with n/last pagination and a Link header', async () => {
      const all = await fetch(`${server.url}/v2/mirror/app/tags/list`);
      expect(await all.json()).toEqual({ name: 'mirror/app', tags: ['a', 'b', 'c', 'multi', 'v1'] });
      const p1 = await fetch(`${server.url}/v2/mirror/app/tags/list?n=2`);
      expect(await p1.json()).toEqual({ name: 'mirror/app', tags: ['a', 'b'] });
      expect(p1.headers.get('link')).toBe('</v2/mirror/app/tags/list?n=2&last=b>; rel="next"');
      const p3 = await fetch(`${server.url}/v2/mirror/app/tags/list?n=2&last=multi`);
      expect(await p3.json()).toEqual({ name: 'mirror/app', tags: ['v1'] });
      expect(p3.headers.get('link')).toBeNull();
      const bad = await fetch(`${server.url}/v2/mirror/app/tags/list?n=x`);
      expect(bad.status).toBe(400);
      const unknown = await fetch(`${server.url}/v2/mirror/nope/tags/list`);
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('NAME_UNKNOWN');
      const cat = await fetch(`${server.url}/v2/_catalog`);
      expect(await cat.json()).toEqual({ repositories: ['mirror/app', 'other/thing'] });
    });

    it('serves manifests by tag and digest with type, digest, length and ETag', async () => {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${server.url}/v2/mirror/app/manifests/multi`, { method });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe(OCI.index);
        expect(res.headers.get('docker-content-digest')).toBe(idx.digest);
        expect(res.headers.get('etag')).toBe(`"${idx.digest}"`);
        expect(Number(res.headers.get('content-length'))).toBe(idx.bytes.length);
        if (method === 'GET') expect(Buffer.from(await res.arrayBuffer()).equals(idx.bytes)).toBe(true);
      }
      const child = await fetch(`${server.url}/v2/mirror/app/manifests/${arm.digest}`);
      expect(child.status).toBe(200);
      expect(child.headers.get('content-type')).toBe(OCI.manifest);
      const again = await fetch(`${server.url}/v2/mirror/app/manifests/v1`, { headers: { 'If-None-Match': `"${single.digest}"` } });
      expect(again.status).toBe(304);
    });

    it('serves a digest only under a repository whose tags reach it', async () => {
      const m = await fetch(`${server.url}/v2/other/thing/manifests/${single.digest}`);
      expect(m.status).toBe(404);
      expect(((await m.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('MANIFEST_UNKNOWN');
      const b = await fetch(`${server.url}/v2/mirror/app/blobs/${foreign.layers[0]?.digest}`);
      expect(b.status).toBe(404);
      expect(((await b.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('BLOB_UNKNOWN');
      expect((await fetch(`${server.url}/v2/other/thing/blobs/${foreign.layers[0]?.digest}`)).status).toBe(200);
      const bad = await fetch(`${server.url}/v2/mirror/app/manifests/sha256:nothex`);
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('DIGEST_INVALID');
    });

    it('serves blob ranges (206, Content-Range) and refuses unsatisfiable ones (416)', async () => {
      const layer = amd.layers[0];
      if (!layer) throw new Error('no layer');
      const want = await layout.readBlob(layer.digest);
      const res = await fetch(`${server.url}/v2/mirror/app/blobs/${layer.digest}`, { headers: { Range: 'bytes=10-19' } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 10-19/${want.length}`);
      expect(res.headers.get('accept-ranges')).toBe('bytes');
      expect(Buffer.from(await res.arrayBuffer()).equals(want.subarray(10, 20))).toBe(true);
      const tail = await fetch(`${server.url}/v2/mirror/app/blobs/${layer.digest}`, { headers: { Range: `bytes=${want.length - 5}-` } });
      expect(tail.status).toBe(206);
      expect(Buffer.from(await tail.arrayBuffer()).equals(want.subarray(want.length - 5))).toBe(true);
      const past = await fetch(`${server.url}/v2/mirror/app/blobs/${layer.digest}`, { headers: { Range: `bytes=${want.length}-` } });
      expect(past.status).toBe(416);
      expect(past.headers.get('content-range')).toBe(`bytes */${want.length}`);
      const whole = await fetch(`${server.url}/v2/mirror/app/blobs/${layer.digest}`);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('docker-content-digest')).toBe(layer.digest);
      expect(Buffer.from(await whole.arrayBuffer()).equals(want)).toBe(true);
    });

    it('answers a HEAD of a missing blob with 404 BLOB_UNKNOWN and writes with 405', async () => {
      const missing = sha('not stored');
      const head = await raw(server.url, 'HEAD', `/v2/mirror/app/blobs/${missing}`);
      expect(head.status).toBe(404);
      expect(head.headers['content-type']).toBe('application/json');
      const get = await fetch(`${server.url}/v2/mirror/app/blobs/${missing}`);
      expect(await get.json()).toEqual({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry', detail: { name: 'mirror/app', digest: missing } }] });
      for (const [method, path] of [
        ['PUT', '/v2/mirror/app/manifests/v2'],
        ['POST', '/v2/mirror/app/blobs/uploads/'],
        ['DELETE', `/v2/mirror/app/manifests/${single.digest}`],
      ] as const) {
        const res = await fetch(`${server.url}${path}`, { method, ...(method === 'PUT' ? { body: '{}' } : {}) });
        expect(res.status).toBe(405);
        expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNSUPPORTED');
      }
      expect((await fetch(`${server.url}/${proxyPath(UPPER, 'list')}`, { method: 'PUT', body: 'x' })).status).toBe(405);
    });

    it('is pulled by skopeo: a single image and a two-platform index, digests intact', async () => {
      const host = server.url.replace(/^http:\/\//, '');
      const out1 = join(work, 'pulled1');
      await skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/mirror/app:v1`, `oci:${out1}:v1`]);
      const index1 = JSON.parse(await readFile(join(out1, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(index1.manifests[0]?.digest).toBe(single.digest);
      const rawManifest = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/mirror/app:v1`]);
      expect(sha(rawManifest)).toBe(single.digest);

      const out2 = join(work, 'pulled2');
      await skopeo(['copy', '--all', '--quiet', '--src-tls-verify=false', `docker://${host}/mirror/app:multi`, `oci:${out2}:multi`]);
      const index2 = JSON.parse(await readFile(join(out2, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(index2.manifests[0]?.digest).toBe(idx.digest);
      for (const m of [amd, arm]) {
        for (const l of m.layers) expect((await readFile(join(out2, 'blobs', 'sha256', l.digest.slice(7)))).equals(await layout.readBlob(l.digest))).toBe(true);
      }
      const rawIndex = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/mirror/app:multi`]);
      expect(sha(rawIndex)).toBe(idx.digest);
    });

    it('sees a tag moved by a writer while it serves', async () => {
      tag(store, 'mirror/app', 'd', amd.digest, amd.mediaType);
      const res = await fetch(`${server.url}/v2/mirror/app/tags/list`);
      expect(((await res.json()) as { tags: string[] }).tags).toContain('d');
      expect((await fetch(`${server.url}/v2/mirror/app/manifests/d`)).headers.get('docker-content-digest')).toBe(amd.digest);
    });

    it('survives a client hanging up mid-blob and logs one line per request', async () => {
      await new Promise<void>((ok, fail) => {
        const u = new URL(server.url);
        // Read nothing: backpressure holds the server mid-body (16 MiB outgrows socket buffers).
        const req = request({ host: u.hostname, port: u.port, path: `/v2/mirror/app/blobs/${bigLayer}` }, (res) => {
          res.pause();
          res.on('error', () => undefined);
          req.destroy();
          ok();
        });
        req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : fail(err)));
        req.end();
      });
      // The server keeps serving, and its request log marks the abandoned download.
      await expect.poll(() => logLines.some((l) => l['path'] === `/v2/mirror/app/blobs/${bigLayer}` && l['aborted'] === true)).toBe(true);
      expect((await fetch(`${server.url}/v2/`)).status).toBe(200);
      expect(logLines.filter((l) => l['msg'] === 'serve request').length).toBeGreaterThan(10);
    });
  });

  describe('GOPROXY from a static module tree', () => {
    let tree: ProxyTree;
    let dirServer: RunningServe;

    beforeAll(async () => {
      tree = await buildProxyTree(join(work, 'tree'), [
        { path: 'example.com/Static/mod', version: 'v1.0.0', files: { 'mod.go': 'package mod\n' } },
        { path: 'example.com/Static/mod', version: 'v1.1.0', files: { 'mod.go': 'package mod\n' } },
      ]);
      await mkdir(join(work, 'tree', 'sumdb', 'sum.example.com'), { recursive: true });
      await writeFile(join(work, 'tree', 'sumdb', 'sum.example.com', 'supported'), '');
      await writeFile(join(work, 'secret.txt'), 'TOPSECRET-CONTENT');
      dirServer = await startServe({ gomodDir: join(work, 'tree'), store, listen: '127.0.0.1:0' });
    });

    afterAll(async () => {
      await dirServer?.close();
    });

    it('serves the tree to the go command (paths literal: ! @ +)', async () => {
      const home = join(work, 'gohome-static');
      await mkdir(home, { recursive: true });
      const env = goEnv(home, dirServer.url);
      const out = JSON.parse(await goCmd(home, env, ['mod', 'download', '-json', 'example.com/Static/mod@v1.1.0'])) as { Sum: string; GoModSum: string };
      expect(out.Sum).toBe(tree.sums.get('example.com/Static/mod@v1.1.0')?.h1Zip);
      expect(out.GoModSum).toBe(tree.sums.get('example.com/Static/mod@v1.1.0')?.h1Mod);
      const latest = JSON.parse(await goCmd(home, env, ['mod', 'download', '-json', 'example.com/Static/mod@latest'])) as { Version: string };
      expect(latest.Version).toBe('v1.1.0');
    });

    it('wins over the store for modules, and refuses paths leaving the tree', async () => {
      expect((await fetch(`${dirServer.url}/${proxyPath(UPPER, 'list')}`)).status).toBe(404);
      const zip = await fetch(`${dirServer.url}/${proxyPath('example.com/Static/mod', 'zip', 'v1.0.0')}`);
      expect(zip.headers.get('content-type')).toBe('application/zip');
      for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/example.com/%2e%2e/%2e%2e/secret.txt']) {
        const res = await raw(dirServer.url, 'GET', path);
        expect(res.status, path).toBe(404);
        expect(res.body.toString()).not.toContain('TOPSECRET');
      }
      // Images still come from the store.
      expect((await fetch(`${dirServer.url}/v2/mirror/app/manifests/v1`)).status).toBe(200);
    });

    it('serves static checksum-database files under /sumdb/<name>/', async () => {
      expect((await fetch(`${dirServer.url}/sumdb/sum.example.com/supported`)).status).toBe(200);
      expect((await fetch(`${dirServer.url}/sumdb/sum.example.com/lookup/example.com/x@v1.0.0`)).status).toBe(404);
      expect((await fetch(`${dirServer.url}/sumdb/sum.golang.org/supported`)).status).toBe(404);
    });
  });

  describe('options and parsing', () => {
    it('parses listen addresses and byte ranges', () => {
      expect(parseListen('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
      expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
      expect(parseListen(':9000')).toEqual({ host: '', port: 9000 });
      expect(() => parseListen('8080')).toThrow(expect.objectContaining({ code: 'USAGE' }));
      expect(() => parseListen('host:99999')).toThrow(expect.objectContaining({ code: 'USAGE' }));
      expect(parseRange('bytes=10-19', 100)).toEqual({ start: 10, end: 19 });
      expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
      expect(parseRange('bytes=-5', 100)).toEqual({ start: 95, end: 99 });
      expect(parseRange('bytes=95-200', 100)).toEqual({ start: 95, end: 99 });
      expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
      expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined();
      expect(parseRange('items=0-1', 100)).toBeUndefined();
    });

    it('refuses to start without anything to serve, or with half a TLS pair', async () => {
      expect(() => createServeHandler({})).toThrow(expect.objectContaining({ code: 'USAGE' }));
      expect(() => createServeHandler({ gomodDir: join(work, 'no-such-dir') })).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
      await expect(startServe({ store, listen: '127.0.0.1:0', tlsCert: 'x.pem' })).rejects.toMatchObject({ code: 'USAGE' });
    });

    it('serves HTTPS with a certificate and key', async () => {
      const key = join(work, 'key.pem');
      const cert = join(work, 'cert.pem');
      await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
      const tls = await startServe({ store, listen: '127.0.0.1:0', tlsCert: cert, tlsKey: key });
      try {
        expect(tls.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        const manifest = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${tls.host}/mirror/app:v1`]);
        expect(sha(manifest)).toBe(single.digest);
      } finally {
        await tls.close();
      }
    });
  });
});

/** A path that is not a valid escaped module path (upper case must be escaped). */
function escapeNothing(): string {
  return 'example.com/Bad/@v/list';
}
