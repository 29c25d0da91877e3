// A dependency whose zip the proxy does not have, with the go command as the judge. Module A
// requires B v1.0.0 and C; C requires B v1.1.0. Minimal version selection reads B v1.0.0's
// go.mod but builds B v1.1.0: go never asks for B v1.0.0's zip, and upstream has none. Ferry
// must carry B v1.0.0's .info and .mod (and say so) instead of failing the root, and `go build`
// inside must work from the imported tree alone (GOPROXY=file://, no network).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyPath } from '../../gomod/index.js';
import { runFerry } from '../helpers/ferry-cli.js';
import { goEnv } from '../helpers/go-env.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const execFileP = promisify(execFile);
const A = 'example.com/a';
const B = 'example.com/b';
const C = 'example.com/c';

describe('a dependency whose zip the proxy does not have', () => {
  let dir: string;
  let upstream: StaticServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-modonly-e2e-'));
    const up = join(dir, 'upstream');
    // No `go` directive: A's requirements are read unpruned, as go does for pre-1.17 modules.
    await buildProxyTree(up, [
      {
        path: A,
        version: 'v1.0.0',
        require: [
          [B, 'v1.0.0'],
          [C, 'v1.0.0'],
        ],
        files: { 'a.go': `package a\n\nimport (\n\t"${B}"\n\t"${C}"\n)\n\nfunc Hello() string { return b.Name() + " " + c.Name() }\n` },
      },
      { path: B, version: 'v1.0.0', files: { 'b.go': 'package b\n\nfunc Name() string { return "b-1.0" }\n' } },
      { path: B, version: 'v1.1.0', files: { 'b.go': 'package b\n\nfunc Name() string { return "b-1.1" }\n' } },
      { path: C, version: 'v1.0.0', require: [[B, 'v1.1.0']], files: { 'c.go': `package c\n\nimport "${B}"\n\nfunc Name() string { return "c(" + b.Name() + ")" }\n` } },
    ]);
    rmSync(join(up, ...proxyPath(B, 'zip', 'v1.0.0').split('/')));
    upstream = await serveDir(up);
  });

  afterAll(async () => {
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sync carries its .info and .mod and says so; go build works from the imported tree', async () => {
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\ngoModules:\n  proxy: ${upstream.url}\n  sumdb: "off"\n  modules:\n    - path: ${A}\n      versions: [v1.0.0]\n` +
        `export:\n  signingKey: ${join(dir, 'keys', 'ferry.key')}\n  out: ${join(dir, 'out')}\n`,
    );
    writeFileSync(cfg.replace(/\.yaml$/, '-2.yaml'), readFileSync(cfg, 'utf8').replace(join(dir, 'store'), join(dir, 'store-2')));
    mkdirSync(join(dir, 'keys'));
    expect((await runFerry(['keygen', '--out', join(dir, 'keys', 'ferry')])).code).toBe(0);

    const sync = await runFerry(['sync', '-c', cfg, '--json']);
    expect(sync.code, sync.stderr).toBe(0);
    const summary = JSON.parse(sync.stdout) as { ok: boolean; modules: { modOnly: number }; warnings: Array<{ source: string; module: string; version: string; message: string }> };
    expect(summary.ok).toBe(true);
    expect(summary.modules.modOnly).toBe(1);
    expect(summary.warnings).toEqual([{ source: A, module: B, version: 'v1.0.0', message: expect.stringContaining(`${B}@v1.0.0: the proxy has no zip for it`) }]);
    expect(sync.stderr).toContain(`${B}@v1.0.0: the proxy has no zip for it`);
    // The human report (another store, so the pass fetches again) names it too.
    const human = await runFerry(['sync', '-c', cfg.replace(/\.yaml$/, '-2.yaml')]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stderr).toContain(`ferry: warning: ${A}: ${B}@v1.0.0: the proxy has no zip for it`);

    const exp = await runFerry(['export', '-c', cfg]);
    expect(exp.code, exp.stderr).toBe(0);
    const tar = (await readdir(join(dir, 'out'))).find((f) => f.endsWith('.tar'));
    expect(tar).toBeDefined();
    const bundle = join(dir, 'out', tar!);
    const verify = await runFerry(['verify', bundle, '--trust', join(dir, 'keys', 'ferry.pub')]);
    expect(verify.code, verify.stderr).toBe(0);
    const tree = join(dir, 'gomod');
    const imp = await runFerry(['import', bundle, '--trust', join(dir, 'keys', 'ferry.pub'), '--gomod-dir', tree]);
    expect(imp.code, imp.stderr).toBe(0);

    // B v1.0.0: .info and .mod, no zip, and @v/list names only the version with a zip.
    const bv = (v: string, kind: 'info' | 'mod' | 'zip'): string => join(tree, ...proxyPath(B, kind, v).split('/'));
    expect(existsSync(bv('v1.0.0', 'info'))).toBe(true);
    expect(existsSync(bv('v1.0.0', 'mod'))).toBe(true);
    expect(existsSync(bv('v1.0.0', 'zip'))).toBe(false);
    expect(readFileSync(join(tree, ...proxyPath(B, 'list').split('/')), 'utf8')).toBe('v1.1.0\n');

    const home = join(dir, 'home');
    const app = join(home, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'go.mod'), `module example.com/app\n\ngo 1.16\n\nrequire ${A} v1.0.0\n`);
    writeFileSync(join(app, 'main.go'), `package main\n\nimport (\n\t"fmt"\n\n\t"${A}"\n)\n\nfunc main() { fmt.Println(a.Hello()) }\n`);
    const env = goEnv(home, `file://${tree}`);
    await execFileP('go', ['build', '-o', join(home, 'app.bin'), '.'], { cwd: app, env });
    expect((await execFileP(join(home, 'app.bin'))).stdout.trim()).toBe('b-1.1 c(b-1.1)');
    const list = await execFileP('go', ['list', '-m', 'all'], { cwd: app, env });
    expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(['example.com/app', `${A} v1.0.0`, `${B} v1.1.0`, `${C} v1.0.0`].sort());
    // go read B v1.0.0's go.mod (its go.sum line is there) and never needed its zip.
    const sum = readFileSync(join(app, 'go.sum'), 'utf8');
    expect(sum).toContain(`${B} v1.0.0/go.mod h1:`);
    expect(sum).not.toMatch(new RegExp(`^${B.replace(/\./g, '\\.')} v1\\.0\\.0 h1:`, 'm'));
  });
});
