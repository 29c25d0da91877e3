// RegistryClient against in-process fakes, for faults a real registry will not produce on demand:
// rate limits, resets mid-blob, wrong bytes, persistent 5xx, auth edge cases, redaction.
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError, type FerryError } from '../../errors/index.js';
import { sha256Digest, type Digest } from '../../oci/index.js';
import { RegistryClient, parseLinkNext, parseWwwAuthenticate, type ResponseInfo } from '../../registry/index.js';
import { recordingSleep, rejection, startFake, type FakeServer } from '../net/fake-server.js';

const servers: FakeServer[] = [];
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

function client(host: string, extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}): RegistryClient {
  const c = new RegistryClient({ host, tls: 'plain-http', retry: { retries: 3, baseDelayMs: 1, maxDelayMs: 20, sleep: recordingSleep().sleep }, ...extra });
  clients.push(c);
  return c;
}

/** One GET on a connection of its own, answered before it resolves. */
function ping(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve());
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const BLOB = Buffer.alloc(256 * 1024);
for (let i = 0; i < BLOB.length; i++) BLOB[i] = (i * 7919) % 251;
const BLOB_DIGEST = sha256Digest(BLOB);

describe('parsing', () => {
  it('parses several challenges with quoted commas', () => {
    const c = parseWwwAuthenticate(
      'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push repository:c:pull", Basic realm="x, \\"y\\""',
    );
    expect(c).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg.example', scope: 'repository:a/b:pull,push repository:c:pull' } },
      { scheme: 'basic', params: { realm: 'x, "y"' } },
    ]);
    expect(parseWwwAuthenticate('Basic realm=simple')).toEqual([{ scheme: 'basic', params: { realm: 'simple' } }]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });

  it('finds rel="next" in Link headers', () => {
    expect(parseLinkNext('</v2/a/tags/list?last=b&n=2>; rel="next"')).toBe('/v2/a/tags/list?last=b&n=2');
    expect(parseLinkNext('<https://x/1>; rel="prev", <https://x/3>; rel=next')).toBe('https://x/3');
    expect(parseLinkNext('<https://x/1>; rel="prev"')).toBeUndefined();
  });

  it('validates its options with exact messages', () => {
    expect(() => new RegistryClient({ host: 'https://reg.example' })).toThrow(
      'RegistryClient: host must be host[:port] without a scheme or path, got "https://reg.example"',
    );
    expect(() => new RegistryClient({ host: '' })).toThrow('RegistryClient: host must be a non-empty string');
    expect(() => new RegistryClient({ host: 'r.example', tls: 'nope' as never })).toThrow(
      'RegistryClient: tls must be one of verify, insecure, plain-http, got "nope"',
    );
    expect(() => new RegistryClient({ host: 'r.example', credentials: { username: 'u' } as never })).toThrow(
      'RegistryClient: credentials must be { username: string; password: string } or a function',
    );
  });
});

describe('tags', () => {
  it('follows relative and absolute Link pages', async () => {
    const s = await fake((req, res) => {
      const u = new URL(req.url, 'http://x');
      const last = u.searchParams.get('last');
      res.setHeader('content-type', 'application/json');
      if (last === null) {
        res.setHeader('link', '</v2/team/app/tags/list?last=b&n=2>; rel="next"');
        res.end(JSON.stringify({ name: 'team/app', tags: ['a', 'b'] }));
      } else if (last === 'b') {
        res.setHeader('link', `<http://${s.host}/v2/team/app/tags/list?last=d&n=2>; rel="next"`);
        res.end(JSON.stringify({ name: 'team/app', tags: ['c', 'd'] }));
      } else {
        res.end(JSON.stringify({ name: 'team/app', tags: ['e'] }));
      }
    });
    expect(await client(s.host).tagList('team/app', { pageSize: 2 })).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(s.seen.map((r) => r.url)).toEqual(['/v2/team/app/tags/list?n=2', '/v2/team/app/tags/list?last=b&n=2', '/v2/team/app/tags/list?last=d&n=2']);
  });
});

describe('rate limits and server errors', () => {
  it('retries a 429 with Retry-After and then succeeds, telling onResponse', async () => {
    let n = 0;
    const s = await fake((_req, res) => {
      if (n++ === 0) {
        res.writeHead(429, { 'retry-after': '1', 'ratelimit-remaining': '0' });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow' }] }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'a', tags: ['x'] }));
    });
    const rec = recordingSleep();
    const seen: ResponseInfo[] = [];
    const c = client(s.host, { retry: { sleep: rec.sleep }, onResponse: (i) => seen.push(i) });
    expect(await c.tagList('a')).toEqual(['x']);
    expect(rec.waits).toEqual([1000]);
    expect(seen.map((i) => i.status)).toEqual([429, 200]);
    expect(seen[0]!.headers['ratelimit-remaining']).toBe('0');
  });

  it('fails a persistent 500 with a temporary HTTP_STATUS after the configured retries', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    const rec = recordingSleep();
    const c = client(s.host, { retry: { retries: 2, baseDelayMs: 5, maxDelayMs: 10, sleep: rec.sleep } });
    const err = await rejection(c.manifestGet('team/app', 'v1'));
    expect(isFerryError(err, 'HTTP_STATUS')).toBe(true);
    const fe = err as FerryError;
    expect(fe.temporary).toBe(true);
    expect(fe.details).toMatchObject({ op: 'manifestGet', registry: s.host, repository: 'team/app', reference: 'v1', status: 500 });
    expect(s.seen.length).toBe(3);
    expect(rec.waits.length).toBe(2);
  });
});

describe('blobGet faults', () => {
  function rangeServer(opts: { resetAfter: number; ignoreRange?: boolean; served: number[] }): Promise<FakeServer> {
    let first = true;
    return fake((req, res) => {
      const range = req.headers.range;
      const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
      if (first) {
        first = false;
        res.writeHead(200, { 'content-length': String(BLOB.length), 'docker-content-digest': BLOB_DIGEST });
        const part = BLOB.subarray(0, opts.resetAfter);
        opts.served.push(part.length);
        res.write(part, () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      if (m && !opts.ignoreRange) {
        const start = Number(m[1]);
        const rest = BLOB.subarray(start);
        opts.served.push(rest.length);
        res.writeHead(206, { 'content-length': String(rest.length), 'content-range': `bytes ${start}-${BLOB.length - 1}/${BLOB.length}` });
        res.end(rest);
        return;
      }
      opts.served.push(BLOB.length);
      res.writeHead(200, { 'content-length': String(BLOB.length) });
      res.end(BLOB);
    });
  }

  it('resumes after a reset mid-body with Range instead of restarting', async () => {
    const served: number[] = [];
    const s = await rangeServer({ resetAfter: 100_000, served });
    const got = await collect(await client(s.host).blobGet('team/app', BLOB_DIGEST, { size: BLOB.length }));
    expect(got.equals(BLOB)).toBe(true);
    expect(s.seen.map((r) => r.headers.range)).toEqual([undefined, 'bytes=100000-']);
    expect(served.reduce((a, b) => a + b, 0)).toBe(BLOB.length);
  });

  it('restarts cleanly (skipping what it has) when the server answers a Range with 200', async () => {
    const served: number[] = [];
    const s = await rangeServer({ resetAfter: 70_000, ignoreRange: true, served });
    const got = await collect(await client(s.host).blobGet('team/app', BLOB_DIGEST, { size: BLOB.length }));
    expect(got.equals(BLOB)).toBe(true);
    expect(s.seen.map((r) => r.headers.range)).toEqual([undefined, 'bytes=70000-']);
  });

  it('fails the stream with DIGEST_MISMATCH on wrong bytes', async () => {
    const wrong = Buffer.from(BLOB);
    wrong[1000] = (wrong[1000]! + 1) % 256;
    const s = await fake((_req, res) => {
      res.writeHead(200, { 'content-length': String(wrong.length) });
      res.end(wrong);
    });
    const stream = await client(s.host).blobGet('team/app', BLOB_DIGEST, { size: BLOB.length });
    const err = await rejection(collect(stream));
    expect(isFerryError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect((err as FerryError).details).toMatchObject({ digest: BLOB_DIGEST, repository: 'team/app' });
  });

  it('applies backpressure: an unread stream does not pull the whole blob', async () => {
    // Larger than what the socket buffers on both ends can hold (Linux caps them at a few MiB
    // when nothing reads), so a client that reads only as it is read cannot let it all through.
    const big = Buffer.alloc(64 * 1024 * 1024, 1);
    const CHUNK = 64 * 1024;
    /** Bytes the server's socket has taken: each chunk is written once the last one was. */
    let sent = 0;
    const s = await fake((req, res) => {
      if (req.url === '/ping') {
        res.writeHead(204).end();
        return;
      }
      res.writeHead(200, { 'content-length': String(big.length) });
      const next = (): void => {
        if (sent >= big.length) {
          res.end();
          return;
        }
        const chunk = big.subarray(sent, sent + CHUNK);
        res.write(chunk, () => {
          sent += chunk.length;
          next();
        });
      };
      next();
    });
    const stream = await client(s.host).blobGet('team/app', sha256Digest(big), { size: big.length });
    // Left unread until the transfer is still: a round trip to the server on a connection of its
    // own passes with the server no further and the stream holding no more. A client that kept
    // reading would have moved one of them (its socket is as ready as the ping's).
    for (;;) {
      const before = { sent, held: stream.readableLength };
      await ping(`${s.url}/ping`);
      if (sent === before.sent && stream.readableLength === before.held) break;
    }
    expect(sent).toBeLessThan(big.length);
    expect(stream.readableLength).toBeLessThan(big.length);
    // Read now, it all arrives (and verifies).
    let got = 0;
    for await (const c of stream) got += (c as Buffer).length;
    expect(got).toBe(big.length);
    expect(sent).toBe(big.length);
  });

  it('errors the stream with ABORTED when the signal aborts mid-body', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(200, { 'content-length': String(BLOB.length) });
      res.write(BLOB.subarray(0, 1000));
      // the rest never comes
    });
    const ac = new AbortController();
    const stream = await client(s.host).blobGet('team/app', BLOB_DIGEST, { size: BLOB.length, signal: ac.signal });
    stream.once('data', () => ac.abort());
    const err = await rejection(collect(stream));
    expect(isFerryError(err, 'ABORTED')).toBe(true);
  });

  it('drops Authorization when redirected to another host, and redacts signed URLs in errors', async () => {
    const storage = await fake((_req, res) => {
      res.writeHead(403);
      res.end('AccessDenied');
    });
    const reg = await fake((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200);
        res.end('{}');
        return;
      }
      if (!req.headers.authorization) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' });
        res.end();
        return;
      }
      res.writeHead(307, { location: `${storage.url}/bucket/blob?X-Amz-Signature=SIGSECRET123&X-Amz-Credential=AKIDSECRET` });
      res.end();
    });
    const c = client(reg.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } });
    const err = await rejection(c.blobGet('team/app', BLOB_DIGEST));
    expect(isFerryError(err, 'DENIED')).toBe(true);
    const text = `${(err as Error).message} ${JSON.stringify(err)}`;
    expect(text).not.toContain('SIGSECRET123');
    expect(text).not.toContain('AKIDSECRET');
    expect(text).not.toContain('pw-SECRET-42');
    expect(text).toContain('X-Amz-Signature=REDACTED');
    expect(storage.seen[0]!.headers.authorization).toBeUndefined();
    expect(reg.seen.at(-1)!.headers.authorization).toMatch(/^Basic /);
  });
});

describe('auth', () => {
  function tokenRegistry(opts: { acceptTokens: (t: string) => boolean; expiresIn?: number }): Promise<FakeServer & { tokenRequests: string[] }> {
    let issued = 0;
    const tokenRequests: string[] = [];
    return fake((req, res) => {
      const u = new URL(req.url, 'http://x');
      if (u.pathname === '/token') {
        tokenRequests.push(req.url);
        const pass = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':')[1];
        if (pass !== 'pw-SECRET-42') {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: `tok-SECRET-${++issued}`, ...(opts.expiresIn ? { expires_in: opts.expiresIn } : {}) }));
        return;
      }
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!opts.acceptTokens(token)) {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="fake",scope="repository:team/app:pull"`,
          'content-type': 'application/json',
        });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: `token ${token} rejected` }] }));
        return;
      }
      const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}');
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'docker-content-digest': sha256Digest(body) });
      res.end(body);
    }).then((s) => Object.assign(s, { tokenRequests }));
  }

  it('caches a token per scope until expires_in, then fetches a new one', async () => {
    const s = await tokenRegistry({ acceptTokens: (t) => t.startsWith('tok-SECRET-'), expiresIn: 120 });
    let now = 1_000_000;
    const c = client(s.host, { credentials: async () => ({ username: 'bob', password: 'pw-SECRET-42' }), now: () => now });
    await c.manifestGet('team/app', 'v1');
    await c.manifestGet('team/app', 'v2');
    expect(s.tokenRequests.length).toBe(1);
    expect(new URL(s.tokenRequests[0]!, 'http://x').searchParams.getAll('scope')).toEqual(['repository:team/app:pull']);
    expect(new URL(s.tokenRequests[0]!, 'http://x').searchParams.get('service')).toBe('fake');
    now += 121_000;
    await c.manifestGet('team/app', 'v1');
    expect(s.tokenRequests.length).toBe(2);
  });

  it('refreshes a rejected cached token once', async () => {
    const used = new Set<string>();
    // Each token works once, as if the registry revoked it after use.
    const s = await tokenRegistry({ acceptTokens: (t) => t.startsWith('tok-SECRET-') && !used.has(t) && used.add(t) !== undefined });
    const c = client(s.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } });
    await c.manifestGet('team/app', 'v1');
    await c.manifestGet('team/app', 'v1');
    expect(s.tokenRequests.length).toBe(2);
  });

  it('fails UNAUTHORIZED when the refreshed token is rejected too, without leaking secrets', async () => {
    const used = new Set<string>();
    const s = await tokenRegistry({ acceptTokens: (t) => t === 'tok-SECRET-1' && !used.has(t) && used.add(t) !== undefined });
    const c = client(s.host, { credentials: { username: 'bob', password: 'pw-SECRET-42' } });
    await c.manifestGet('team/app', 'v1');
    const err = await rejection(c.manifestGet('team/app', 'v1'));
    expect(isFerryError(err, 'UNAUTHORIZED')).toBe(true);
    expect(s.tokenRequests.length).toBe(2);
    const text = `${(err as Error).message} ${JSON.stringify(err)}`;
    expect(text).not.toContain('tok-SECRET');
    expect(text).not.toContain('pw-SECRET-42');
    expect(text).toContain('REDACTED');
  });

  it('reports a token server rejecting the password as UNAUTHORIZED', async () => {
    const s = await tokenRegistry({ acceptTokens: (t) => t.startsWith('tok-') });
    const c = client(s.host, { credentials: { username: 'bob', password: 'wrong-pass' } });
    const err = await rejection(c.manifestGet('team/app', 'v1'));
    expect(isFerryError(err, 'UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).not.toContain('wrong-pass');
    expect(s.tokenRequests.length).toBe(1);
  });

  it('sends Basic credentials pre-emptively once the registry asked for them', async () => {
    const s = await fake((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('bob:pw').toString('base64')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"tags":["a"]}');
    });
    const c = client(s.host, { credentials: { username: 'bob', password: 'pw' } });
    await c.tagList('x');
    await c.tagList('y');
    expect(s.seen.map((r) => r.headers.authorization === undefined)).toEqual([true, false, false]);
  });
});

describe('manifest checks', () => {
  it('rejects bytes that do not match Docker-Content-Digest or the digest reference', async () => {
    const body = Buffer.from('{"schemaVersion":2,"manifests":[]}');
    const other: Digest = sha256Digest('other');
    const s = await fake((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'docker-content-digest': other });
      res.end(body);
    });
    const c = client(s.host);
    expect(isFerryError(await rejection(c.manifestGet('a', 'v1')), 'DIGEST_MISMATCH')).toBe(true);
    expect(isFerryError(await rejection(c.manifestGet('a', other)), 'DIGEST_MISMATCH')).toBe(true);
  });

  it('falls back to GET when HEAD has no Docker-Content-Digest', async () => {
    const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}');
    const s = await fake((req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': String(body.length) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    const head = await client(s.host).manifestHead('a', 'v1');
    expect(head).toEqual({ digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, mediaType: 'application/vnd.oci.image.index.v1+json', size: body.length });
    expect(s.seen.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });
});
