import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { GoProxyClient } from '../../goproxy/index.js';
import { proxyPath } from '../../gomod/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const FAST_RETRY = { retries: 2, baseDelayMs: 1, maxDelayMs: 5 };

describe('GoProxyClient', () => {
  let work: string;
  let tree: string;
  let server: StaticServer;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-goproxy-client-'));
    tree = join(work, 'proxy');
    await buildProxyTree(tree, [
      { path: 'github.com/Azure/sdk', version: 'v1.0.0' },
      { path: 'github.com/Azure/sdk', version: 'v1.1.0-RC.1' },
      { path: 'github.com/Azure/sdk', version: 'v1.0.1-0.20200101000000-abcdefabcdef' },
      { path: 'example.com/gone', version: 'v1.0.0' },
      { path: 'example.com/broken', version: 'v1.0.0' },
    ]);
    server = await serveDir(tree, {
      intercept: (req, res) => {
        if (req.url?.startsWith('/example.com/gone/')) {
          res.writeHead(410).end('gone\n');
          return true;
        }
        if (req.url?.startsWith('/example.com/broken/')) {
          res.writeHead(500).end('boom\n');
          return true;
        }
        if (req.url?.startsWith('/chunked/')) {
          // No Content-Length: only the streaming cap can stop an oversized body.
          const file = join(tree, ...decodeURIComponent(req.url.slice('/chunked/'.length)).split('/'));
          void readFile(file).then(
            (b) => {
              res.writeHead(200, { 'transfer-encoding': 'chunked' });
              res.write(b.subarray(0, 8));
              res.end(b.subarray(8));
            },
            () => res.writeHead(404).end(),
          );
          return true;
        }
        if (req.url?.startsWith('/private/')) {
          if (req.headers.authorization !== `Basic ${Buffer.from('u:p@ss').toString('base64')}`) {
            res.writeHead(401).end();
            return true;
          }
          req.url = req.url.slice('/private'.length);
        }
        return false;
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  for (const kind of ['http', 'file'] as const) {
    describe(kind, () => {
      const client = (): GoProxyClient =>
        new GoProxyClient({ baseUrl: kind === 'http' ? server.url : pathToFileURL(tree).href, retry: FAST_RETRY });

      it('lists tagged versions, sorted, without pseudo-versions', async () => {
        const l = await client().list('github.com/Azure/sdk');
        expect(l?.versions).toEqual(['v1.0.0', 'v1.1.0-RC.1']);
        expect(l?.raw.toString()).toBe('v1.0.0\nv1.1.0-RC.1\n');
      });

      it('reads .info, .mod, .zip and @latest with exact bytes', async () => {
        const c = client();
        const info = await c.info('github.com/Azure/sdk', 'v1.1.0-RC.1');
        expect(info).toMatchObject({ Version: 'v1.1.0-RC.1', Time: '2024-01-01T00:00:00Z' });
        const mod = await c.mod('github.com/Azure/sdk', 'v1.0.0');
        expect(mod?.toString()).toBe('module github.com/Azure/sdk\n');
        const zip = await c.zip('github.com/Azure/sdk', 'v1.0.0');
        const bytes = await collect(zip!);
        const want = await readFile(join(tree, ...proxyPath('github.com/Azure/sdk', 'zip', 'v1.0.0').split('/')));
        expect(bytes.equals(want)).toBe(true);
        expect((await c.zipBytes('github.com/Azure/sdk', 'v1.0.0', want.length))?.equals(want)).toBe(true);
        const latest = await c.latest('github.com/Azure/sdk');
        expect(latest?.Version).toBe('v1.0.0');
        const pseudo = await c.info('github.com/Azure/sdk', 'v1.0.1-0.20200101000000-abcdefabcdef');
        expect(pseudo?.Time).toBe('2020-01-01T00:00:00Z');
      });

      it('returns undefined for what is not there', async () => {
        const c = client();
        expect(await c.list('example.com/nothing')).toBeUndefined();
        expect(await c.info('github.com/Azure/sdk', 'v9.9.9')).toBeUndefined();
        expect(await c.mod('github.com/Azure/sdk', 'v9.9.9')).toBeUndefined();
        expect(await c.zip('github.com/Azure/sdk', 'v9.9.9')).toBeUndefined();
        expect(await c.zipBytes('github.com/Azure/sdk', 'v9.9.9', 1 << 20)).toBeUndefined();
        expect(await c.latest('example.com/nothing')).toBeUndefined();
      });

      it('caps zips', async () => {
        const c = new GoProxyClient({ baseUrl: kind === 'http' ? server.url : pathToFileURL(tree).href, maxZipBytes: 10, maxModBytes: 5 });
        const err = await c.zip('github.com/Azure/sdk', 'v1.0.0').then(
          (s) => (s ? collect(s) : undefined),
          (e: unknown) => e,
        );
        expect(isFerryError(err, 'BODY_TOO_LARGE')).toBe(true);
        await expect(c.mod('github.com/Azure/sdk', 'v1.0.0')).rejects.toMatchObject({ code: 'BODY_TOO_LARGE' });
        // Read whole: the smaller of the caller's limit and maxZipBytes applies.
        await expect(c.zipBytes('github.com/Azure/sdk', 'v1.0.0', 1 << 20)).rejects.toMatchObject({ code: 'BODY_TOO_LARGE' });
        await expect(client().zipBytes('github.com/Azure/sdk', 'v1.0.0', 10)).rejects.toMatchObject({ code: 'BODY_TOO_LARGE' });
      });

      it('refuses invalid module paths before any request', async () => {
        await expect(client().list('not a module')).rejects.toMatchObject({ code: 'MODULE_INVALID' });
      });
    });
  }

  it('stops a chunked zip body at the cap, and passes one under it through', async () => {
    const small = new GoProxyClient({ baseUrl: `${server.url}/chunked`, maxZipBytes: 10 });
    const stream = await small.zip('github.com/Azure/sdk', 'v1.0.0');
    await expect(collect(stream!)).rejects.toMatchObject({ code: 'BODY_TOO_LARGE', details: { module: 'github.com/Azure/sdk', version: 'v1.0.0' } });
    const big = new GoProxyClient({ baseUrl: `${server.url}/chunked` });
    const bytes = await collect((await big.zip('github.com/Azure/sdk', 'v1.0.0'))!);
    expect(bytes.equals(await readFile(join(tree, ...proxyPath('github.com/Azure/sdk', 'zip', 'v1.0.0').split('/'))))).toBe(true);
  });

  it('requests case-encoded paths', async () => {
    const c = new GoProxyClient({ baseUrl: server.url });
    await c.info('github.com/Azure/sdk', 'v1.1.0-RC.1');
    expect(server.requests.map((r) => r.path)).toContain('/github.com/!azure/sdk/@v/v1.1.0-!r!c.1.info');
  });

  it('treats 410 as not there', async () => {
    const c = new GoProxyClient({ baseUrl: server.url });
    expect(await c.list('example.com/gone')).toBeUndefined();
    expect(await c.zip('example.com/gone', 'v1.0.0')).toBeUndefined();
  });

  it('retries a 500 and then fails with the module, version and status', async () => {
    const before = server.requests.filter((r) => r.path.startsWith('/example.com/broken/')).length;
    const c = new GoProxyClient({ baseUrl: server.url, retry: FAST_RETRY });
    const err = await c.info('example.com/broken', 'v1.0.0').catch((e: unknown) => e);
    expect(isFerryError(err, 'HTTP_STATUS')).toBe(true);
    expect((err as { details: object }).details).toMatchObject({ module: 'example.com/broken', version: 'v1.0.0', status: 500 });
    expect((err as Error).message).toContain('example.com/broken@v1.0.0');
    const after = server.requests.filter((r) => r.path.startsWith('/example.com/broken/')).length;
    expect(after - before).toBe(3);
  });

  it('sends Basic credentials, from options or from the URL, and never prints them', async () => {
    const base = `${server.url}/private`;
    const c = new GoProxyClient({ baseUrl: base, credentials: { username: 'u', password: 'p@ss' } });
    expect((await c.list('github.com/Azure/sdk'))?.versions).toEqual(['v1.0.0', 'v1.1.0-RC.1']);
    const u = new URL(base);
    u.username = 'u';
    u.password = 'p%40ss';
    const c2 = new GoProxyClient({ baseUrl: u.href });
    expect(c2.safeBaseUrl).not.toContain('p%40ss');
    expect((await c2.mod('github.com/Azure/sdk', 'v1.0.0'))?.toString()).toBe('module github.com/Azure/sdk\n');
    const c3 = new GoProxyClient({ baseUrl: base, credentials: { username: 'u', password: 'wrong' } });
    const err = await c3.list('github.com/Azure/sdk').catch((e: unknown) => e);
    expect(isFerryError(err, 'UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).not.toContain('wrong');
  });

  it('honours an aborted signal', async () => {
    const ac = new AbortController();
    ac.abort();
    const c = new GoProxyClient({ baseUrl: server.url });
    await expect(c.list('github.com/Azure/sdk', { signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    const f = new GoProxyClient({ baseUrl: pathToFileURL(tree).href, signal: ac.signal });
    await expect(f.list('github.com/Azure/sdk')).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('validates its options', () => {
    expect(() => new GoProxyClient({ baseUrl: 'ftp://x' })).toThrow('must be http://, https:// or file://');
    expect(() => new GoProxyClient({ baseUrl: 'nope' })).toThrow('is not a URL');
  });
});
