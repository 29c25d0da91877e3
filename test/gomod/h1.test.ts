// Our h1 hashes against the real go command: `go mod download -json` from a static proxy.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModuleZip, hash1, hashGoMod, hashZip, proxyPath } from '../../gomod/index.js';
import { buildProxyTree, type TreeModule } from '../helpers/goproxy-tree.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

const run = promisify(execFile);

// 𝒜 (U+1D49C) sorts before ｱ (U+FF71) in UTF-16 but after it in UTF-8 bytes.
const MODULES: TreeModule[] = [
  { path: 'example.com/plain', version: 'v1.0.0', files: { 'a.go': 'package plain\n', 'sub/b.go': 'package sub\n', LICENSE: 'MIT\n' } },
  { path: 'github.com/Azure/Upper-Case', version: 'v1.2.3', files: { 'x.go': 'package x\n', 'README.md': '# hi\n' } },
  { path: 'example.com/inc', version: 'v2.0.0+incompatible', files: { 'inc.go': 'package inc\n' }, zipGoMod: false },
  { path: 'example.com/pseudo', version: 'v0.0.0-20191109021931-daa7c04131f5', files: { 'p.go': 'package p\n' } },
  { path: 'example.com/pseudo', version: 'v1.2.4-0.20191109021931-daa7c04131f5', files: { 'p.go': 'package p // newer\n' } },
  {
    path: 'example.com/unicode',
    version: 'v1.0.0-RC.1',
    files: { '𝒜.txt': 'script a\n', 'ｱ.txt': 'katakana a\n', 'ñandú/é.go': 'package x\n', 'Z.txt': 'z\n', 'a b.txt': 'space\n' },
    require: [['example.com/plain', 'v1.0.0']],
  },
];

interface GoDownload {
  Path: string;
  Version: string;
  Sum?: string;
  GoModSum?: string;
  Error?: string;
  Zip?: string;
}

describe('h1 hashes agree with the go command', () => {
  let work: string;
  let server: StaticServer;
  let sums: Map<string, { h1Zip: string; h1Mod: string }>;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-h1-'));
    sums = (await buildProxyTree(join(work, 'proxy'), MODULES)).sums;
    server = await serveDir(join(work, 'proxy'));
  });
  afterAll(async () => {
    await server?.stop();
    // The module cache is read-only by design.
    await run('chmod', ['-R', 'u+w', work]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function goDownload(mv: string): Promise<GoDownload> {
    const home = join(work, 'home');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: home,
      GOPATH: join(work, 'gopath'),
      GOMODCACHE: join(work, 'modcache'),
      GOCACHE: join(work, 'gocache'),
      GOPROXY: server.url,
      GOSUMDB: 'off',
      GONOSUMDB: '*',
      GOFLAGS: '-mod=mod',
      GOTOOLCHAIN: 'local',
      GO111MODULE: 'on',
      GOENV: 'off',
    };
    // Outside any module; -mod=mod is refused there by some go versions, so drop it if so.
    let out: { stdout: string };
    try {
      out = await run('go', ['mod', 'download', '-json', mv], { cwd: work, env });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      if (e.stderr?.includes('-mod')) {
        out = await run('go', ['mod', 'download', '-json', mv], { cwd: work, env: { ...env, GOFLAGS: '' } });
      } else if (e.stdout) {
        out = { stdout: e.stdout };
      } else {
        throw err;
      }
    }
    return JSON.parse(out.stdout) as GoDownload;
  }

  for (const m of MODULES) {
    it(`${m.path}@${m.version}`, async () => {
      const got = await goDownload(`${m.path}@${m.version}`);
      expect(got.Error).toBeUndefined();
      const ours = sums.get(`${m.path}@${m.version}`)!;
      expect(ours.h1Zip).toBe(got.Sum);
      expect(ours.h1Mod).toBe(got.GoModSum);
      // The zip the go command cached is byte-identical, and the checker agrees on its hash.
      expect(await hashZip(got.Zip!)).toBe(got.Sum);
      const zipFile = join(work, 'proxy', ...proxyPath(m.path, 'zip', m.version).split('/'));
      expect((await checkModuleZip(zipFile, { module: m.path, version: m.version })).h1).toBe(got.Sum);
    });
  }

  it('requests used escaped paths', () => {
    const paths = server.requests.map((r) => decodeURIComponent(r.path));
    expect(paths).toContain('/github.com/!azure/!upper-!case/@v/v1.2.3.zip');
    expect(paths).toContain('/example.com/unicode/@v/v1.0.0-!r!c.1.info');
    expect(paths).toContain('/example.com/inc/@v/v2.0.0+incompatible.mod');
  });

  it('sorts names bytewise: a UTF-16 sort would give another hash than the go command', async () => {
    const m = MODULES.find((x) => x.path === 'example.com/unicode')!;
    const got = await goDownload(`${m.path}@${m.version}`);
    const prefix = `${m.path}@${m.version}/`;
    const files = { ...m.files!, 'go.mod': `module ${m.path}\n\nrequire (\n\texample.com/plain v1.0.0\n)\n` };
    const utf16Sorted = Object.keys(files).map((n) => prefix + n).sort();
    const summary = utf16Sorted
      .map((n) => `${createHash('sha256').update(files[n.slice(prefix.length) as keyof typeof files]!).digest('hex')}  ${n}\n`)
      .join('');
    const utf16Hash = 'h1:' + createHash('sha256').update(summary).digest('base64');
    expect(utf16Hash).not.toBe(got.Sum);
    const entries = Object.entries(files).map(([n, d]) => ({ name: Buffer.from(prefix + n), sha256: createHash('sha256').update(d).digest() }));
    expect(hash1(entries)).toBe(got.Sum);
  });

  it('hash1 is independent of input order', () => {
    const lines = (names: string[]): string => hash1(names.map((n) => ({ name: Buffer.from(n), sha256: Buffer.alloc(32) })));
    // Same set, different input order: the hash is order-independent.
    expect(lines(['𝒜', 'ｱ'])).toBe(lines(['ｱ', '𝒜']));
    expect(hashGoMod(Buffer.from('module example.com/plain\n'))).toBe(sums.get('example.com/plain@v1.0.0')!.h1Mod);
  });
});
