// `ferry serve` never serves a path element that starts with a dot, in any route: a module tree
// written by `ferry import` holds the import ledger (`.ferry-ledger.db`) and, while an import
// runs or after one was killed, `.ferry-staging-*` files it has not finished checking. The tree
// and the store here are a real import of a signed bundle; every request goes out through
// node:http with its path sent verbatim (fetch would normalise `..` and dot segments).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLedgerPath, importBundles } from '../../importer/index.js';
import { startServe, type RunningServe } from '../../serve/server.js';
import { Ledger, Store } from '../../store/index.js';
import { makeFixture, makeKeys, tempDir, writeFixture } from '../bundle/fixtures.js';

interface RawResponse {
  readonly status: number;
  readonly body: Buffer;
}

/** One GET with the path sent exactly as given. */
function raw(url: string, path: string, method = 'GET'): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const req = request({ host: u.hostname, port: u.port, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
  });
}

const STAGED_SECRET = 'STAGED-NOT-YET-CHECKED';
const HIDDEN_SECRET = 'HIDDEN-FILE-CONTENT';

describe('ferry serve: hidden path elements', () => {
  let dir: string;
  let gomod: string;
  let store: Store;
  let reader: Store;
  let server: RunningServe;
  let ledgerHead: Buffer;

  beforeAll(async () => {
    dir = await tempDir('ferry-serve-hidden-');
    const keys = await makeKeys(dir);
    const fx = await makeFixture(dir);
    const out = join(dir, 'out');
    mkdirSync(out);
    await writeFixture(out, fx, keys.privateKey);
    gomod = join(dir, 'gomod');
    store = Store.open(join(dir, 'store'));
    // Where `ferry import --gomod-dir` keeps its ledger by default: inside the tree it serves.
    const ledger = Ledger.open(defaultLedgerPath({ gomodDir: gomod }));
    try {
      const r = await importBundles({ bundles: [join(out, 'ferry-20240101-0001.tar')], trust: keys.trust, gomodDir: gomod, store, ledger });
      expect(r.bundles[0]?.status).toBe('imported');
    } finally {
      ledger.close();
    }
    ledgerHead = readFileSync(join(gomod, '.ferry-ledger.db')).subarray(0, 16);
    expect(ledgerHead.toString('latin1')).toBe('SQLite format 3\0');
    // What a killed import leaves: a staging directory of files it had not finished checking.
    const staged = join(gomod, '.ferry-staging-999999-ferry-20240101-0002-00000000', 'example.com', '!hello', '@v');
    mkdirSync(staged, { recursive: true });
    writeFileSync(join(staged, 'v1.0.0.mod'), `module example.com/Hello // ${STAGED_SECRET}\n`);
    writeFileSync(join(staged, 'v1.0.0.info'), `{"Version":"v1.0.0","Note":"${STAGED_SECRET}"}\n`);
    // Dot-files under a module's directory and under the checksum-database tree.
    writeFileSync(join(gomod, 'example.com', '!hello', '.secret'), HIDDEN_SECRET);
    writeFileSync(join(gomod, 'example.com', '!hello', '@v', '.secret'), HIDDEN_SECRET);
    mkdirSync(join(gomod, 'sumdb', '.hidden'), { recursive: true });
    writeFileSync(join(gomod, 'sumdb', '.hidden', 'supported'), HIDDEN_SECRET);
    reader = Store.open(join(dir, 'store'), { readonly: true });
    server = await startServe({ gomodDir: gomod, store: reader, listen: '127.0.0.1:0' });
  });

  afterAll(async () => {
    await server?.close();
    reader?.close();
    store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const leaks = (body: Buffer): boolean => {
    const text = body.toString('latin1');
    return text.includes('SQLite format 3') || text.includes(STAGED_SECRET) || text.includes(HIDDEN_SECRET);
  };

  it('serves the imported tree and store (the control)', async () => {
    const info = await raw(server.url, '/example.com/!hello/@v/v1.0.0.info');
    expect(info.status).toBe(200);
    expect(info.body.toString()).toContain('"Version":"v1.0.0"');
    expect((await raw(server.url, '/example.com/!hello/@v/list')).status).toBe(200);
    expect((await raw(server.url, '/v2/mirror/app/manifests/1.0')).status).toBe(200);
    expect((await raw(server.url, '/v2/mirror/app/tags/list')).status).toBe(200);
  });

  it('never serves the ledger, staged files or any dot element, however the path is spelled', async () => {
    const staging = '.ferry-staging-999999-ferry-20240101-0002-00000000';
    const paths = [
      '/.ferry-ledger.db',
      '/.ferry-ledger.db-wal',
      '/%2eferry-ledger.db',
      '/%2Eferry-ledger.db',
      '/%2E%66erry-ledger.db',
      '/x/../.ferry-ledger.db',
      '/x/%2e%2e/.ferry-ledger.db',
      '/x/%2E%2E/%2Eferry-ledger.db',
      '/./.ferry-ledger.db',
      '//.ferry-ledger.db',
      '/example.com/%2e%2e/.ferry-ledger.db',
      '/x%2f..%2f.ferry-ledger.db',
      '/x%2F%2eferry-ledger.db',
      '/x\\..\\.ferry-ledger.db',
      '/%5c.ferry-ledger.db',
      `/${staging}/example.com/!hello/@v/v1.0.0.mod`,
      `/${staging}/example.com/!hello/@v/v1.0.0.info`,
      `/%2e${staging.slice(1)}/example.com/!hello/@v/v1.0.0.mod`,
      `/example.com/../${staging}/example.com/!hello/@v/v1.0.0.mod`,
      '/example.com/!hello/.secret',
      '/example.com/!hello/@v/.secret',
      '/example.com/!hello/@v/%2esecret',
      '/example.com/!hello/./@v/v1.0.0.info',
      '/example.com/.hello/@v/list',
      '/sumdb/.hidden/supported',
      '/sumdb/%2ehidden/supported',
      '/sumdb/x/../.hidden/supported',
      '/sumdb/x/../../.ferry-ledger.db',
      '/v2/.ferry-ledger.db',
      '/v2/../.ferry-ledger.db',
      '/v2/%2e%2e/.ferry-ledger.db',
      '/v2/.hidden/tags/list',
      '/v2/mirror/.app/tags/list',
      '/v2/mirror/app/../app/manifests/1.0',
      '/v2/mirror/%2e%2e/mirror/app/manifests/1.0',
      '/v2/mirror/app/manifests/.1.0',
      '/v2/mirror/app/blobs/..%2f..%2f.ferry-ledger.db',
      '/v2/./_catalog',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'HEAD']) {
        const res = await raw(server.url, path, method);
        // Soft: one run names every path that leaks, not only the first.
        expect.soft([400, 404], `${method} ${path}`).toContain(res.status);
        expect.soft(leaks(res.body), `${method} ${path} leaked`).toBe(false);
      }
    }
  });

  it('a double-encoded dot is not decoded twice: it names a file that does not exist', async () => {
    // %252e decodes once to the three characters "%2e": never to a dot.
    for (const path of ['/%252eferry-ledger.db', '/x/%252e%252e/%252eferry-ledger.db']) {
      const res = await raw(server.url, path);
      expect(res.status, path).toBe(404);
      expect(leaks(res.body)).toBe(false);
    }
  });
});
