// foreignBlobGet (issue 13 item 17, `foreignLayers: fetch`): a foreign layer fetched from its
// descriptor's urls, http(s) only, verified against digest and size, never with credentials.
// In-process fakes for the hostile answers (wrong bytes, 404s, other schemes).
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError, type FerryError } from '../../errors/index.js';
import { isForeignLayer, parseManifest, sha256Digest, type Descriptor } from '../../oci/index.js';
import { foreignBlobGet } from '../../registry/index.js';
import { rejection, startFake, type FakeServer } from '../net/fake-server.js';

const FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
const LAYER = Buffer.alloc(50_000, 9);
const DIGEST = sha256Digest(LAYER);

const servers: FakeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function fake(handler: Parameters<typeof startFake>[0]): Promise<FakeServer> {
  const s = await startFake(handler);
  servers.push(s);
  return s;
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function desc(urls: string[]): Descriptor {
  return { mediaType: FOREIGN, digest: DIGEST, size: LAYER.length, urls };
}

const retry = { retries: 1, baseDelayMs: 1, maxDelayMs: 5 };

describe('foreign layers', () => {
  it('recognises a foreign layer by media type and urls, and checks urls in manifests', () => {
    expect(isForeignLayer(desc(['https://x/l']))).toBe(true);
    expect(isForeignLayer({ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', urls: ['https://x'] })).toBe(true);
    expect(isForeignLayer({ mediaType: FOREIGN })).toBe(false);
    expect(isForeignLayer({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', urls: ['https://x'] })).toBe(false);
    const bad = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'c', digest: DIGEST, size: 1 }, layers: [{ mediaType: FOREIGN, digest: DIGEST, size: 1, urls: 'https://x' }] }));
    expect(() => parseManifest(bad)).toThrow('manifest invalid: layers[0].urls is not a list of strings');
  });

  it('takes the first url that serves it, skipping non-http(s) ones, and sends no credentials', async () => {
    const s = await fake((req, res) => {
      if (req.url === '/missing') {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-length': String(LAYER.length) });
      res.end(LAYER);
    });
    const got = await collect(await foreignBlobGet(desc(['ftp://files.example/l', `${s.url}/missing`, `${s.url}/layer`]), { retry }));
    expect(got.equals(LAYER)).toBe(true);
    expect(s.seen.map((r) => r.url)).toEqual(['/missing', '/layer']);
    for (const r of s.seen) expect(r.headers.authorization).toBeUndefined();
  });

  it('fails with DIGEST_MISMATCH on wrong bytes and BLOB_UNKNOWN naming every url when none serves it', async () => {
    const wrong = Buffer.from(LAYER);
    wrong[7] = 1;
    const s = await fake((req, res) => {
      if (req.url === '/wrong') {
        res.writeHead(200, { 'content-length': String(wrong.length) });
        res.end(wrong);
        return;
      }
      res.writeHead(410);
      res.end();
    });
    const e1 = await rejection(collect(await foreignBlobGet(desc([`${s.url}/wrong`]), { retry })));
    expect(isFerryError(e1, 'DIGEST_MISMATCH')).toBe(true);

    const e2 = await rejection(foreignBlobGet(desc(['file:///etc/passwd', `${s.url}/gone`]), { retry }));
    expect(isFerryError(e2, 'BLOB_UNKNOWN')).toBe(true);
    expect((e2 as FerryError).message).toContain('file:///etc/passwd: only http and https URLs are fetched');
    expect((e2 as FerryError).message).toContain(`${s.url}/gone: HTTP 410`);
    expect((e2 as FerryError).details.digest).toBe(DIGEST);
  });
});
