// The `ferry` command line as users run it: `node dist/ferry.mjs` in a child process, against
// a real docker-registry on 127.0.0.1 (through an in-process proxy where a test needs to slow
// or damage the traffic). Requires a build (`npm run build`; `npm test` builds first).
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../oci/index.js';
import { assertBuilt, collectRun, runFerry, spawnFerry } from '../helpers/ferry-cli.js';
import { OciLayoutBuilder, pushLayout, skopeoInspect, type Layer } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const BIG = 200 * 1024 * 1024;

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes `size` seeded pseudo-random bytes (AES-CTR keystream, 1 MiB at a time) as a layout blob. */
async function writeBigBlob(layout: OciLayoutBuilder, size: number, seed: string): Promise<Layer> {
  const key = createHash('sha256').update(`ferry-big:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const hash = createHash('sha256');
  const tmp = join(layout.dir, 'big.tmp');
  const out = createWriteStream(tmp);
  const zeros = Buffer.alloc(1024 * 1024);
  for (let left = size; left > 0; left -= zeros.length) {
    const chunk = cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const digest = `sha256:${hash.digest('hex')}` as const;
  await rename(tmp, layout.blobPath(digest));
  // An uncompressed layer: its diff ID is its digest. Nobody unpacks it in these tests.
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size, diffId: digest };
}

/** An HTTP forwarder to the registry that can slow blob bodies down or flip a byte in chosen blobs. */
interface Proxy {
  readonly host: string;
  throttle: boolean;
  readonly corrupt: Set<string>;
  stop(): Promise<void>;
}

async function startProxy(target: string): Promise<Proxy> {
  const [thost, tport] = target.split(':') as [string, string];
  const state = { throttle: false, corrupt: new Set<string>() };
  const server: Server = createServer((req, res) => {
    const up = httpRequest({ host: thost, port: Number(tport), method: req.method, path: req.url, headers: { ...req.headers, host: target } }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
      const slow = state.throttle && digest !== undefined && req.method === 'GET';
      let flip = digest !== undefined && state.corrupt.has(digest) && req.method === 'GET';
      upRes.on('data', (chunk: Buffer) => {
        if (flip && chunk.length > 0) {
          chunk = Buffer.from(chunk);
          chunk[0] = (chunk[0] as number) ^ 0xff;
          flip = false;
        }
        res.write(chunk);
        if (slow) {
          // About 64 KiB per 20 ms: a 200 MB blob takes minutes, so a kill lands mid-body.
          upRes.pause();
          setTimeout(() => upRes.resume(), 20);
        }
      });
      upRes.on('end', () => res.end());
      upRes.on('error', () => res.destroy());
      res.on('close', () => upRes.destroy());
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    get throttle() {
      return state.throttle;
    },
    set throttle(v: boolean) {
      state.throttle = v;
    },
    corrupt: state.corrupt,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('ferry CLI', () => {
  let dir: string;

  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-cli-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('--help exits 0 and lists the commands', async () => {
    const r = await runFerry(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['sync', 'status', 'fsck']) expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, 'm'));
  });

  it('an unknown command exits 2', async () => {
    const r = await runFerry(['synk']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('synk');
  });

  describe('configuration errors exit 2 before anything is created', () => {
    it('a misspelt key names file:line:col and the key path', async () => {
      const file = join(dir, 'typo.yaml');
      writeFileSync(file, 'version: 1\nstore: ./typo-store\nimages:\n  - sorce: 127.0.0.1:5000/team/app\n');
      const r = await runFerry(['sync', '-c', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${file}:4:5`);
      expect(r.stderr).toContain('images[0].sorce');
      expect(r.stderr).toContain('did you mean "source"');
      expect(existsSync(join(dir, 'typo-store'))).toBe(false);
    });

    it('a value of the wrong type names the key', async () => {
      const file = join(dir, 'type.yaml');
      writeFileSync(file, 'version: 1\nstore: ./type-store\nconcurrency: lots\n');
      const r = await runFerry(['sync', '-c', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${file}:3:14`);
      expect(r.stderr).toMatch(/concurrency: expected number, got string "lots"/);
      expect(existsSync(join(dir, 'type-store'))).toBe(false);
    });

    it('a missing configuration file exits 2', async () => {
      const r = await runFerry(['sync', '-c', join(dir, 'nope.yaml')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('nope.yaml');
    });

    it('config check reports the same error', async () => {
      const r = await runFerry(['config', 'check', join(dir, 'typo.yaml')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('images[0].sorce');
    });
  });

  describe('against a real registry', () => {
    let reg: RunningRegistry;
    let proxy: Proxy;
    let layout: OciLayoutBuilder;
    let big: Layer;
    const corruptLayers: string[] = [];

    beforeAll(async () => {
      reg = await startRegistry();
      proxy = await startProxy(reg.host);
      layout = await OciLayoutBuilder.create();
      const small = await layout.addImage({ layers: [await layout.addLayer({ size: 10_000, seed: 'cli-small' })] });
      await layout.tag('small', small);
      await pushLayout(layout.dir, 'small', `${reg.host}/team/small:v1`);
      // Several small layers the proxy damages: each one fails its digest check.
      const bad: Layer[] = [];
      for (let i = 0; i < 6; i++) bad.push(await layout.addLayer({ size: 3000, seed: `cli-corrupt-${i}` }));
      corruptLayers.push(...bad.map((l) => l.digest));
      const corrupt = await layout.addImage({ layers: bad });
      await layout.tag('corrupt', corrupt);
      await pushLayout(layout.dir, 'corrupt', `${reg.host}/team/corrupt:v1`);
      big = await writeBigBlob(layout, BIG, 'cli-big');
      const bigImg = await layout.addImage({ layers: [await layout.addLayer({ size: 2000, seed: 'cli-big-base' }), big] });
      await layout.tag('big', bigImg);
      await pushLayout(layout.dir, 'big', `${reg.host}/team/big:v1`);
    });

    afterAll(async () => {
      await proxy?.stop();
      await reg?.stop();
      await layout?.remove();
    });

    function config(name: string, images: Record<string, string>, host = proxy.host): string {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        `version: 1\nstore: ./${name}-store\nlog:\n  level: warn\nregistries:\n  - host: ${host}\n    tls: plain-http\nimages:\n` +
          Object.entries(images)
            .map(([n, repo]) => `  - name: ${n}\n    source: ${host}/${repo}\n`)
            .join(''),
      );
      return file;
    }

    it('--only with an unknown source exits 2', async () => {
      const file = config('only', { small: 'team/small' });
      const r = await runFerry(['sync', '-c', file, '--only', 'x']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--only x');
    });

    it('sync --json prints one summary object and exits 1 when one image failed', async () => {
      const file = config('json', { small: 'team/small', missing: 'team/does-not-exist' });
      const r = await runFerry(['sync', '-c', file, '--json']);
      expect(r.code, r.stderr).toBe(1);
      const s = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(s).toMatchObject({
        ok: false,
        images: { checked: 2, changed: 1, unchanged: 0, failed: 1 },
        blobs: { fetched: 2 },
      });
      expect((s['blobs'] as { bytes: number }).bytes).toBeGreaterThan(10_000);
      expect(typeof s['durationMs']).toBe('number');
      expect(s['failures']).toMatchObject([{ source: 'missing' }]);

      // Only the small image is stored, and the store is sound.
      const f = await runFerry(['fsck', '-c', file]);
      expect(f.code, f.stdout + f.stderr).toBe(0);
      // The second run changes nothing for the good image.
      const again = JSON.parse((await runFerry(['sync', '-c', file, '--json', '--only', 'small'])).stdout) as Record<string, unknown>;
      expect(again).toMatchObject({ ok: true, images: { checked: 1, changed: 0, unchanged: 1, failed: 0 }, blobs: { fetched: 0, bytes: 0 } });
    });

    it('damaged blobs fail the image with DIGEST_MISMATCH and a summary, not a crash', async () => {
      for (const d of corruptLayers) proxy.corrupt.add(d);
      try {
        const file = config('corrupt', { corrupt: 'team/corrupt' });
        const r = await runFerry(['sync', '-c', file, '--json']);
        expect(r.stderr).not.toContain('internal error');
        expect(r.stderr).not.toMatch(/^\s+at /m);
        expect(r.code, r.stderr).toBe(1);
        const s = JSON.parse(r.stdout) as { failures: Array<{ code: string; message: string }> };
        expect(s.failures).toHaveLength(1);
        expect(s.failures[0]?.code).toBe('DIGEST_MISMATCH');
        expect(corruptLayers.some((d) => s.failures[0]?.message.includes(d))).toBe(true);
        const f = await runFerry(['fsck', '-c', file, '--json']);
        expect(f.code, f.stdout).toBe(0);
      } finally {
        proxy.corrupt.clear();
      }
    });

    it('after kill -9 mid-blob the next sync completes, fsck is clean and status reports it', async () => {
      const file = config('kill', { big: 'team/big' });
      const store = join(dir, 'kill-store');
      const tmp = join(store, 'tmp');
      proxy.throttle = true;
      let partial = 0;
      try {
        const child = spawnFerry(['sync', '-c', file]);
        const done = collectRun(child);
        // Wait for a temp file that holds part of the big blob and is still growing.
        let last = -1;
        for (let i = 0; i < 2400; i++) {
          await delay(50);
          if (child.exitCode !== null) break;
          const sizes = existsSync(tmp) ? readdirSync(tmp).map((n) => statSync(join(tmp, n), { throwIfNoEntry: false })?.size ?? 0) : [];
          const biggest = Math.max(0, ...sizes);
          if (biggest > 1024 * 1024 && last > 0 && biggest > last) {
            partial = biggest;
            break;
          }
          last = biggest;
        }
        expect(child.exitCode, 'the first sync must still be running').toBeNull();
        expect(partial).toBeGreaterThan(0);
        expect(partial).toBeLessThan(BIG);
        child.kill('SIGKILL');
        const killed = await done;
        expect(killed.signal).toBe('SIGKILL');
      } finally {
        proxy.throttle = false;
      }
      // The partial file is still there: nothing cleaned up after the kill.
      expect(readdirSync(tmp).length).toBeGreaterThan(0);

      const r = await runFerry(['sync', '-c', file, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as { images: unknown; blobs: { fetched: number; bytes: number } };
      expect(s.images).toEqual({ checked: 1, changed: 1, unchanged: 0, failed: 0 });
      expect(s.blobs.bytes).toBeGreaterThanOrEqual(BIG);
      expect(readdirSync(tmp)).toEqual([]);

      const f = await runFerry(['fsck', '-c', file, '--json']);
      expect(f.code, f.stdout).toBe(0);
      expect(JSON.parse(f.stdout)).toMatchObject({ ok: true, problems: [] });

      const upstream = sha256Digest(Buffer.from((await skopeoInspect(`${reg.host}/team/big:v1`, { raw: true })) as string, 'utf8'));
      const st = await runFerry(['status', '-c', file, '--json']);
      expect(st.code, st.stderr).toBe(0);
      const status = JSON.parse(st.stdout) as {
        stats: { tags: number; blobs: number };
        tags: Array<{ registry: string; repository: string; tag: string; digest: string; source: string }>;
        runs: Array<{ kind: string; status: string }>;
        sources: Array<{ source: string; ok: boolean }>;
      };
      expect(status.tags).toMatchObject([{ registry: proxy.host, repository: 'team/big', tag: 'v1', digest: upstream, source: 'big' }]);
      expect(status.stats.tags).toBe(1);
      // Newest first: the completed run, then the killed one, marked aborted when the store reopened.
      expect(status.runs.map((x) => [x.kind, x.status])).toEqual([
        ['sync', 'ok'],
        ['sync', 'aborted'],
      ]);
      expect(status.sources).toMatchObject([{ source: 'big', ok: true }]);
    });
  });
});
