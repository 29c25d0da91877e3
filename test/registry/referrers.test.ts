// RegistryClient.referrers: the fallback tag path against a real docker-registry 2.8 (it has no
// referrers API), and the API itself (pages through Link, the artifactType filter, hostile
// answers) against an in-process fake, since no referrers-capable registry ships in Debian.
import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { fallbackTag, sha256Digest } from '../../oci/index.js';
import { MAX_REFERRERS_PAGES, publishAttachments, RegistryClient } from '../../registry/index.js';
import { makeCosignKey, pushCosignSignature, pushFallbackIndex, pushSbomReferrer, SPDX, type CosignKey } from '../helpers/cosign.js';
import { pushTestImage, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { rejection, startFake, type FakeServer } from '../net/fake-server.js';

const fastRetry = { retries: 1, baseDelayMs: 1, maxDelayMs: 10 };

describe('referrers against docker-registry 2.8 (no API: the fallback tag)', () => {
  let reg: RunningRegistry;
  let img: TestImage;
  let client: RegistryClient;
  let key: CosignKey;

  beforeAll(async () => {
    reg = await startRegistry();
    img = await pushTestImage(reg.host, 'team/app', { tag: 'v1' });
    client = new RegistryClient({ host: reg.host, tls: 'plain-http', retry: fastRetry });
    key = await makeCosignKey();
  });
  afterAll(async () => {
    await client?.close();
    await key?.remove();
    await img?.layout.remove();
    await reg?.stop();
  });

  it('finds none before anything is attached, and learns the API is absent', async () => {
    const r = await client.referrers('team/app', img.top.digest);
    expect(r).toEqual({ descriptors: [], via: 'fallback' });
    expect(client.referrersApi).toBe(false);
  });

  it('reads the fallback tag index, filters by artifactType, and sees cosign digest tags by tag', async () => {
    const top = { digest: img.top.digest, mediaType: img.top.mediaType, size: img.top.size };
    const sbom = await pushSbomReferrer(client, 'team/app', top, { spdxVersion: 'SPDX-2.3' });
    await pushFallbackIndex(client, 'team/app', img.top.digest, [{ ...sbom, artifactType: SPDX }]);
    const sig = await pushCosignSignature(client, 'team/app', img.top.digest, key, `${reg.host}/team/app`);

    const r = await client.referrers('team/app', img.top.digest);
    expect(r.via).toBe('fallback');
    expect(r.descriptors.map((d) => [d.digest, d.artifactType])).toEqual([[sbom.digest, SPDX]]);
    expect(r.fallbackDigest).toMatch(/^sha256:/);
    expect((await client.referrers('team/app', img.top.digest, { artifactType: 'application/x-other' })).descriptors).toEqual([]);
    expect(await client.manifestHead('team/app', `${fallbackTag(img.top.digest)}.sig`)).toMatchObject({ digest: sig.digest });
    expect(await client.manifestHead('team/app', `${fallbackTag(img.top.digest)}.att`)).toBeUndefined();
  });
});

describe('referrers API (in-process fake)', () => {
  const servers: FakeServer[] = [];
  const clients: RegistryClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  const subject = sha256Digest('subject');
  const desc = (i: number, artifactType = 'application/x-a'): object => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: sha256Digest(`r${i}`),
    size: 100 + i,
    artifactType,
    annotations: { n: String(i) },
  });
  const index = (ms: object[]): string => JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: ms });
  const send = (res: ServerResponse, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', ...headers });
    res.end(body);
  };
  async function setup(handler: Parameters<typeof startFake>[0]): Promise<{ fake: FakeServer; c: RegistryClient }> {
    const fake = await startFake(handler);
    servers.push(fake);
    const c = new RegistryClient({ host: fake.host, tls: 'plain-http', retry: fastRetry });
    clients.push(c);
    return { fake, c };
  }

  it('follows Link pages and keeps descriptors with artifactType and annotations', async () => {
    const { fake, c } = await setup((req, res) => {
      const u = new URL(req.url, 'http://x');
      if (u.pathname !== `/v2/team/app/referrers/${subject}`) return void res.writeHead(404).end();
      if (u.searchParams.get('page') === '2') return send(res, index([desc(3)]));
      send(res, index([desc(1), desc(2, 'application/x-b')]), { link: `</v2/team/app/referrers/${subject}?page=2>; rel="next"` });
    });
    const r = await c.referrers('team/app', subject);
    expect(r.via).toBe('api');
    expect(c.referrersApi).toBe(true);
    expect(r.descriptors.map((d) => d.annotations?.['n'])).toEqual(['1', '2', '3']);
    expect(r.descriptors[1]!.artifactType).toBe('application/x-b');
    expect(fake.seen.length).toBe(2);
  });

  it('filters by artifactType itself unless the registry says OCI-Filters-Applied', async () => {
    let applied = false;
    const { fake, c } = await setup((req, res) => {
      const want = new URL(req.url, 'http://x').searchParams.get('artifactType');
      if (applied) return send(res, index([desc(2, want!)]), { 'oci-filters-applied': 'artifactType' });
      send(res, index([desc(1), desc(2, 'application/x-b')]));
    });
    expect((await c.referrers('team/app', subject, { artifactType: 'application/x-b' })).descriptors.map((d) => d.digest)).toEqual([sha256Digest('r2')]);
    applied = true;
    expect((await c.referrers('team/app', subject, { artifactType: 'application/x-b' })).descriptors.map((d) => d.digest)).toEqual([sha256Digest('r2')]);
    expect(fake.seen.map((r) => new URL(r.url, 'http://x').searchParams.get('artifactType'))).toEqual(['application/x-b', 'application/x-b']);
  });

  it('refuses Link pages that loop, run on without end, or leave the registry', async () => {
    const looping = await setup((req, res) => send(res, index([]), { link: `<${new URL(req.url, 'http://x').pathname}>; rel="next"` }));
    expect(isFerryError(await rejection(looping.c.referrers('team/app', subject)), 'REFERRERS_INVALID')).toBe(true);

    const endless = await setup((req, res) => {
      const n = Number(new URL(req.url, 'http://x').searchParams.get('p') ?? '0');
      send(res, index([]), { link: `</v2/team/app/referrers/${subject}?p=${n + 1}>; rel="next"` });
    });
    const err = await rejection(endless.c.referrers('team/app', subject));
    expect(isFerryError(err, 'REFERRERS_INVALID')).toBe(true);
    expect(endless.fake.seen.length).toBe(MAX_REFERRERS_PAGES);

    const offHost = await setup((_req, res) => send(res, index([desc(1)]), { link: '<http://198.51.100.7/v2/team/app/referrers/x?p=2>; rel="next"' }));
    expect(isFerryError(await rejection(offHost.c.referrers('team/app', subject)), 'LINK_OFF_HOST')).toBe(true);
  });

  it('refuses a malformed list and one with too many entries', async () => {
    const malformed = await setup((_req, res) => send(res, JSON.stringify({ manifests: [{ digest: 'sha256:nope' }] })));
    expect(isFerryError(await rejection(malformed.c.referrers('team/app', subject)), 'REFERRERS_INVALID')).toBe(true);
    const many = await setup((req, res) => {
      const n = Number(new URL(req.url, 'http://x').searchParams.get('p') ?? '0');
      send(res, index(Array.from({ length: 300 }, (_v, i) => desc(n * 300 + i))), { link: `</v2/team/app/referrers/${subject}?p=${n + 1}>; rel="next"` });
    });
    const err = await rejection(many.c.referrers('team/app', subject));
    expect(isFerryError(err, 'REFERRERS_INVALID')).toBe(true);
    expect((err as Error).message).toContain('more than 1000 referrers');
  });

  it('falls back to the tag when the API answers 404, and does not ask the API again', async () => {
    const { fake, c } = await setup((req, res) => {
      if (req.url.includes('/referrers/')) return void res.writeHead(404).end();
      if (req.url === `/v2/team/app/manifests/${fallbackTag(subject)}`) return send(res, index([desc(7)]));
      res.writeHead(404).end();
    });
    expect((await c.referrers('team/app', subject)).descriptors.map((d) => d.digest)).toEqual([sha256Digest('r7')]);
    expect((await c.referrers('team/app', subject, { fallback: false })).descriptors).toEqual([]);
    expect(fake.seen.filter((r) => r.url.includes('/referrers/')).length).toBe(1);
  });

  it('a target that answers OCI-Subject on the PUT indexes referrers itself: no fallback tag is written', async () => {
    const referrer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/spdx+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest('{}'), size: 2 },
        layers: [],
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 7 },
      }),
    );
    const digest = sha256Digest(referrer);
    const { fake, c } = await setup((req, res) => {
      if (req.method === 'PUT') {
        res.writeHead(201, { 'docker-content-digest': sha256Digest(req.body), ...(JSON.parse(req.body.toString()).subject ? { 'oci-subject': subject } : {}) });
        return void res.end();
      }
      res.writeHead(404).end();
    });
    await c.manifestPut('team/app', digest, referrer, 'application/vnd.oci.image.manifest.v1+json');
    expect(c.referrersApi).toBe(true);
    const r = await publishAttachments(c, 'team/app', [{ subject, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: referrer.length } }], async () => ({
      bytes: referrer,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    }));
    expect(r).toEqual({ tags: 0, fallbackIndexes: 0, referrersApi: true });
    expect(fake.seen.map((q) => `${q.method} ${q.url}`)).toEqual([`PUT /v2/team/app/manifests/${digest}`]);
  });
});
