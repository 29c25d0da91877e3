// `ferry gc --store` on a store made by `ferry import --store` (inside, for another hop): a tag
// that moved leaves its old image behind, which gc keeps since a later bundle may require it
// (found by this test: removed, the tag's return to it failed with REQUIRES_MISSING); fsck is
// clean after it, the next bundle still imports (its chain checks and requires hold),
// `ferry export` from that store still writes the next hop's bundle, and `ferry serve` serves
// its tags to skopeo. Outside, `ferry gc -c` compacts the journal entries the confirmed bundle
// covers (`export.confirmations`). Real docker-registry upstream.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FERRY_MAIN, runFerry, type FerryRun } from '../helpers/ferry-cli.js';
import { pushTestImage, skopeoInspect } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

function ok(r: FerryRun, what: string): FerryRun {
  if (r.code !== 0) throw new Error(`${what}: exit ${String(r.code)}\n${r.stdout}\n${r.stderr}`);
  return r;
}

describe('ferry gc --store inside', () => {
  let dir: string;
  let up: RunningRegistry;
  let serve: ChildProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-gc-inside-'));
    up = await startRegistry();
  });

  afterAll(async () => {
    serve?.kill('SIGKILL');
    await up?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps what imported bundles carried into the store; the chain, a further export and serve still work', async () => {
    ok(await runFerry(['keygen', '--out', join(dir, 'ferry')]), 'keygen');
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(cfg, `version: 1\nstore: ./store\nregistries:\n  - host: ${up.host}\n    tls: plain-http\nimages:\n  - name: a\n    source: ${up.host}/team/a\n    target: mirror/a\nexport:\n  signingKey: ${join(dir, 'ferry.key')}\n`);
    const inside = join(dir, 'inside');
    let n = 0;
    const ids: string[] = [];
    const hop = async (seed: string, multiArch = false): Promise<string> => {
      await pushTestImage(up.host, 'team/a', { tag: 'v1', seed, layerSizes: [4096, 8192], multiArch });
      ok(await runFerry(['sync', '-c', cfg]), `sync ${seed}`);
      const out = join(dir, `out${++n}`);
      ids.push((JSON.parse(ok(await runFerry(['export', '-c', cfg, '--out', out, '--json']), `export ${seed}`).stdout) as { id: string }).id);
      const tar = join(out, readdirSync(out).find((f) => f.endsWith('.tar'))!);
      ok(await runFerry(['import', tar, '--trust', join(dir, 'ferry.pub'), '--store', inside, '--json']), `import ${seed}`);
      return tar;
    };
    await hop('inside-1', true);
    await hop('inside-2');

    // v1 moved, but its first image (an index, two platform manifests, configs, layers) stays:
    // the bundles carried it into this store, and a later bundle lists such blobs in `requires`
    // rather than carrying them again (the ledger beside the store says which they are).
    const dry = await runFerry(['gc', '--store', inside, '--min-age', '0', '--dry-run', '--json']);
    ok(dry, 'gc --dry-run');
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, droppedSources: [], manifests: 0, blobs: 0, bytes: 0 });
    const done = JSON.parse(ok(await runFerry(['gc', '--store', inside, '--min-age', '0', '--json']), 'gc').stdout) as unknown;
    expect(done).toMatchObject({ dryRun: false, droppedSources: [], manifests: 0, blobs: 0 });
    const fsck = await runFerry(['fsck', '--store', inside, '--json']);
    expect(JSON.parse(fsck.stdout)).toMatchObject({ ok: true, problems: [], unreferenced: [] });
    expect(fsck.code).toBe(0);

    // The next bundle still imports: its chain and requires check against what gc kept, even
    // when v1 returns to an image whose layers gc removed.
    await hop('inside-1', true);
    await hop('inside-3');
    ok(await runFerry(['fsck', '--store', inside]), 'fsck after more imports');

    // Outside, with the second bundle confirmed, gc compacts the journal entries it covers: v1's
    // first two (each superseded by a later move); without confirmations none.
    expect(JSON.parse(ok(await runFerry(['gc', '-c', cfg, '--dry-run', '--json']), 'gc outside').stdout)).toMatchObject({ journal: 0 });
    writeFileSync(join(dir, 'confirmed.txt'), `${ids[1]!}\n`);
    writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}  confirmations: ${join(dir, 'confirmed.txt')}\n`);
    expect(JSON.parse(ok(await runFerry(['gc', '-c', cfg, '--dry-run', '--json']), 'gc outside').stdout)).toMatchObject({ dryRun: true, journal: 2 });
    expect(ok(await runFerry(['gc', '-c', cfg]), 'gc outside').stdout).toContain('compacted 2 journal entries every confirmed bundle covers');

    // A further hop: ferry export from the inside store.
    const cfg2 = join(dir, 'inside.yaml');
    writeFileSync(cfg2, `version: 1\nstore: ./inside\nimages: []\nexport:\n  signingKey: ${join(dir, 'ferry.key')}\n`);
    const out2 = join(dir, 'hop2');
    ok(await runFerry(['export', '-c', cfg2, '--out', out2]), 'export from inside');
    const tar2 = join(out2, readdirSync(out2).find((f) => f.endsWith('.tar'))!);
    ok(await runFerry(['import', tar2, '--trust', join(dir, 'ferry.pub'), '--store', join(dir, 'far'), '--json']), 'import hop 2');
    ok(await runFerry(['fsck', '--store', join(dir, 'far')]), 'fsck hop 2');

    // ferry serve serves the inside store's tag to skopeo.
    const child = spawn(process.execPath, [FERRY_MAIN, 'serve', '--store', inside, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serve = child;
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /serving on http:\/\/(\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`ferry serve exited ${String(code)}`)));
    });
    const seen = (await skopeoInspect(`${url}/mirror/a:v1`)) as { Digest: string };
    expect(seen.Digest).toMatch(/^sha256:/);
  });
});
