// net/: retries, redirects, bounded reads, redaction and TLS against in-process node:http(s) servers.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError, type FerryError } from '../../errors/index.js';
import {
  createDispatcher,
  discardBody,
  parseRetryAfter,
  readBody,
  redactUrl,
  request,
  requestBytes,
  statusError,
} from '../../net/index.js';
import { recordingSleep, rejection, startFake, type FakeServer } from './fake-server.js';

const servers: FakeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function fake(handler: Parameters<typeof startFake>[0]): Promise<FakeServer> {
  const s = await startFake(handler);
  servers.push(s);
  return s;
}

describe('request retries', () => {
  it('retries a 429 after its Retry-After, then returns the success', async () => {
    let n = 0;
    const s = await fake((_req, res) => {
      if (n++ === 0) {
        res.writeHead(429, { 'retry-after': '2' });
        res.end('slow down');
        return;
      }
      res.writeHead(200);
      res.end('ok');
    });
    const { sleep, waits } = recordingSleep();
    const res = await request({ url: `${s.url}/x`, retry: { sleep } });
    expect(res.statusCode).toBe(200);
    expect((await readBody(res.body, 100)).toString()).toBe('ok');
    expect(waits).toEqual([2000]);
    expect(s.seen.length).toBe(2);
  });

  it('honours a Retry-After HTTP date', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5);
    expect(parseRetryAfter('7', now)).toBe(7);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('gives up on a persistent 500 with a temporary HTTP_STATUS after the configured retries', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'storage on fire' }] }));
    });
    const { sleep, waits } = recordingSleep();
    const err = await rejection(request({ url: `${s.url}/v2/`, op: 'ping', retry: { retries: 3, baseDelayMs: 10, maxDelayMs: 100, sleep } }));
    expect(isFerryError(err, 'HTTP_STATUS')).toBe(true);
    const fe = err as FerryError;
    expect(fe.temporary).toBe(true);
    expect(fe.details.status).toBe(500);
    expect(fe.details.registryCodes).toEqual(['UNKNOWN']);
    expect(fe.message).toContain('storage on fire');
    expect(s.seen.length).toBe(4);
    expect(waits.length).toBe(3);
    for (const w of waits) expect(w).toBeLessThanOrEqual(100);
  });

  it('throws RATE_LIMITED when 429 persists, and at once when Retry-After exceeds maxDelayMs', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(429, { 'retry-after': '3600' });
      res.end();
    });
    const { sleep, waits } = recordingSleep();
    const err = await rejection(request({ url: `${s.url}/x`, retry: { retries: 3, sleep } }));
    expect(isFerryError(err, 'RATE_LIMITED')).toBe(true);
    expect((err as FerryError).details.retryAfter).toBe(3600);
    expect((err as FerryError).temporary).toBe(true);
    expect(waits).toEqual([]);
    expect(s.seen.length).toBe(1);
  });

  it('returns non-retryable statuses without retrying', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(404);
      res.end('nope');
    });
    const res = await request({ url: `${s.url}/x`, retry: { sleep: recordingSleep().sleep } });
    expect(res.statusCode).toBe(404);
    await discardBody(res.body);
    expect(s.seen.length).toBe(1);
  });

  it('retries refused connections and reports a temporary NETWORK error', async () => {
    const s = await fake((_req, res) => void res.end());
    const url = `${s.url}/x`;
    await s.close();
    servers.pop();
    const { sleep, waits } = recordingSleep();
    const err = await rejection(request({ url, retry: { retries: 2, sleep } }));
    expect(isFerryError(err, 'NETWORK')).toBe(true);
    expect((err as FerryError).temporary).toBe(true);
    expect(waits.length).toBe(2);
  });

  it('reopens a streamed body for each attempt', async () => {
    let n = 0;
    const s = await fake((req, res) => {
      res.writeHead(n++ === 0 ? 503 : 201);
      res.end(String(req.body.length));
    });
    let opened = 0;
    const payload = Buffer.alloc(50_000, 7);
    const res = await request({
      url: `${s.url}/upload`,
      method: 'PUT',
      headers: { 'content-length': String(payload.length) },
      body: () => {
        opened++;
        return Readable.from([payload]);
      },
      retry: { sleep: recordingSleep().sleep },
    });
    expect(res.statusCode).toBe(201);
    await discardBody(res.body);
    expect(opened).toBe(2);
    expect(s.seen.map((r) => r.body.length)).toEqual([50_000, 50_000]);
  });

  it('stops with ABORTED when the signal aborts', async () => {
    const s = await fake(() => {
      // never answers
    });
    const ac = new AbortController();
    const p = request({ url: `${s.url}/hang`, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    const err = await rejection(p);
    expect(isFerryError(err, 'ABORTED')).toBe(true);
  });
});

describe('requestBytes (bodies read whole)', () => {
  it('retries like request and returns the whole body of the answer that counts', async () => {
    let n = 0;
    const s = await fake((_req, res) => {
      if (n++ === 0) {
        res.writeHead(503);
        res.end('busy');
        return;
      }
      res.writeHead(200, { 'x-what': 'it' });
      res.write('hello, ');
      res.end('world');
    });
    const { sleep, waits } = recordingSleep();
    const res = await requestBytes({ url: `${s.url}/x`, maxBytes: 100, retry: { sleep } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-what']).toBe('it');
    expect(res.body.toString()).toBe('hello, world');
    expect(waits.length).toBe(1);
  });

  it('fails with BODY_TOO_LARGE past maxBytes, without retrying', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(5000));
    });
    const err = await rejection(requestBytes({ url: `${s.url}/big`, maxBytes: 4096, op: 'goproxyInfo', details: { module: 'm' }, retry: { sleep: recordingSleep().sleep } }));
    expect(isFerryError(err, 'BODY_TOO_LARGE')).toBe(true);
    expect((err as FerryError).message).toContain('goproxyInfo');
    expect(s.seen.length).toBe(1);
  });

  it('fails at once when Content-Length is past maxBytes, before any of the body arrives', async () => {
    const s = await fake((_req, res) => {
      // Headers only: the body never comes, so only the declared length can end this request.
      res.writeHead(200, { 'content-length': String(10 << 20) });
      res.flushHeaders();
    });
    const err = await rejection(requestBytes({ url: `${s.url}/huge`, maxBytes: 4096, op: 'goproxyZip', retry: { sleep: recordingSleep().sleep } }));
    expect(isFerryError(err, 'BODY_TOO_LARGE')).toBe(true);
    expect((err as FerryError).message).toContain(`Content-Length ${10 << 20} exceeds 4096 bytes`);
    expect(s.seen.length).toBe(1);
  });

  it('retries a connection reset mid-body, and names a persistent 500 with its body', async () => {
    let n = 0;
    const s = await fake((_req, res, raw) => {
      if (n++ === 0) {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        setTimeout(() => raw.socket.destroy(), 5);
        return;
      }
      res.writeHead(200);
      res.end('complete');
    });
    const res = await requestBytes({ url: `${s.url}/x`, maxBytes: 1000, retry: { sleep: recordingSleep().sleep } });
    expect(res.body.toString()).toBe('complete');
    const broken = await fake((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'disk on fire' }] }));
    });
    const err = await rejection(requestBytes({ url: `${broken.url}/x`, maxBytes: 1000, retry: { retries: 1, sleep: recordingSleep().sleep } }));
    expect(isFerryError(err, 'HTTP_STATUS')).toBe(true);
    expect((err as FerryError).message).toContain('disk on fire');
    expect((err as FerryError).details.registryCodes).toEqual(['UNKNOWN']);
  });

  it('follows redirects, dropping Authorization off-host, and stops with ABORTED', async () => {
    const other = await fake((_req, res) => {
      res.writeHead(200);
      res.end('moved here');
    });
    const s = await fake((req, res) => {
      if (req.url === '/hang') return;
      res.writeHead(302, { location: `${other.url}/there` });
      res.end();
    });
    const res = await requestBytes({ url: `${s.url}/x`, maxBytes: 100, headers: { authorization: 'Basic c2VjcmV0' } });
    expect(res.body.toString()).toBe('moved here');
    expect(res.url).toBe(`${other.url}/there`);
    expect(s.seen[0]!.headers.authorization).toBe('Basic c2VjcmV0');
    expect(other.seen[0]!.headers.authorization).toBeUndefined();
    const ac = new AbortController();
    const p = requestBytes({ url: `${s.url}/hang`, maxBytes: 100, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect(isFerryError(await rejection(p), 'ABORTED')).toBe(true);
  });
});

describe('redirects', () => {
  it('follows redirects and drops Authorization on a cross-host hop only', async () => {
    const storage = await fake((_req, res) => {
      res.writeHead(200);
      res.end('blob');
    });
    const reg = await fake((req, res) => {
      if (req.url === '/a') {
        res.writeHead(302, { location: '/b' });
        res.end();
      } else {
        res.writeHead(307, { location: `${storage.url}/data?X-Amz-Signature=abc` });
        res.end();
      }
    });
    const res = await request({ url: `${reg.url}/a`, headers: { authorization: 'Bearer secret' } });
    expect(res.statusCode).toBe(200);
    expect(res.url).toBe(`${storage.url}/data?X-Amz-Signature=abc`);
    await discardBody(res.body);
    expect(reg.seen.map((r) => r.headers.authorization)).toEqual(['Bearer secret', 'Bearer secret']);
    expect(storage.seen[0]!.headers.authorization).toBeUndefined();
  });

  it('does not follow redirects for PUT unless asked', async () => {
    const s = await fake((_req, res) => {
      res.writeHead(307, { location: '/elsewhere' });
      res.end();
    });
    const res = await request({ url: `${s.url}/x`, method: 'PUT', body: 'x' });
    expect(res.statusCode).toBe(307);
    await discardBody(res.body);
  });
});

describe('bodies and errors', () => {
  it('readBody caps the size with BODY_TOO_LARGE', async () => {
    const err = await rejection(readBody(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), 1000, { op: 'manifestGet' }));
    expect(isFerryError(err, 'BODY_TOO_LARGE')).toBe(true);
    expect((await readBody(Readable.from([Buffer.from('abc')]), 3)).toString()).toBe('abc');
  });

  it('statusError maps registry codes and statuses', () => {
    const body = Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    const e = statusError('manifestGet', 404, { registry: 'r', repository: 'a/b', reference: 'v1' }, body);
    expect(e.code).toBe('MANIFEST_UNKNOWN');
    expect(e.details.registryCodes).toEqual(['MANIFEST_UNKNOWN']);
    expect(e.temporary).toBe(false);
    expect(e.message).toContain('r/a/b:v1');
    expect(statusError('x', 401).code).toBe('UNAUTHORIZED');
    expect(statusError('x', 403).code).toBe('DENIED');
    expect(statusError('x', 404).code).toBe('NOT_FOUND');
    expect(statusError('x', 418).code).toBe('HTTP_STATUS');
    expect(statusError('x', 503).temporary).toBe(true);
    expect(statusError('x', 400, {}, Buffer.from('<html>not json')).details.registryCodes).toBeUndefined();
  });

  it('redactUrl strips userinfo and secret query values, keeping the rest byte for byte', () => {
    expect(redactUrl('https://user:pa55@reg.example/v2/?x=1')).toBe('https://reg.example/v2/?x=1');
    expect(redactUrl('https://s3.example/b?X-Amz-Credential=AK%2Fx&X-Amz-Signature=deadbeef&keep=a%3Db')).toBe(
      'https://s3.example/b?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&keep=a%3Db',
    );
    expect(redactUrl(new URL('http://h/token?service=s&access_token=abc&sig=1&Signature=2&token=3'))).toBe(
      'http://h/token?service=s&access_token=REDACTED&sig=REDACTED&Signature=REDACTED&token=REDACTED',
    );
    expect(redactUrl('not a url with https://u:p@host/')).not.toContain('u:p');
  });
});

describe('createDispatcher', () => {
  it('validates its options with exact messages', () => {
    expect(() => createDispatcher({ tls: 'bogus' as never })).toThrow('createDispatcher: tls must be one of verify, insecure, plain-http, got "bogus"');
    expect(() => createDispatcher({ tls: 'insecure', ca: 'x' })).toThrow('createDispatcher: caFile/ca cannot be combined with tls "insecure"');
    expect(() => createDispatcher({ connections: 0 })).toThrow('createDispatcher: connections must be a positive integer, got 0');
    const err = (() => {
      try {
        createDispatcher({ caFile: '/nonexistent/ca.pem' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isFerryError(err, 'CONFIG_INVALID')).toBe(true);
  });

  it('trusts only the given CA file, and skips verification when insecure', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-net-tls-'));
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      await promisify(execFile)('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
        '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ]);
      const server = createHttpsServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) => {
        res.writeHead(200);
        res.end('secure');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      try {
        const trusted = createDispatcher({ caFile: cert });
        const ok = await request({ url, dispatcher: trusted });
        expect((await readBody(ok.body, 100)).toString()).toBe('secure');
        await trusted.close();

        const strict = createDispatcher();
        const err = await rejection(request({ url, dispatcher: strict, retry: { retries: 0 } }));
        expect(isFerryError(err, 'TLS')).toBe(true);
        expect((err as FerryError).temporary).toBe(false);
        await strict.close();

        const insecure = createDispatcher({ tls: 'insecure' });
        const ok2 = await request({ url, dispatcher: insecure });
        expect(ok2.statusCode).toBe(200);
        await discardBody(ok2.body);
        await insecure.close();
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
