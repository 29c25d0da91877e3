// One export at a time per store: two exports racing for the bundle sequence (the daemon's
// scheduled one and an operator's `ferry export`) must not both do the work; the second is
// refused at once with EXPORT_BUSY naming the holder, before it writes anything. A holder
// killed with SIGKILL leaves a stale lock that the next export replaces.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, writeKeyPair } from '../../bundle/index.js';
import { Daemon } from '../../daemon/index.js';
import { Store } from '../../store/index.js';
import { assertBuilt, runFerry } from '../helpers/ferry-cli.js';

const silent = pino({ level: 'silent' });
const DIST_STORE = fileURLToPath(new URL('../../dist/store/index.js', import.meta.url));

function bundleFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('ferry-')) : [];
}

describe('export lock', () => {
  let dir: string;
  let key: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-export-lock-'));
    key = (await writeKeyPair(join(dir, 'ferry'))).privateKeyPath;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('of two exports started together in one process, the second is refused before it writes anything', async () => {
    const store = Store.open(join(dir, 'store-a'));
    try {
      const out = join(dir, 'out-a');
      const [a, b] = await Promise.allSettled([
        exportBundle({ store, outDir: out, signingKey: key }),
        exportBundle({ store, outDir: out, signingKey: key }),
      ]);
      expect(a.status).toBe('fulfilled');
      expect(b).toMatchObject({ status: 'rejected', reason: { code: 'EXPORT_BUSY' } });
      expect((b as PromiseRejectedResult).reason.message).toContain(`process ${process.pid}`);
      // Only the winner's bundle (tar, parts.json and its signature) is there.
      const name = (a as PromiseFulfilledResult<{ name: string }>).value.name;
      expect(bundleFiles(out).sort()).toEqual([`${name}.parts.json`, `${name}.parts.json.sig`, `${name}.tar`]);
      expect(store.bundles.list().map((x) => x.sequence)).toEqual([1]);
      // Released at the end: the next export runs.
      expect((await exportBundle({ store, outDir: out, signingKey: key })).sequence).toBe(2);
    } finally {
      store.close();
    }
  });

  it('ferry export refuses at once while another process holds the lock, and runs after the holder was killed', async () => {
    assertBuilt();
    const storeDir = join(dir, 'store-b');
    const out = join(dir, 'out-b');
    const cfg = join(dir, 'ferry-b.yaml');
    writeFileSync(cfg, `version: 1\nstore: ${storeDir}\nexport:\n  signingKey: ${key}\n  out: ${out}\n`);

    // Held by this (live) test process.
    const store = Store.open(storeDir);
    const lock = store.bundles.lockExport();
    try {
      const r = await runFerry(['export', '-c', cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('another export is running');
      expect(r.stderr).toContain(`process ${process.pid}`);
      expect(bundleFiles(out)).toEqual([]);
    } finally {
      lock.release();
      store.close();
    }

    // Held by a process that is then killed with SIGKILL: its lock is stale.
    const holder = spawn(
      process.execPath,
      ['--input-type=module', '-e', `import { Store } from ${JSON.stringify(DIST_STORE)}; Store.open(${JSON.stringify(storeDir)}).bundles.lockExport(); process.stdout.write('locked\\n'); setInterval(() => {}, 1 << 30);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let said = '';
    holder.stdout.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: string) => {
        said += d;
        if (said.includes('locked')) resolve();
      });
      holder.once('exit', (code) => reject(new Error(`lock holder exited early (${String(code)})`)));
    });
    const busy = await runFerry(['export', '-c', cfg]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain(`process ${holder.pid}`);
    const exited = once(holder, 'exit');
    holder.kill('SIGKILL');
    await exited;

    const ok = await runFerry(['export', '-c', cfg, '--json']);
    expect(ok.stderr).not.toContain('another export');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ sequence: 1 });
    expect(bundleFiles(out).filter((f) => f.endsWith('.tar'))).toHaveLength(1);
  });

  it('a lock recorded on another host (the store moved, e.g. a recreated container) is taken over', async () => {
    const storeDir = join(dir, 'store-moved');
    Store.open(storeDir).close();
    // What a process on the store's previous host left: its pid may well be alive here.
    const db = new Database(join(storeDir, 'ferry.db'));
    db.prepare(`INSERT INTO meta (key, value) VALUES ('lock:export', ?)`).run(
      JSON.stringify({ pid: process.pid, host: 'previous-home.example', token: 'left-behind', since: '2024-01-01T00:00:00.000Z' }),
    );
    db.close();
    const store = Store.open(storeDir);
    try {
      expect((await exportBundle({ store, outDir: join(dir, 'out-moved'), signingKey: key })).sequence).toBe(1);
    } finally {
      store.close();
    }
  });

  it("the daemon's scheduled export skips its round while another export runs, and exports in the next", async () => {
    const sub = join(dir, 'daemon');
    const file = join(sub, 'ferry.yaml');
    const out = join(sub, 'outbox');
    rmSync(sub, { recursive: true, force: true });
    const text = `version: 1\nstore: ./store\nexport:\n  schedule: "0 0 4 1 1 *"\n  signingKey: ${key}\n  out: ./outbox\n`;
    mkdirSync(sub, { recursive: true });
    writeFileSync(file, text);
    // Something to export: a journal entry (a module version whose files are stored).
    const seed = Store.open(join(sub, 'store'));
    const info = await seed.content.writeBlobBytes(undefined, Buffer.from('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}'));
    const mod = await seed.content.writeBlobBytes(undefined, Buffer.from('module example.com/m\n'));
    seed.modules.put({ module: 'example.com/m', version: 'v1.0.0', time: '2024-01-01T00:00:00Z', infoDigest: info.digest, modDigest: mod.digest, zipDigest: null, h1Zip: null, h1Mod: 'h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', root: 'example.com/m' });
    const lock = seed.bundles.lockExport();
    const d = new Daemon({ configFile: file, logger: silent, processMetrics: false, catchUp: false });
    await d.start();
    try {
      await d.trigger('export');
      const skipped = d.status().export!.lastRun!;
      expect(skipped).toMatchObject({ ok: true });
      expect(skipped.skippedReason).toContain('another export is running');
      expect(bundleFiles(out).filter((f) => f.endsWith('.tar'))).toEqual([]);
      lock.release();
      await d.trigger('export');
      expect(d.status().export!.lastRun!.skippedReason).toBeUndefined();
      expect(d.status().lastBundle?.sequence).toBe(1);
      expect(bundleFiles(out).filter((f) => f.endsWith('.tar'))).toHaveLength(1);
    } finally {
      lock.release();
      await d.stop();
      seed.close();
    }
  });
});
