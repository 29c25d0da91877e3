// Go modules end to end with the go command as the judge: upstream static GOPROXY tree →
// `ferry sync` → `ferry serve` → `go mod download`, `go build`, `go list -m all`.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../store/index.js';
import { goEnv } from '../helpers/go-env.js';
import { buildProxyTree, type ProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const execFileP = promisify(execFile);
const CLI = resolve('dist/ferry.mjs');

describe('Go modules through ferry sync and ferry serve', () => {
  let dir: string;
  let tree: ProxyTree;
  let upstream: StaticServer;
  let serve: ChildProcess | undefined;
  let serveUrl = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-gomod-e2e-'));
    tree = await buildProxyTree(join(dir, 'upstream'), [
      { path: 'example.com/Root', version: 'v1.0.0', require: [['example.com/shared', 'v1.0.0']], files: { 'root.go': 'package root\n\nimport "example.com/shared"\n\nfunc Hello() string { return "v1.0.0 " + shared.Name() }\n' } },
      {
        path: 'example.com/Root',
        version: 'v1.1.0',
        require: [['example.com/shared', 'v1.1.0'], ['example.com/util', 'v0.2.0']],
        files: { 'root.go': 'package root\n\nimport (\n\t"example.com/shared"\n\t"example.com/util"\n)\n\nfunc Hello() string { return util.Wrap(shared.Name()) }\n' },
      },
      { path: 'example.com/shared', version: 'v1.0.0', require: [['example.com/util', 'v0.1.0']], files: { 'shared.go': 'package shared\n\nfunc Name() string { return "shared-1.0" }\n' } },
      { path: 'example.com/shared', version: 'v1.1.0', require: [['example.com/util', 'v0.1.0']], files: { 'shared.go': 'package shared\n\nimport "example.com/util"\n\nfunc Name() string { return util.Wrap("shared-1.1") }\n' } },
      { path: 'example.com/util', version: 'v0.1.0', files: { 'util.go': 'package util\n\nfunc Wrap(s string) string { return "(" + s + ")" }\n' } },
      { path: 'example.com/util', version: 'v0.2.0', files: { 'util.go': 'package util\n\nfunc Wrap(s string) string { return "[" + s + "]" }\n' } },
      { path: 'example.com/util', version: 'v0.3.0-rc.1', files: { 'util.go': 'package util\n\nfunc Wrap(s string) string { return s }\n' } },
    ]);
    upstream = await serveDir(join(dir, 'upstream'));
    writeFileSync(
      join(dir, 'ferry.yaml'),
      `version: 1\nstore: ./store\ngoModules:\n  proxy: ${upstream.url}\n  sumdb: off\n  modules:\n    - path: example.com/Root\n      versions: latest\n`,
    );
    const sync = await execFileP('node', [CLI, 'sync', '-c', join(dir, 'ferry.yaml'), '--json']);
    const summary = JSON.parse(sync.stdout) as { ok: boolean; modules: { versionsNew: number } };
    expect(summary.ok).toBe(true);
    // Root v1.1.0, shared v1.1.0, util v0.2.0 and (no pruning) util v0.1.0 required by shared.
    expect(summary.modules.versionsNew).toBe(4);

    serve = spawn('node', [CLI, 'serve', '-c', join(dir, 'ferry.yaml'), '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serveUrl = await new Promise<string>((ok, fail) => {
      let out = '';
      serve!.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /serving on (http:\/\/\S+)/.exec(out);
        if (m) ok(m[1]!.replace(/\/$/, ''));
      });
      serve!.on('exit', (code) => fail(new Error(`ferry serve exited ${code}`)));
    });
  });

  afterAll(async () => {
    serve?.kill('SIGTERM');
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('go mod download reports the h1 values Ferry stored', async () => {
    const home = join(dir, 'home-dl');
    mkdirSync(home, { recursive: true });
    const { stdout } = await execFileP('go', ['mod', 'download', '-json', 'example.com/Root@v1.1.0', 'example.com/util@v0.1.0'], { cwd: home, env: goEnv(home, serveUrl) });
    const got = stdout
      .split(/\n(?=\{)/)
      .filter((s) => s.trim())
      .map((s) => JSON.parse(s) as { Path: string; Version: string; Sum: string; GoModSum: string; Error?: string });
    const store = Store.open(join(dir, 'store'), { readonly: true });
    try {
      for (const g of got) {
        expect(g.Error).toBeUndefined();
        const row = store.modules.get(g.Path, g.Version);
        expect(g.Sum).toBe(row?.h1Zip);
        expect(g.GoModSum).toBe(row?.h1Mod);
        expect(g.Sum).toBe(tree.sums.get(`${g.Path}@${g.Version}`)?.h1Zip);
      }
    } finally {
      store.close();
    }
  });

  it('go build and go list -m all work with only the served tree', async () => {
    const home = join(dir, 'home-build');
    const app = join(home, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'go.mod'), 'module example.com/app\n\ngo 1.19\n\nrequire example.com/Root v1.1.0\n');
    writeFileSync(join(app, 'main.go'), 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/Root"\n)\n\nfunc main() { fmt.Println(root.Hello()) }\n');
    const env = goEnv(home, serveUrl);
    await execFileP('go', ['build', '-o', join(home, 'app.bin'), '.'], { cwd: app, env });
    const run = await execFileP(join(home, 'app.bin'));
    expect(run.stdout.trim()).toBe('[[shared-1.1]]');
    const list = await execFileP('go', ['list', '-m', 'all'], { cwd: app, env });
    expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(
      ['example.com/app', 'example.com/Root v1.1.0', 'example.com/shared v1.1.0', 'example.com/util v0.2.0'].sort(),
    );
    const versions = await execFileP('go', ['list', '-m', '-versions', 'example.com/util'], { cwd: app, env });
    // The served list is regenerated from carried zips: v0.1.0 and v0.2.0, not the rc nobody needed.
    expect(versions.stdout.trim()).toBe('example.com/util v0.1.0 v0.2.0');
  });
});
