// RegistryClient against hostile or broken registries (issue 13): Link pages to other hosts,
// endless tag pages, token realms over a weaker transport, bodies that stall with the connection
// open, schema 1 manifests, aborted uploads. In-process fakes: a real registry does none of this
// on demand.
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { sha256Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { recordingSleep, rejection } from '../net/fake-server.js';

const servers: Array<{ close(): Promise<void> }> = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

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
