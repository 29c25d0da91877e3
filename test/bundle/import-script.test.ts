// import.sh, run with /bin/sh (dash) against a real docker-registry: verify first, then push
// blobs, manifests and tags where the signed images[] says (not index.json); merge the Go module
// tree; refuse damaged or untrusted bundles, and a filtered index that is not made from its
// image's index, without tagging anything.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { bufferEntry, buildIndexJson, IMPORT_SCRIPT, verifyBundle } from '../../bundle/index.js';
import { importBundles } from '../../importer/index.js';
import { ANNOTATION_FILTERED_FROM, MediaType, sha256Digest, type Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Ledger } from '../../store/index.js';
import { flipByteInEntry, makeFixture, makeKeys, MODULE_PATH, MODULE_VERSION, tempDir, writeFixture, type Fixture } from './fixtures.js';
import { startRegistry, type RunningRegistry as TestRegistry } from '../helpers/registry-server.js';
import { runSh, type ShRun } from '../helpers/sh.js';

const run = promisify(execFile);
const NAME = 'ferry-20240101-0001';
let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let registry: TestRegistry;
let n = 0;

beforeAll(async () => {
  dir = await tempDir();
  keys = await makeKeys(dir);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

function sh(args: string[], cwd: string): Promise<ShRun> {
  return runSh(join(cwd, 'import.sh'), args, cwd);
}

async function bundle(fx: Fixture, splitSize?: number): Promise<string> {
  const out = join(dir, `b${n++}`);
  await mkdir(out);
  await writeFixture(out, fx, keys.privateKey, { plan: true, ...(splitSize !== undefined ? { splitSize } : {}) });
  return out;
}

/** A filtered index as ferry export writes it, with `edit` applied before serialising. */
function filteredOf(index: Buffer, kept: readonly string[], from: string, edit?: (json: { manifests: Array<{ mediaType: string; digest: string; size: number }> }) => void): Buffer {
  const json = JSON.parse(index.toString('utf8')) as { manifests: Array<{ mediaType: string; digest: string; size: number }>; annotations?: Record<string, string> };
  json.manifests = json.manifests.filter((m) => kept.includes(m.digest));
  json.annotations = { ...(json.annotations ?? {}), [ANNOTATION_FILTERED_FROM]: from };
  edit?.(json);
  return Buffer.from(JSON.stringify(json));
}

async function remoteDigest(repoTag: string, host = registry.host): Promise<string> {
  const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${repoTag}`], { encoding: 'buffer' });
  return `sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`;
}

async function tags(repo: string): Promise<number> {
  const res = await fetch(`http://${registry.host}/v2/${repo}/tags/list`);
  if (res.status === 404) return 0;
  const body = (await res.json()) as { tags: string[] | null };
  return body.tags?.length ?? 0;
}

describe('import.sh', () => {
  it('is POSIX sh that dash parses, with no template-literal hazards', async () => {
    const f = join(dir, 'syntax.sh');
    await writeFile(f, IMPORT_SCRIPT);
    await run('dash', ['-n', f]);
    expect(IMPORT_SCRIPT.startsWith('#!/bin/sh\n')).toBe(true);
    expect(IMPORT_SCRIPT).not.toContain('${');
  });

  it('imports a split bundle: images pushed and tagged, Go modules merged', async () => {
    const fx = await makeFixture(dir, { targetPrefix: 'ok' });
    const out = await bundle(fx, 2048);
    const gomod = join(dir, 'gomod');
    await mkdir(join(gomod, 'example.com/!hello/@v'), { recursive: true });
    await writeFile(join(gomod, 'example.com/!hello/@v/list'), 'v0.9.0\nv1.0.0\n');
    const res = await sh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', '--gomod-dir', gomod, `${NAME}.tar.001`], out);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('signature OK');
    expect(res.stdout).toContain('2 tag(s)');
    expect(await remoteDigest('ok/app:1.0')).toBe(fx.images[0]!.digest);
    expect(await remoteDigest('ok/multi:latest')).toBe(fx.images[1]!.digest);
    const info = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/ok/multi:latest`])).stdout) as { Digest: string };
    expect(info.Digest).toBe(fx.images[1]!.digest);

    expect(await readFile(join(gomod, 'example.com/!hello/@v/list'), 'utf8')).toBe('v0.9.0\nv1.0.0\n');
    expect((await readFile(join(gomod, 'example.com/!hello/@v/v1.0.0.zip'))).length).toBeGreaterThan(0);
    // The go command accepts the tree as a proxy and computes the same hashes the bundle signed.
    const cache = join(dir, 'gocache');
    const env = { ...process.env, GOPROXY: `file://${gomod}`, GOSUMDB: 'off', GOFLAGS: '-modcacherw', GOMODCACHE: join(cache, 'mod'), GOPATH: join(cache, 'gopath'), GOCACHE: join(cache, 'build'), GOTOOLCHAIN: 'local' };
    const dl = await run('go', ['mod', 'download', '-json', `${MODULE_PATH}@${MODULE_VERSION}`], { env, cwd: dir });
    const got = JSON.parse(dl.stdout) as { Sum: string; GoModSum: string };
    expect(got).toMatchObject({ Sum: fx.module.h1, GoModSum: fx.module.goModH1 });

    // A second import is idempotent: every blob is already there.
    const again = await sh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar.001`], out);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('0 blob(s) uploaded, 6 already present');

    // An incremental bundle that only requires the layer (an earlier bundle carried it) imports.
    const layer = fx.blobs[0]!;
    const incr = await bundle({
      ...fx,
      entries: fx.entries.filter((e) => e.path !== `blobs/sha256/${layer.digest.slice(7)}`),
      manifest: { ...fx.manifest, id: 'ferry-20240101-0002-00000000', requires: [layer.digest] },
    });
    const inc = await sh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`], incr);
    expect(inc.stderr).toBe('');
    expect(inc.code).toBe(0);
  });

  it('refuses a bundle with a flipped byte before pushing anything', async () => {
    const fx = await makeFixture(dir, { targetPrefix: 'flipped' });
    const out = await bundle(fx);
    await flipByteInEntry(join(out, `${NAME}.tar`), `blobs/sha256/${fx.blobs[0]!.digest.slice(7)}`, 10);
    const args = ['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`];
    const res = await sh(args, out);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`part ${NAME}.tar has the wrong sha256`);
    // Without parts.json the per-file check catches it and names the file.
    await unlink(join(out, `${NAME}.parts.json`));
    const res2 = await sh(args, out);
    expect(res2.code).not.toBe(0);
    expect(res2.stderr).toContain(`blobs/sha256/${fx.blobs[0]!.digest.slice(7)}: FAILED`);
    expect(await tags('flipped/app')).toBe(0);
    expect(await tags('flipped/multi')).toBe(0);
  });

  it('refuses a bundle signed by an untrusted key', async () => {
    const fx = await makeFixture(dir, { targetPrefix: 'untrusted' });
    const out = await bundle(fx);
    const other = await makeKeys(out, 'other');
    const res = await sh(['--trust', other.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`], out);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('signature does not verify with any trusted key');
    expect(await tags('untrusted/app')).toBe(0);
  });

  it('refuses an incremental bundle whose required blobs the registry lacks, tagging nothing', async () => {
    const fx = await makeFixture(dir, { targetPrefix: 'incr' });
    const layer = fx.blobs[0]!;
    const out = await bundle({
      ...fx,
      entries: fx.entries.filter((e) => e.path !== `blobs/sha256/${layer.digest.slice(7)}`),
      manifest: { ...fx.manifest, requires: [layer.digest] },
    });
    const res = await sh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`], out);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(layer.digest);
    expect(await tags('incr/app')).toBe(0);
    expect(await tags('incr/multi')).toBe(0);
  });

  it('pushes to the targets of the signed images[], whatever index.json says', async () => {
    const fx = await makeFixture(dir, { targetPrefix: 'signed' });
    // index.json is in the signed file list too, but it is only the OCI layout: here it names
    // other targets for both images.
    const sizeOf = (d: string): number => fx.blobs.find((b) => b.digest === d)!.bytes.length;
    const indexJson = buildIndexJson(fx.images.map((im, i) => ({ ...im, target: `elsewhere/img${i}`, size: sizeOf(im.digest) })));
    const out = await bundle({ ...fx, entries: fx.entries.map((e) => (e.path === 'index.json' ? bufferEntry('index.json', indexJson) : e)) });
    const res = await sh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`], out);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(await remoteDigest('signed/app:1.0')).toBe(fx.images[0]!.digest);
    expect(await remoteDigest('signed/multi:latest')).toBe(fx.images[1]!.digest);
    expect(await tags('elsewhere/img0')).toBe(0);
    expect(await tags('elsewhere/img1')).toBe(0);
  });

  it.each<[string, (index: Buffer, indexDigest: Digest, amd: Digest, arm: Digest) => Buffer, RegExp]>([
    [
      'names another index as its origin',
      (index, _d, amd) => filteredOf(index, [amd], sha256Digest('another index')),
      /does not name .* in io\.ferry\.filtered-from/,
    ],
    [
      'keeps a child its platforms leave out',
      (index, d) => filteredOf(index, [], d, (json) => json.manifests.push({ mediaType: MediaType.OciManifest, digest: sha256Digest('not a child'), size: 1 })),
      /lists sha256:[0-9a-f]{64}, which sha256:[0-9a-f]{64} does not/,
    ],
  ])('refuses a filtered index that %s, as ferry verify and ferry import do', async (_what, make, why) => {
    const fx = await makeFixture(dir, { targetPrefix: 'tampered' });
    const im = fx.images[1]!;
    const index = fx.blobs.find((b) => b.digest === im.digest)!.bytes;
    const children = (JSON.parse(index.toString('utf8')) as { manifests: Array<{ digest: Digest }> }).manifests.map((m) => m.digest);
    const bad = make(index, im.digest, children[0]!, children[1]!);
    const filtered = sha256Digest(bad);
    const images = [fx.images[0]!, { ...im, platforms: ['linux/amd64'], filtered }];
    // index.json as Ferry writes it for these images (the platforms kept are annotated).
    const sizeOf = (d: string): number => fx.blobs.find((b) => b.digest === d)!.bytes.length;
    const indexJson = buildIndexJson(images.map((x) => ({ ...x, size: sizeOf(x.digest) })));
    const out = await bundle({
      ...fx,
      images,
      entries: [...fx.entries.map((e) => (e.path === 'index.json' ? bufferEntry('index.json', indexJson) : e)), bufferEntry(`blobs/sha256/${filtered.slice(7)}`, bad, MediaType.OciIndex)],
      manifest: { ...fx.manifest, images },
    });
    await expect(verifyBundle(out, { trust: keys.trust })).rejects.toMatchObject({ code: 'BUNDLE_INVALID', message: expect.stringContaining('images[1].filtered') });
    const other = await startRegistry();
    const ledger = Ledger.open(join(out, 'ledger.db'));
    try {
      const client = new RegistryClient({ host: other.host, tls: 'plain-http', retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 5 } });
      await expect(importBundles({ bundles: [out], trust: keys.trust, registry: client, ledger, logger: pino({ level: 'silent' }) })).rejects.toMatchObject({ code: 'BUNDLE_INVALID' });
    } finally {
      ledger.close();
      await other.stop();
    }
    const res = await sh(['--trust', keys.pubPath, '--registry', registry.host, '--plain-http', `${NAME}.tar`], out);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(why);
    expect(res.stderr).toContain('images[1].filtered');
    expect(await tags('tampered/app')).toBe(0);
    expect(await tags('tampered/multi')).toBe(0);
  });

  it('pushes with Basic auth read from a password file', async () => {
    const authed = await startRegistry({ auth: 'htpasswd', users: { alice: 'pa"ss word' } });
    try {
      const fx = await makeFixture(dir, { targetPrefix: 'auth' });
      const out = await bundle(fx);
      const pw = join(dir, 'password');
      await writeFile(pw, 'pa"ss word\n', { mode: 0o600 });
      const base = ['--trust', keys.pubPath, '--registry', authed.host, '--plain-http'];
      const denied = await sh([...base, `${NAME}.tar`], out);
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toContain('requires credentials');
      const res = await sh([...base, '--user', 'alice', '--password-file', pw, `${NAME}.tar`], out);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:pa"ss word', `docker://${authed.host}/auth/app:1.0`], { encoding: 'buffer' });
      expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(fx.images[0]!.digest);
    } finally {
      await authed.stop();
    }
  });

  it('pushes with Bearer tokens, the tags in batches carrying the token of their repository', async () => {
    const authed = await startRegistry({ auth: 'token', users: { bob: 'bob-password' } });
    try {
      const fx = await makeFixture(dir, { targetPrefix: 'tok' });
      const out = await bundle(fx);
      const pw = join(dir, 'token-password');
      await writeFile(pw, 'bob-password\n', { mode: 0o600 });
      const res = await sh(['--trust', keys.pubPath, '--registry', authed.host, '--plain-http', '--user', 'bob', '--password-file', pw, `${NAME}.tar`], out);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      for (const im of fx.images) {
        const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'bob:bob-password', `docker://${authed.host}/${im.target}:${im.tag}`], { encoding: 'buffer' });
        expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(im.digest);
      }
      expect(res.stdout).toContain(`${fx.images.length} tag(s)`);
    } finally {
      await authed.stop();
    }
  });
});
