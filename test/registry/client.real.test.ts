// RegistryClient against a real CNCF distribution registry (docker-registry 2.8), open, with
// htpasswd and with token auth; skopeo is the independent reader/writer.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { RegistryClient } from '../../registry/index.js';
import { sha256Digest, type Digest } from '../../oci/index.js';
import { buildTestImage, pushLayout, randomData, skopeoInspect, type TestImage } from '../helpers/images.js';
import { startCountingProxy, startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const USER = 'alice';
const PASS = 'correct horse battery';

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const fastRetry = { retries: 2, baseDelayMs: 1, maxDelayMs: 50 };

describe.each(['none', 'htpasswd', 'token'] as const)('RegistryClient against docker-registry (auth: %s)', (auth) => {
  let reg: RunningRegistry;
  let img: TestImage;
  let client: RegistryClient;
  const creds = auth === 'none' ? undefined : { username: USER, password: PASS };
  const skopeoCreds = auth === 'none' ? {} : { creds: `${USER}:${PASS}` };

  beforeAll(async () => {
    reg = await startRegistry({ auth, users: { [USER]: PASS } });
    img = await buildTestImage({ multiArch: true, layerSizes: [150_000, 3000], tag: 'v1' });
    for (const t of ['v1', 'v2', 'v3', 'v4', 'v5']) {
      await pushLayout(img.layout.dir, 'v1', `${reg.host}/team/app:${t}`, skopeoCreds);
    }
    client = new RegistryClient({ host: reg.host, tls: 'plain-http', ...(creds ? { credentials: creds } : {}), retry: fastRetry });
  });

  afterAll(async () => {
    await client?.close();
    await img?.layout.remove();
    await reg?.stop();
  });

  it('pings', async () => {
    await client.ping();
  });

  it('lists tags (distribution 2.8 ignores n for tags, so Link paging is covered by the fault tests)', async () => {
    reg.clearRequests();
    const tags = await client.tagList('team/app', { pageSize: 2 });
    expect(tags.sort()).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    await reg.flushLog();
    const pages = reg.requests().filter((r) => r.method === 'GET' && r.path.startsWith('/v2/team/app/tags/list') && r.status === 200);
    expect(pages.map((p) => p.path)).toContain('/v2/team/app/tags/list?n=2');
  });

  if (auth === 'none')
    it('can be counted exactly through startCountingProxy', async () => {
      const proxy = await startCountingProxy(reg.host);
      const viaProxy = new RegistryClient({ host: proxy.host, tls: 'plain-http', retry: fastRetry });
      try {
        const layer = img.images[0]!.layers[1]!;
        expect(await viaProxy.manifestHead('team/app', 'v1')).toMatchObject({ digest: img.top.digest });
        expect((await collect(await viaProxy.blobGet('team/app', layer.digest, { size: layer.size }))).length).toBe(layer.size);
        const b = randomData(5000);
        expect(await viaProxy.blobPut('team/viaproxy', sha256Digest(b), b.length, () => Readable.from([b]))).toBe('uploaded');
        expect(proxy.requests().map((r) => `${r.method} ${r.status}`)).toEqual(['HEAD 200', 'GET 200', 'HEAD 404', 'POST 202', 'PUT 201']);
      } finally {
        await viaProxy.close();
        await proxy.stop();
      }
    });

  it('HEADs and GETs an index and an image manifest', async () => {
    const top = img.top;
    const head = await client.manifestHead('team/app', 'v1');
    expect(head).toEqual({ digest: top.digest, mediaType: top.mediaType, size: top.size });
    const got = await client.manifestGet('team/app', 'v1');
    expect(got.digest).toBe(top.digest);
    expect(got.bytes.equals(top.bytes)).toBe(true);
    expect(got.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const child = img.images[1]!;
    const byDigest = await client.manifestGet('team/app', child.digest);
    expect(byDigest.bytes.equals(child.bytes)).toBe(true);
    expect(byDigest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(await client.manifestHead('team/app', child.digest)).toEqual({ digest: child.digest, mediaType: child.mediaType, size: child.size });
  });

  it('reports missing manifests and blobs', async () => {
    expect(await client.manifestHead('team/app', 'nope')).toBeUndefined();
    const err = await rejection(client.manifestGet('team/app', 'nope'));
    expect(isFerryError(err, 'MANIFEST_UNKNOWN')).toBe(true);
    const missing = sha256Digest('missing');
    expect(await client.blobHead('team/app', missing)).toBeUndefined();
    const err2 = await rejection(client.blobGet('team/app', missing));
    expect(isFerryError(err2, 'BLOB_UNKNOWN')).toBe(true);
    expect((err2 as { details: { repository?: string; digest?: string } }).details).toMatchObject({ repository: 'team/app', digest: missing });
  });

  it('streams a blob verified against its digest and size', async () => {
    const layer = img.images[0]!.layers[0]!;
    expect(await client.blobHead('team/app', layer.digest)).toEqual({ size: layer.size });
    const bytes = await collect(await client.blobGet('team/app', layer.digest, { size: layer.size }));
    expect(bytes.equals(await img.layout.readBlob(layer.digest))).toBe(true);
    const err = await rejection(collect(await client.blobGet('team/app', layer.digest, { size: layer.size + 1 })));
    expect(isFerryError(err, 'SIZE_MISMATCH')).toBe(true);
  });

  it('uploads blobs monolithically, in chunks and by mount', async () => {
    const a = randomData(200_000);
    const da = sha256Digest(a);
    expect(await client.blobPut('team/other', da, a.length, () => Readable.from([a]))).toBe('uploaded');
    expect(await client.blobPut('team/other', da, a.length, () => Readable.from([a]))).toBe('exists');
    expect(await client.blobHead('team/other', da)).toEqual({ size: a.length });

    reg.clearRequests();
    const b = randomData(150_000);
    const db = sha256Digest(b);
    const pieces = [b.subarray(0, 70_000), b.subarray(70_000)];
    expect(await client.blobPut('team/other', db, b.length, () => Readable.from(pieces), { chunkSize: 64 * 1024 })).toBe('uploaded');
    await reg.flushLog();
    const patches = reg.requests().filter((r) => r.method === 'PATCH' && r.status === 202);
    expect(patches.length).toBe(3);
    expect((await collect(await client.blobGet('team/other', db, { size: b.length }))).equals(b)).toBe(true);

    expect(await client.blobPut('team/mounted', da, a.length, () => Readable.from([a]), { mountFrom: 'team/other' })).toBe('mounted');
    expect(await client.blobHead('team/mounted', da)).toEqual({ size: a.length });
  });

  it('refuses to upload bytes that do not match the digest', async () => {
    const a = randomData(10_000);
    const err = await rejection(client.blobPut('team/other', sha256Digest('something else'), a.length, () => Readable.from([a])));
    expect(isFerryError(err, 'DIGEST_MISMATCH')).toBe(true);
  });

  it('pushes an image and an index that skopeo reads back with the same digests', async () => {
    const dst = 'team/pushed';
    for (const m of img.images) {
      for (const d of [m.config, ...m.layers]) {
        const bytes = await img.layout.readBlob(d.digest);
        await client.blobPut(dst, d.digest, d.size, () => Readable.from([bytes]), { mountFrom: 'team/app' });
      }
      const digest = await client.manifestPut(dst, m.digest, m.bytes, m.mediaType);
      expect(digest).toBe(m.digest);
    }
    const idxDigest: Digest = await client.manifestPut(dst, 'v1', img.top.bytes, img.top.mediaType);
    expect(idxDigest).toBe(img.top.digest);
    const raw = await skopeoInspect(`${reg.host}/${dst}:v1`, { raw: true, ...skopeoCreds });
    expect(sha256Digest(raw as string)).toBe(idxDigest);
    const amd = (await skopeoInspect(`${reg.host}/${dst}@${img.images[0]!.digest}`, skopeoCreds)) as { Digest: string; Layers: string[] };
    expect(amd.Digest).toBe(img.images[0]!.digest);
    expect(amd.Layers).toEqual(img.images[0]!.layers.map((l) => l.digest));
    expect(await client.tagList(dst)).toEqual(['v1']);
  });

  it('puts one manifest body under several tags: hashed once from its own copy, a digest ref it does not match refused', async () => {
    const dst = 'team/bodies';
    const m = img.images[0]!;
    for (const d of [m.config, ...m.layers]) {
      const blob = await img.layout.readBlob(d.digest);
      await client.blobPut(dst, d.digest, d.size, () => Readable.from([blob]), { mountFrom: 'team/app' });
    }
    const bytes = Buffer.from(m.bytes);
    const body = client.manifestBody(bytes, m.mediaType);
    expect(body.digest).toBe(m.digest);
    // The caller's buffer changing afterwards does not change what goes up.
    bytes.fill(0x20);
    for (const t of ['b1', 'b2']) expect(await client.manifestPutBody(dst, t, body)).toBe(m.digest);
    expect(await client.manifestPutBody(dst, m.digest, body)).toBe(m.digest);
    const other = img.images[1]!.digest;
    const err = await rejection(client.manifestPutBody(dst, other, body));
    expect(isFerryError(err, 'DIGEST_MISMATCH')).toBe(true);
    const forged = Object.assign(Object.create(Object.getPrototypeOf(body) as object) as typeof body, { digest: other, mediaType: m.mediaType, subject: undefined, size: 1 });
    expect(isFerryError(await rejection(client.manifestPutBody(dst, other, forged)), 'CONFIG_INVALID')).toBe(true);
    const got = await client.manifestGet(dst, 'b2');
    expect(got.digest).toBe(m.digest);
  });

  // Conditional definitions rather than runIf: nothing is reported as skipped.
  if (auth !== 'none') it('rejects a wrong password with UNAUTHORIZED and never prints it', async () => {
    const bad = new RegistryClient({ host: reg.host, tls: 'plain-http', credentials: { username: USER, password: 'wrong-password-123' }, retry: fastRetry });
    try {
      const err = await rejection(bad.manifestGet('team/app', 'v1'));
      expect(isFerryError(err, 'UNAUTHORIZED')).toBe(true);
      expect(String((err as Error).message)).not.toContain('wrong-password-123');
      expect(JSON.stringify(err)).not.toContain('wrong-password-123');
      const err2 = await rejection(bad.ping());
      expect(isFerryError(err2, 'UNAUTHORIZED')).toBe(true);
    } finally {
      await bad.close();
    }
    const anon = new RegistryClient({ host: reg.host, tls: 'plain-http', retry: fastRetry });
    try {
      const err = await rejection(anon.tagList('team/app'));
      expect(isFerryError(err, 'UNAUTHORIZED')).toBe(true);
    } finally {
      await anon.close();
    }
  });

  if (auth === 'token') it('asks the token server for pull,push scopes and for the mount source', async () => {
    const scopes = reg.tokenServer!.requests().flatMap((r) => r.scopes);
    expect(scopes).toContain('repository:team/app:pull');
    expect(scopes).toContain('repository:team/other:pull,push');
    expect(scopes).toContain('repository:team/other:pull');
  });
});
