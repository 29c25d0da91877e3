// RegistryClient against hostile or broken registries (issue 13): Link pages to other hosts,
// endless tag pages, token realms over a weaker transport, bodies that stall with the connection
// open, schema 1 manifests, aborted uploads. In-process fakes: a real registry does none of this
// on demand.
import { execFile } from 'node:child_process';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { isFerryError, type FerryError } from '../../errors/index.js';
import { sha256Digest } from '../../oci/index.js';
import { DEFAULT_TAG_LIST_LIMITS, RegistryClient } from '../../registry/index.js';
import { recordingSleep, rejection, startFake, type FakeServer } from '../net/fake-server.js';

const servers: Array<{ close(): Promise<void> }> = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
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

const BASIC = `Basic ${Buffer.from('bob:pw-SECRET-42').toString('base64')}`;

/** Answers 401 Basic until the right credentials come. */
function wantsBasic(req: { headers: IncomingMessage['headers'] }, res: ServerResponse): boolean {
  if (req.headers.authorization === BASIC) return false;
  res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' });
  res.end();
  return true;
}

function client(host: string, extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}): RegistryClient {
  const c = new RegistryClient({ host, tls: 'plain-http', retry: { retries: 3, baseDelayMs: 1, maxDelayMs: 20, sleep: recordingSleep().sleep }, ...extra });
  clients.push(c);
  return c;
}

/** Turns of the event loop: lets destroy() and 'close' propagate without a clock. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('uploads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-hostile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('closes the file stream of an aborted upload (verified() uses pipeline)', async () => {
    const file = join(dir, 'blob');
    await writeFile(file, Buffer.alloc(8 * 1024 * 1024, 7));
    const ac = new AbortController();
    // A registry that starts the upload and then never reads the PUT body.
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'HEAD') {
        res.writeHead(404);
        res.end();
        return;
      }
      if (req.method === 'POST') {
        req.resume();
        res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u1' });
        res.end();
        return;
      }
      req.pause();
      req.once('readable', () => ac.abort(new Error('operator stopped')));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) });
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    let opened: ReadStream | undefined;
    const err = await rejection(
      client(host).blobPut('team/app', sha256Digest('whatever'), 8 * 1024 * 1024, () => (opened = createReadStream(file)), { signal: ac.signal }),
    );
    expect(isFerryError(err, 'ABORTED')).toBe(true);
    expect(opened).toBeDefined();
    await turns(20);
    // destroy() is synchronous state; closing the descriptor then happens on libuv's thread pool.
    expect(opened!.destroyed).toBe(true);
    if (!opened!.closed) await new Promise<void>((r) => opened!.once('close', () => r()));
    expect(opened!.closed).toBe(true);
  });
});

describe('tag list Link pages (item 5)', () => {
  it('refuses a next page on another host and sends it nothing, credentials least of all', async () => {
    const elsewhere = await fake((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"tags":["stolen"]}');
    });
    const reg = await fake((req, res) => {
      if (wantsBasic(req, res)) return;
      res.writeHead(200, { 'content-type': 'application/json', link: `<http://${elsewhere.host}/v2/team/app/tags/list?last=b>; rel="next"` });
      res.end('{"tags":["a","b"]}');
    });
    const c = client(reg.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } });
    const err = await rejection(c.tagList('team/app'));
    expect(isFerryError(err, 'LINK_OFF_HOST')).toBe(true);
    expect((err as Error).message).toContain(`http://${elsewhere.host}/v2/team/app/tags/list`);
    expect((err as Error).message).not.toContain('pw-SECRET-42');
    expect((err as FerryError).details).toMatchObject({ registry: reg.host, repository: 'team/app', op: 'tagList', temporary: false });
    expect(elsewhere.seen).toEqual([]);
    // The registry itself got the credentials; nobody else did.
    expect(reg.seen.at(-1)!.headers.authorization).toBe(BASIC);
  });

  it('treats another scheme or port on the same address as another host', async () => {
    let link = '';
    const reg = await fake((req, res) => {
      if (wantsBasic(req, res)) return;
      res.writeHead(200, { 'content-type': 'application/json', link });
      res.end('{"tags":["a"]}');
    });
    const port = Number(reg.host.split(':')[1]);
    for (const other of [`https://${reg.host}/v2/team/app/tags/list?last=a`, `http://127.0.0.1:${port === 65535 ? 1 : port + 1}/v2/team/app/tags/list?last=a`, `//localhost:${port}/v2/x`]) {
      link = `<${other}>; rel="next"`;
      const before = reg.seen.length;
      const err = await rejection(client(reg.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } }).tagList('team/app'));
      expect(isFerryError(err, 'LINK_OFF_HOST')).toBe(true);
      // Only the first page (and its 401) reached the registry: the next page went nowhere.
      expect(reg.seen.slice(before).every((r) => r.url === '/v2/team/app/tags/list')).toBe(true);
    }
  });

  it('still follows relative and same-origin absolute pages', async () => {
    const reg = await fake((req, res) => {
      if (wantsBasic(req, res)) return;
      const last = new URL(req.url, 'http://x').searchParams.get('last');
      res.setHeader('content-type', 'application/json');
      if (last === null) res.setHeader('link', '</v2/team/app/tags/list?last=a>; rel="next"');
      else if (last === 'a') res.setHeader('link', `<http://${reg.host}/v2/team/app/tags/list?last=b>; rel="next"`);
      res.end(JSON.stringify({ tags: [last === null ? 'a' : last === 'a' ? 'b' : 'c'] }));
    });
    expect(await client(reg.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } }).tagList('team/app')).toEqual(['a', 'b', 'c']);
  });
});

describe('endless tag lists (item 8)', () => {
  /** A registry whose every page links to a new one, `tagsPerPage` tags each (padded to `pad` bytes). */
  function endless(tagsPerPage: number, pad = 0): Promise<FakeServer> {
    return fake((req, res) => {
      const n = Number(new URL(req.url, 'http://x').searchParams.get('page') ?? '0');
      const tags = Array.from({ length: tagsPerPage }, (_, i) => `t${n}-${i}`);
      res.writeHead(200, { 'content-type': 'application/json', link: `</v2/team/app/tags/list?page=${n + 1}>; rel="next"` });
      res.end(JSON.stringify({ tags, padding: 'x'.repeat(pad) }));
    });
  }

  it('stops after maxPages distinct pages with TAG_LIST_LIMIT naming the key to raise', async () => {
    const s = await endless(2);
    const err = await rejection(client(s.host, { tagListLimits: { maxPages: 25 } }).tagList('team/app'));
    expect(isFerryError(err, 'TAG_LIST_LIMIT')).toBe(true);
    expect((err as Error).message).toContain('25 pages (maxTagPages)');
    expect((err as Error).message).toContain(`registries entry for ${s.host}`);
    expect(s.seen.length).toBe(25);
  });

  it('stops past maxTags tags and past maxBytes bytes', async () => {
    const many = await endless(100);
    const e1 = await rejection(client(many.host, { tagListLimits: { maxTags: 250 } }).tagList('team/app'));
    expect(isFerryError(e1, 'TAG_LIST_LIMIT')).toBe(true);
    expect((e1 as Error).message).toContain('250 tags (maxTags)');
    expect(many.seen.length).toBe(3);

    const fat = await endless(1, 40_000);
    const e2 = await rejection(client(fat.host, { tagListLimits: { maxBytes: 100_000 } }).tagList('team/app'));
    expect(isFerryError(e2, 'TAG_LIST_LIMIT')).toBe(true);
    expect((e2 as Error).message).toContain('100000 bytes (maxTagListBytes)');
    expect(fat.seen.length).toBe(3);
  });

  it('has limits by default', async () => {
    expect(DEFAULT_TAG_LIST_LIMITS).toEqual({ maxPages: 10_000, maxTags: 100_000, maxBytes: 64 * 1024 * 1024 });
    // Ten pages of ten thousand tags pass the default maxTags without a word of configuration.
    const s = await endless(10_000);
    const err = await rejection(client(s.host).tagList('team/app'));
    expect(isFerryError(err, 'TAG_LIST_LIMIT')).toBe(true);
    expect(s.seen.length).toBe(11);
  });

  it('streams pages: the next page is asked for only when the consumer wants it', async () => {
    const s = await endless(3);
    const pages = client(s.host).tagPages('team/app');
    const first = await pages.next();
    expect(first.value).toEqual(['t0-0', 't0-1', 't0-2']);
    expect(s.seen.length).toBe(1);
    await pages.next();
    expect(s.seen.length).toBe(2);
    await pages.return(undefined);
  });

  it('validates the limits with exact messages', () => {
    expect(() => new RegistryClient({ host: 'r.example', tagListLimits: { maxPages: 0 } })).toThrow(
      'RegistryClient: tagListLimits.maxPages must be a positive integer, got 0',
    );
    expect(() => new RegistryClient({ host: 'r.example', idleTimeoutMs: -1 })).toThrow('RegistryClient: idleTimeoutMs must be a positive integer, got -1');
  });
});

describe('a body that stalls with the connection open (item 9)', () => {
  const BLOB = Buffer.alloc(300 * 1024);
  for (let i = 0; i < BLOB.length; i++) BLOB[i] = (i * 31) % 253;
  const DIGEST = sha256Digest(BLOB);

  it('gives up the silent connection after idleTimeoutMs and resumes with Range to the right bytes', async () => {
    let first = true;
    const s = await fake((req, res) => {
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (first) {
        first = false;
        res.writeHead(200, { 'content-length': String(BLOB.length) });
        // Part of the body, then silence; the connection stays open.
        res.write(BLOB.subarray(0, 120_000));
        return;
      }
      const start = m ? Number(m[1]) : 0;
      res.writeHead(m ? 206 : 200, {
        'content-length': String(BLOB.length - start),
        ...(m ? { 'content-range': `bytes ${start}-${BLOB.length - 1}/${BLOB.length}` } : {}),
      });
      res.end(BLOB.subarray(start));
    });
    const c = client(s.host, { idleTimeoutMs: 200 });
    const got = await collect(await c.blobGet('team/app', DIGEST, { size: BLOB.length }));
    expect(got.equals(BLOB)).toBe(true);
    expect(s.seen.length).toBe(2);
    expect(s.seen[0]!.headers.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(s.seen[1]!.headers.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(120_000);
  });
});

describe('token realms (item 6)', () => {
  let dir: string;
  let key: Buffer;
  let cert: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-hostile-tls-'));
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    key = await readFile(join(dir, 'key.pem'));
    cert = join(dir, 'cert.pem');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** An https registry (and, on /token, its own https token server) whose Bearer realm is `realm()`. */
  async function httpsRegistry(realm: (host: string) => string): Promise<{ host: string; tokenRequests: IncomingMessage['headers'][] }> {
    const tokenRequests: IncomingMessage['headers'][] = [];
    const server = createHttpsServer({ key, cert: await readFile(cert) }, (req, res) => {
      if (req.url?.startsWith('/token')) {
        tokenRequests.push(req.headers);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"token":"tok-1"}');
        return;
      }
      if (req.headers.authorization !== 'Bearer tok-1') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm(req.headers.host ?? '')}",service="fake"` });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"tags":["v1"]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) });
    return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, tokenRequests };
  }

  it('refuses an http realm for an https registry, sending it nothing', async () => {
    const realm = await fake((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"token":"tok-1"}');
    });
    const reg = await httpsRegistry(() => `http://${realm.host}/token`);
    const c = client(reg.host, { tls: 'verify', caFile: cert, credentials: { username: 'bob', password: 'pw-SECRET-42' } });
    const err = await rejection(c.tagList('team/app'));
    expect(isFerryError(err, 'REALM_INSECURE')).toBe(true);
    expect((err as Error).message).toContain(`http://${realm.host}/token`);
    expect((err as Error).message).not.toContain('pw-SECRET-42');
    expect(realm.seen).toEqual([]);
  });

  it('sends the credentials to an https realm, even on another host than the registry', async () => {
    const reg = await httpsRegistry((host) => `https://${host}/token`);
    // The second registry's realm is on the first one's server: another origin, still https.
    const other = await httpsRegistry(() => `https://127.0.0.1:${reg.host.split(':')[1]}/token`);
    for (const r of [reg, other]) {
      const c = client(r.host, { tls: 'verify', caFile: cert, credentials: { username: 'bob', password: 'pw-SECRET-42' } });
      expect(await c.tagList('team/app')).toEqual(['v1']);
    }
    expect(reg.tokenRequests.map((h) => h.authorization)).toEqual([BASIC, BASIC]);
  });

  it('keeps http realms for plain-http registries (no weaker than the registry itself)', async () => {
    const realm = await fake((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"token":"tok-1"}');
    });
    const reg = await fake((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-1') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token",service="fake"` });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"tags":["v1"]}');
    });
    expect(await client(reg.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } }).tagList('team/app')).toEqual(['v1']);
    expect(realm.seen.map((r) => r.headers.authorization)).toEqual([BASIC]);
  });
});
