// Docker schema 1 manifests (issue 13 item 18) against a real docker-registry that holds one
// (compatibility.schema1 enabled; skopeo converts and signs it): Ferry names the format it does
// not support instead of blaming the registry for a digest mismatch, and never asks for schema 1.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { isFerryError, type FerryError } from '../../errors/index.js';
import { SCHEMA1_MEDIA_TYPES, sha256Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Store } from '../../store/index.js';
import { buildTestImage, pushLayout, skopeoInspect, type TestImage } from '../helpers/images.js';
import { startCountingProxy, startRegistry, type CountingProxy, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('schema 1 manifests', () => {
  let reg: RunningRegistry;
  let proxy: CountingProxy;
  let img: TestImage;
  let dir: string;
  let s1Digest: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-schema1-'));
    reg = await startRegistry({ schema1: true });
    proxy = await startCountingProxy(reg.host);
    img = await buildTestImage({ layerSizes: [3000], tag: 'v1' });
    await pushLayout(img.layout.dir, 'v1', `${reg.host}/old/app:v2`);
    await promisify(execFile)('skopeo', ['copy', '--quiet', '--format', 'v2s1', '--dest-tls-verify=false', `oci:${img.layout.dir}:v1`, `docker://${reg.host}/old/app:s1`]);
    const raw = (await skopeoInspect(`${reg.host}/old/app:s1`, { raw: true })) as string;
    expect(JSON.parse(raw)).toMatchObject({ schemaVersion: 1 });
    s1Digest = ((await skopeoInspect(`${reg.host}/old/app:s1`)) as { Digest: string }).Digest;
    // The registry's digest of a signed schema 1 manifest is not the sha256 of the bytes it serves.
    expect(s1Digest).not.toBe(sha256Digest(Buffer.from(raw, 'utf8')));
  });

  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    await img?.layout.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fails HEAD and GET with MANIFEST_UNSUPPORTED that says what to do, by tag and by digest', async () => {
    const c = new RegistryClient({ host: reg.host, tls: 'plain-http', retry: { retries: 0 } });
    try {
      // One call at a time: a rejection created before it is awaited would go unhandled.
      for (const call of [() => c.manifestHead('old/app', 's1'), () => c.manifestGet('old/app', 's1'), () => c.manifestGet('old/app', s1Digest)]) {
        const err = await rejection(call());
        expect(isFerryError(err, 'MANIFEST_UNSUPPORTED')).toBe(true);
        const fe = err as FerryError;
        expect(fe.message).toContain(`${reg.host}/old/app`);
        expect(fe.message).toContain('schema 1');
        expect(fe.message).toContain('re-push the image');
        expect(fe.temporary).toBe(false);
      }
      // The schema 2 tag of the same repository is fine.
      expect((await c.manifestHead('old/app', 'v2'))?.digest).toBe(img.top.digest);
    } finally {
      await c.close();
    }
  });

  it('sync fails only the schema 1 tag, with its own code, and never advertises schema 1 in Accept', async () => {
    const file = join(dir, 'ferry.yaml');
    const text = `version: 1\nstore: ./store\nregistries:\n  - host: ${proxy.host}\n    tls: plain-http\nimages:\n  - name: old\n    source: ${proxy.host}/old/app\n`;
    writeFileSync(file, text);
    const cfg = parseConfig(text, file);
    const store = Store.open(cfg.store);
    try {
      proxy.clear();
      const s = await runSync({ config: cfg, store, logger, retry: { retries: 0 } });
      expect(s.ok).toBe(false);
      expect(s.failures.map((f) => ({ tag: f.tag, code: f.code }))).toEqual([{ tag: 's1', code: 'MANIFEST_UNSUPPORTED' }]);
      expect(s.failures[0]!.message).toContain('schema 1');
      expect(store.tags.list().map((t) => `${t.tag} ${t.digest}`)).toEqual([`v2 ${img.top.digest}`]);
      const manifestRequests = proxy.requests().filter((r) => r.path.includes('/manifests/'));
      expect(manifestRequests.length).toBeGreaterThan(0);
      for (const r of manifestRequests) {
        const accept = String(r.headers['accept'] ?? '');
        expect(accept).toContain('application/vnd.oci.image.manifest.v1+json');
        for (const t of SCHEMA1_MEDIA_TYPES) expect(accept).not.toContain(t);
        expect(accept).not.toMatch(/application\/json/);
      }
    } finally {
      store.close();
    }
  });
});
