// ferry serve answers the referrers API as the distribution spec's "Listing Referrers" says, and
// serves cosign digest tags. The store is filled the real way: a sync from docker-registry 2.8
// holding a cosign signature (digest tag) and an SBOM referrer (fallback tag index).
// The checks, from the spec: 200 with an image index (Content-Type
// application/vnd.oci.image.index.v1+json) of descriptors whose artifactType is the manifest's
// artifactType (else its config media type) and whose annotations are the manifest's; a digest
// with no referrers gets an empty index, not 404; `?artifactType=` filters and the answer carries
// `OCI-Filters-Applied: artifactType`; an invalid digest is 400; an unknown repository 404.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { fallbackTag, MediaType, sha256Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { startServe, type RunningServe } from '../../serve/server.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { makeCosignKey, pushCosignSignature, pushFallbackIndex, pushSbomReferrer, SPDX, type CosignKey, type PushedAttachment } from '../helpers/cosign.js';
import { buildTestImage, pushLayout, type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

describe('ferry serve: referrers API and digest tags', () => {
  let dir: string;
  let up: RunningRegistry;
  let upClient: RegistryClient;
  let img: TestImage;
  let key: CosignKey;
  let sig: PushedAttachment;
  let sbom: PushedAttachment;
  let store: Store;
  let server: RunningServe;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-serve-referrers-'));
    up = await startRegistry();
    img = await buildTestImage({ multiArch: true, seed: 'serve-ref', tag: 'v1' });
    await pushLayout(img.layout.dir, 'v1', `${up.host}/team/app:v1`);
    upClient = new RegistryClient({ host: up.host, tls: 'plain-http' });
    key = await makeCosignKey();
    sig = await pushCosignSignature(upClient, 'team/app', img.top.digest, key, `${up.host}/team/app`);
    sbom = await pushSbomReferrer(upClient, 'team/app', img.images[0]!, { spdxVersion: 'SPDX-2.3' });
    await pushFallbackIndex(upClient, 'team/app', img.images[0]!.digest, [{ ...sbom, artifactType: SPDX }]);
    const text = `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\nimages:\n  - source: ${up.host}/team/app\n    target: mirror/app\n`;
    writeFileSync(join(dir, 'ferry.yaml'), text);
    const cfg = parseConfig(text, join(dir, 'ferry.yaml'));
    store = Store.open(cfg.store);
    expect((await runSync({ config: cfg, store, logger: pino({ level: 'silent' }) })).failures).toEqual([]);
    server = await startServe({ store, listen: '127.0.0.1:0' });
  });

  afterAll(async () => {
    await server?.close();
    store?.close();
    await upClient?.close();
    await key?.remove();
    await img?.layout.remove();
    await up?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string): Promise<Response> => fetch(`${server.url}${path}`);

  it('lists a subject\'s referrers as an image index of descriptors with artifactType and annotations', async () => {
    const amd = img.images[0]!;
    const res = await get(`/v2/mirror/app/referrers/${amd.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(MediaType.OciIndex);
    const body = (await res.json()) as { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> };
    expect(body.schemaVersion).toBe(2);
    expect(body.mediaType).toBe(MediaType.OciIndex);
    expect(body.manifests).toEqual([
      { mediaType: MediaType.OciManifest, digest: sbom.digest, size: sbom.bytes.length, artifactType: SPDX, annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' } },
    ]);
    // Each listed manifest is served, and its subject is the digest asked about.
    const m = await get(`/v2/mirror/app/manifests/${sbom.digest}`);
    expect(m.status).toBe(200);
    const bytes = Buffer.from(await m.arrayBuffer());
    expect(sha256Digest(bytes)).toBe(sbom.digest);
    expect((JSON.parse(bytes.toString('utf8')) as { subject: { digest: string } }).subject.digest).toBe(amd.digest);
  });

  it('answers an empty index, not 404, for a digest without referrers (known or not)', async () => {
    for (const d of [img.top.digest, sha256Digest('nothing refers to this')]) {
      const res = await get(`/v2/mirror/app/referrers/${d}`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    }
  });

  it('filters by artifactType and says so in OCI-Filters-Applied', async () => {
    const amd = img.images[0]!;
    const hit = await get(`/v2/mirror/app/referrers/${amd.digest}?artifactType=${encodeURIComponent(SPDX)}`);
    expect(hit.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await hit.json()) as { manifests: Array<{ digest: string }> }).manifests.map((d) => d.digest)).toEqual([sbom.digest]);
    const miss = await get(`/v2/mirror/app/referrers/${amd.digest}?artifactType=application%2Fx-other`);
    expect(miss.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await miss.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    expect((await get(`/v2/mirror/app/referrers/${amd.digest}`)).headers.get('oci-filters-applied')).toBeNull();
  });

  it('refuses an invalid digest (400) and an unknown repository (404)', async () => {
    const bad = await get('/v2/mirror/app/referrers/sha256:nothex');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('DIGEST_INVALID');
    const unknown = await get(`/v2/nobody/here/referrers/${img.top.digest}`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('NAME_UNKNOWN');
  });

  it('serves the cosign digest tag and lists it, and a registry client finds referrers through the API', async () => {
    const tag = `${fallbackTag(img.top.digest)}.sig`;
    const res = await get(`/v2/mirror/app/manifests/${tag}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(sig.digest);
    expect(((await (await get('/v2/mirror/app/tags/list')).json()) as { tags: string[] }).tags).toEqual([tag, 'v1'].sort());
    const client = new RegistryClient({ host: new URL(server.url).host, tls: 'plain-http' });
    try {
      const r = await client.referrers('mirror/app', img.images[0]!.digest);
      expect(r.via).toBe('api');
      expect(r.descriptors.map((d) => d.digest)).toEqual([sbom.digest]);
    } finally {
      await client.close();
    }
  });
});
