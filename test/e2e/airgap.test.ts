// The whole air gap on real servers, driven through the CLI: upstream docker-registry + a static
// GOPROXY tree → ferry sync → ferry export → ferry import into a second docker-registry and a
// Go module directory → skopeo sees upstream's digests, and `go build` works with only file://.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../oci/index.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { OciLayoutBuilder, pushLayout, skopeoInspect, type Image, type Index } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const execFileP = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

/** Runs the built ferry CLI. */
async function ferry(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('air gap end to end', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let goproxy: StaticServer;
  let layout: OciLayoutBuilder;
  let idx: Index;
  let amd: Image;
  let single: Image;
  let filteredIdx: Index;
  let keptChild: Image;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-airgap-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    layout = await OciLayoutBuilder.create();
    const base = await layout.addLayer({ size: 128 * 1024, seed: 'base' });
    amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 4000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 4000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    await layout.tag('v1', idx);
    await pushLayout(layout.dir, 'v1', `${up.host}/team/app:v1`);
    single = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'tool' })] });
    await layout.tag('1.0', single);
    await pushLayout(layout.dir, '1.0', `${up.host}/team/tool:1.0`);
    keptChild = await layout.addImage({ layers: [await layout.addLayer({ size: 3000, seed: 'db-amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    const dropped = await layout.addImage({ layers: [await layout.addLayer({ size: 3000, seed: 'db-arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    filteredIdx = await layout.addIndex([keptChild, dropped]);
    await layout.tag('db', filteredIdx);
    await pushLayout(layout.dir, 'db', `${up.host}/team/db:15`);

    await buildProxyTree(join(dir, 'proxy'), [
      { path: 'example.com/Greet', version: 'v1.0.0', require: [['example.com/words', 'v0.1.0']], files: { 'greet.go': 'package greet\n\nimport "example.com/words"\n\nfunc Hello() string { return words.Hello + ", air gap" }\n' } },
      { path: 'example.com/words', version: 'v0.1.0', files: { 'words.go': 'package words\n\nconst Hello = "hello"\n' } },
    ]);
    goproxy = await serveDir(join(dir, 'proxy'));
  });

  afterAll(async () => {
    await Promise.all([up?.stop(), intra?.stop(), goproxy?.stop()]);
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sync → export → import: skopeo sees upstream digests and go build works from file:// only', async () => {
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
        `images:\n  - source: ${up.host}/team/app\n  - source: ${up.host}/team/tool\n  - source: ${up.host}/team/db\n    platforms: [linux/amd64]\n` +
        `goModules:\n  proxy: ${goproxy.url}\n  sumdb: "off"\n  modules:\n    - path: example.com/Greet\n      versions: [v1.0.0]\n` +
        `export:\n  signingKey: ${join(dir, 'keys', 'ferry.key')}\n  out: ${join(dir, 'out')}\n`,
    );
    mkdirSync(join(dir, 'keys'));
    const steps: Array<[string, string[]]> = [
      ['keygen', ['keygen', '--out', join(dir, 'keys', 'ferry')]],
      ['sync', ['sync', '-c', cfg]],
      ['export', ['export', '-c', cfg]],
    ];
    for (const [name, args] of steps) {
      const r = await ferry(args);
      expect(r.stderr, name).not.toMatch(/error/i);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
    }
    const tar = readdirSync(join(dir, 'out')).find((f) => f.endsWith('.tar'));
    expect(tar).toBeDefined();
    const gomod = join(dir, 'gomod');
    const imp = await ferry(
      ['import', join(dir, 'out', tar!), '--trust', join(dir, 'keys', 'ferry.pub'), '--registry', intra.host, '--plain-http', '--gomod-dir', gomod, '--json'],
    );
    expect(imp.code, imp.stderr).toBe(0);
    const result = JSON.parse(imp.stdout) as {
      bundles: Array<{ status: string; filtered: Array<{ repository: string; filteredFrom: string }> }>;
      clientConfig: { env: Record<string, string>; registriesConf: string };
    };
    expect(result.bundles[0]!.status).toBe('imported');
    expect(result.clientConfig.env).toEqual({ GOPROXY: `file://${gomod}`, GOSUMDB: 'off', GOTOOLCHAIN: 'local' });
    expect(result.clientConfig.registriesConf).toContain(`location = "${intra.host}/team/app"`);

    // Every tag carries upstream's digest, as skopeo sees it on both sides.
    for (const [repo, tag] of [['team/app', 'v1'], ['team/tool', '1.0']] as const) {
      const upRaw = (await skopeoInspect(`${up.host}/${repo}:${tag}`, { raw: true, tlsVerify: false })) as string;
      const inRaw = (await skopeoInspect(`${intra.host}/${repo}:${tag}`, { raw: true, tlsVerify: false })) as string;
      expect(sha256Digest(Buffer.from(inRaw, 'utf8')), `${repo}:${tag}`).toBe(sha256Digest(Buffer.from(upRaw, 'utf8')));
    }
    expect(sha256Digest(Buffer.from((await skopeoInspect(`${intra.host}/team/app:v1`, { raw: true, tlsVerify: false })) as string))).toBe(idx.digest);
    // The filtered index: the kept platform has upstream's digest; the index says where it came from.
    const dbRaw = JSON.parse((await skopeoInspect(`${intra.host}/team/db:15`, { raw: true, tlsVerify: false })) as string) as {
      manifests: Array<{ digest: string }>;
      annotations?: Record<string, string>;
    };
    expect(dbRaw.manifests.map((m) => m.digest)).toEqual([keptChild.digest]);
    expect(dbRaw.annotations?.['io.ferry.filtered-from']).toBe(filteredIdx.digest);
    const child = (await skopeoInspect(`${intra.host}/team/db@${keptChild.digest}`, { raw: true, tlsVerify: false })) as string;
    expect(sha256Digest(Buffer.from(child, 'utf8'))).toBe(keptChild.digest);
    expect(result.bundles[0]!.filtered).toEqual([expect.objectContaining({ repository: 'team/db', filteredFrom: filteredIdx.digest })]);
    const amdInspect = (await skopeoInspect(`${intra.host}/team/app@${amd.digest}`, { raw: true, tlsVerify: false })) as string;
    expect(sha256Digest(Buffer.from(amdInspect, 'utf8'))).toBe(amd.digest);

    // go build with nothing reachable but the imported tree.
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'go.mod'), 'module example.com/app\n\ngo 1.19\n\nrequire example.com/Greet v1.0.0\n');
    writeFileSync(join(app, 'main.go'), 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/Greet"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n');
    const home = join(dir, 'home');
    mkdirSync(home);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: home,
      GOPATH: join(home, 'go'),
      GOMODCACHE: join(home, 'modcache'),
      GOCACHE: join(home, 'cache'),
      GOENV: 'off',
      GOPROXY: result.clientConfig.env['GOPROXY'],
      GOSUMDB: 'off',
      GONOSUMDB: '*',
      GOFLAGS: '-mod=mod',
      GOTOOLCHAIN: 'local',
    };
    await execFileP('go', ['build', '-o', join(dir, 'app-bin'), '.'], { cwd: app, env });
    const { stdout } = await execFileP(join(dir, 'app-bin'), []);
    expect(stdout.trim()).toBe('hello, air gap');
  });
});
