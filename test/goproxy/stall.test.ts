// A GOPROXY zip whose body stalls with the connection left open (issue 13 item 9): the
// dispatcher's idle timeout gives it up and the zip resumes with Range. An in-process fake: a
// real proxy does not stall on demand.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { GoProxyClient } from '../../goproxy/index.js';
import { createDispatcher } from '../../net/index.js';
import { rejection, startFake, type FakeServer } from '../net/fake-server.js';

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const ZIP = Buffer.alloc(2 * 1024 * 1024);
for (let i = 0; i < ZIP.length; i++) ZIP[i] = (i * 131) % 251;

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

/** A proxy that sends the first `cut` bytes of the zip and then nothing, keeping the connection open. */
async function stallingProxy(cut: number, resumed: (start: number, res: ServerResponse) => void): Promise<FakeServer> {
  let first = true;
  const s = await startFake((req, res) => {
    if (!req.url.endsWith('.zip')) {
      res.writeHead(404);
      res.end();
      return;
    }
    if (first) {
      first = false;
      res.writeHead(200, { 'content-length': String(ZIP.length) });
      res.write(ZIP.subarray(0, cut));
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    resumed(m ? Number(m[1]) : 0, res);
  });
  cleanup.push(() => s.close());
  return s;
}

function proxyClient(s: FakeServer): GoProxyClient {
  const dispatcher = createDispatcher({ tls: 'plain-http', bodyTimeoutMs: 200 });
  cleanup.push(() => dispatcher.close());
  return new GoProxyClient({ baseUrl: s.url, dispatcher, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 5 } });
}

describe('GoProxyClient zip stalls', () => {
  it('resumes a stalled zip with Range after the idle timeout, with the exact bytes', async () => {
    const s = await stallingProxy(700_000, (start, res) => {
      res.writeHead(206, { 'content-length': String(ZIP.length - start), 'content-range': `bytes ${start}-${ZIP.length - 1}/${ZIP.length}` });
      res.end(ZIP.subarray(start));
    });
    const body = await proxyClient(s).zip('example.com/big', 'v1.0.0');
    const got = await collect(body!);
    expect(got.equals(ZIP)).toBe(true);
    expect(s.seen.map((r) => r.url)).toEqual(['/example.com/big/@v/v1.0.0.zip', '/example.com/big/@v/v1.0.0.zip']);
    expect(s.seen[0]!.headers.range).toBeUndefined();
    const at = Number(/^bytes=(\d+)-$/.exec(s.seen[1]!.headers.range ?? '')?.[1]);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThanOrEqual(700_000);
  });

  it('refuses a resumed answer that would carry more than the rest of the first Content-Length', async () => {
    const s = await stallingProxy(100_000, (start, res) => {
      const more = Buffer.concat([ZIP.subarray(start), Buffer.alloc(4096)]);
      res.writeHead(206, { 'content-length': String(more.length), 'content-range': `bytes ${start}-${start + more.length - 1}/*` });
      res.end(more);
    });
    const body = await proxyClient(s).zip('example.com/big', 'v1.0.0');
    const err = await rejection(collect(body!));
    expect(isFerryError(err, 'SIZE_MISMATCH')).toBe(true);
    expect((err as Error).message).toContain('example.com/big@v1.0.0');
  });
});
