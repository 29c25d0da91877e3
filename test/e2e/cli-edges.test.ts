// Bad input at the edge, through the built CLI (`node dist/ferry.mjs`): alias bombs and secrets
// that do not resolve (exit 2 with file:line:col), a mistyped store path (an error, never a new
// empty store), an export onto a full disk (the file named), and credentials from a real Docker
// credential helper reaching a real docker-registry. Requires a build (`npm run build`).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, collectRun, runFerry, spawnFerry } from '../helpers/ferry-cli.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const BOMB = `version: 1
store: ./bomb-store
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
`;

/** yyyymmdd (UTC) of now plus `days`, as bundle names spell it. */
function day(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
}

describe('ferry CLI: bad input at the edge', () => {
  let dir: string;

  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-edges-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('output into a pipe whose reader went away (status --json | head) ends quietly, exit 0', async () => {
    const cwd = join(dir, 'epipe');
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'ferry.yaml'), 'version: 1\nstore: ./store\nimages: []\n');
    expect((await runFerry(['sync', '-c', 'ferry.yaml'], { cwd })).code).toBe(0);
    const child = spawnFerry(['status', '-c', 'ferry.yaml', '--json'], { cwd });
    // The read end is closed before the child has even started, so its one write meets EPIPE.
    child.stdout!.destroy();
    const r = await collectRun(child);
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(r.code).toBe(0);
  });

  it('an alias bomb exits 2 with file:line:col, not an internal error', async () => {
    const file = join(dir, 'bomb.yaml');
    writeFileSync(file, BOMB);
    for (const args of [['config', 'check', file], ['sync', '-c', file]]) {
      const r = await runFerry(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${file}:8:8: alias *e makes the aliases of this file add more than 100000 values`);
      expect(r.stderr).not.toContain('internal error');
    }
    expect(existsSync(join(dir, 'bomb-store'))).toBe(false);
  });

  it('a secret that does not resolve fails config check and every command at load: exit 2, position, variable or file', async () => {
    const file = join(dir, 'secret.yaml');
    writeFileSync(file, 'version: 1\nstore: ./secret-store\nregistries:\n  - host: r.example\n    username: ferry\n    password: env:FERRY_E2E_UNSET_SECRET\n');
    const check = await runFerry(['config', 'check', file]);
    expect(check.code, check.stdout).toBe(2);
    expect(check.stderr).toContain(`${file}:6:15: registries[0].password: environment variable FERRY_E2E_UNSET_SECRET is not set`);
    const sync = await runFerry(['sync', '-c', file]);
    expect(sync.code).toBe(2);
    expect(sync.stderr).toContain(`${file}:6:15: registries[0].password`);
    expect(existsSync(join(dir, 'secret-store'))).toBe(false);
    // Set, it passes.
    expect((await runFerry(['config', 'check', file], { env: { FERRY_E2E_UNSET_SECRET: 'x' } })).code).toBe(0);

    writeFileSync(file, 'version: 1\nexport:\n  signingKeyPassphrase: file:keys/pass.txt\n');
    const missingFile = await runFerry(['config', 'check', file]);
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toContain(`${file}:3:25: export.signingKeyPassphrase: cannot read secret file ${join(dir, 'keys', 'pass.txt')}: ENOENT`);
  });

  it('commands that read a store refuse a missing one (exit 2, the path named) and create nothing', async () => {
    const missing = join(dir, 'mistyped', 'store');
    const cfg = join(dir, 'missing-store.yaml');
    writeFileSync(cfg, `version: 1\nstore: ${missing}\nexport:\n  out: ${join(dir, 'missing-out')}\n  signingKey: ${join(dir, 'no.key')}\n`);
    const runs: Array<[string, string[]]> = [
      ['fsck --store', ['fsck', '--store', missing]],
      ['fsck -c', ['fsck', '-c', cfg]],
      ['status', ['status', '-c', cfg]],
      ['export', ['export', '-c', cfg]],
      ['serve', ['serve', '--store', missing, '--listen', '127.0.0.1:0']],
    ];
    for (const [what, args] of runs) {
      const r = await runFerry(args);
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, what).toContain(`no Ferry store at ${missing}: no such directory`);
    }
    expect(existsSync(join(dir, 'mistyped'))).toBe(false);
    expect(existsSync(join(dir, 'missing-out'))).toBe(false);
    // An existing directory that is not a store is refused too, and left as it was.
    const empty = join(dir, 'empty-dir');
    mkdirSync(empty);
    const e = await runFerry(['fsck', '--store', empty, '--json']);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain(`no Ferry store at ${empty}: the directory holds no ferry.db`);
    expect(readdirSync(empty)).toEqual([]);
    // The import ledger named by a mistyped path is not "nothing imported yet".
    const ledger = await runFerry(['ledger', '--store', missing]);
    expect(ledger.code).toBe(2);
    expect(ledger.stderr).toContain(`--store ${missing}: no such directory`);
    const status = await runFerry(['import', '--status', '--ledger', join(dir, 'mistyped.db')]);
    expect(status.code).toBe(2);
    expect(status.stderr).toContain(`--ledger ${join(dir, 'mistyped.db')}: no such file`);
  });

  it('an export onto a full disk names the file and the reason (exit 1), leaves no bundle behind, and the next export works', async () => {
    const cfg = join(dir, 'full.yaml');
    writeFileSync(cfg, 'version: 1\nstore: ./full-store\n');
    expect((await runFerry(['sync', '-c', cfg])).code).toBe(0);
    const key = join(dir, 'full-key');
    expect((await runFerry(['keygen', '--out', key])).code).toBe(0);
    const out = join(dir, 'full-out');
    mkdirSync(out);
    // Linux answers every write to /dev/full with ENOSPC. The bundle's temporary file is a link
    // to it (for the days around now, so a run at midnight still hits it).
    const names = [-1, 0, 1].map((d) => `ferry-${day(d)}-0001`);
    for (const n of names) symlinkSync('/dev/full', join(out, `.${n}.tar.partial`));
    const r = await runFerry(['export', '-c', cfg, '--out', out, '--key', `${key}.key`]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^ferry: cannot write bundle file ${out}/(ferry-\\d{8}-0001)\\.tar \\(written as ${out}/\\.\\1\\.tar\\.partial\\): no space left on device \\(ENOSPC\\)$`, 'm'),
    );
    expect(r.stderr).not.toContain('internal error');
    // Only the links of the days not used are left: no bundle file, no temporary file.
    const left = readdirSync(out);
    expect(left.length).toBe(2);
    expect(left.every((f) => /^\.ferry-\d{8}-0001\.tar\.partial$/.test(f))).toBe(true);
    // Nothing was recorded: the next export, onto a good disk, is sequence 1.
    const good = await runFerry(['export', '-c', cfg, '--out', join(dir, 'good-out'), '--key', `${key}.key`, '--json']);
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ sequence: 1 });
  });

  describe('Docker credential helpers', () => {
    let reg: RunningRegistry;
    let bin: string;
    const user = 'cli-helper';
    const pass = 'cli helper pass';

    beforeAll(async () => {
      reg = await startRegistry({ auth: 'htpasswd', users: { [user]: pass } });
      await pushTestImage(reg.host, 'team/app', { tag: 'v1', seed: 'edges-helper', creds: `${user}:${pass}` });
      bin = join(dir, 'bin');
      mkdirSync(bin, { recursive: true });
      const helper = join(bin, 'docker-credential-ferrye2e');
      writeFileSync(helper, `#!/bin/sh\nread -r server || true\nprintf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\\n' "$server" "${user}" "${pass}"\n`);
      chmodSync(helper, 0o755);
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it('ferry sync gets its credentials from the helper config.json names and copies the image', async () => {
      const docker = join(dir, 'docker');
      mkdirSync(docker, { recursive: true });
      writeFileSync(join(docker, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'ferrye2e' } }));
      const cfg = join(dir, 'helper.yaml');
      writeFileSync(cfg, `version: 1\nstore: ./helper-store\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${reg.host}/team/app\n`);
      const env = { DOCKER_CONFIG: docker, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` };
      const r = await runFerry(['sync', '-c', cfg, '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      const st = await runFerry(['status', '-c', cfg, '--json']);
      expect((JSON.parse(st.stdout) as { tags: Array<{ tag: string }> }).tags.map((t) => t.tag)).toEqual(['v1']);
      // Without the helper's credentials the registry refuses the same sync.
      const anon = await runFerry(['sync', '-c', cfg, '--json'], { env: { DOCKER_CONFIG: join(dir, 'no-docker') } });
      expect(anon.code).toBe(1);
    });
  });
});
