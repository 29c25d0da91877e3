// `ferry daemon` as a child process: SIGTERM during a sync, SIGHUP reloads, and the example
// configuration. Runs the built CLI (dist/ferry.mjs, or $FERRY_CLI).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/index.js';
import { checkDaemonConfig, jobSpecs } from '../../daemon/index.js';
import { Store } from '../../store/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { get, startStallingProxy, waitFor, type StallingProxy } from './daemon-fixtures.js';

const execFileP = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = process.env['FERRY_CLI'] ?? join(root, 'dist/ferry.mjs');

interface RunningCli {
  readonly child: ChildProcess;
  /** Parsed JSON log lines so far (non-JSON lines as { raw }). */
  lines(): Array<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>;
  /** The base URL, from the "listening on" log line. */
  base(): Promise<string>;
}

function runDaemon(file: string, ...args: string[]): RunningCli {
  const child = spawn(process.execPath, [CLI, 'daemon', '-c', file, '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stderr!.on('data', (c: Buffer) => {
    const parts = (partial + c.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      if (l.trim() === '') continue;
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        lines.push({ raw: l });
      }
    }
  });
  child.stdout!.resume();
  const exited = new Promise<number | string>((res) => child.on('exit', (code, sig) => res(code ?? sig ?? 'unknown')));
  return {
    child,
    lines: () => [...lines],
    exited,
    base: async () => {
      const l = await waitFor('the "listening on" log line', () => lines.find((x) => typeof x['listen'] === 'string'));
      return `http://${String(l['listen'])}`;
    },
  };
}

async function status(base: string): Promise<{ config: string; sources: Array<{ name: string; state: string; lastRun: { ok: boolean } | null }> }> {
  return JSON.parse((await get(`${base}/status`)).body) as Awaited<ReturnType<typeof status>>;
}

describe('ferry daemon (CLI)', () => {
  let reg: RunningRegistry;
  let proxy: StallingProxy;
  let dir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-daemon-cli-'));
    reg = await startRegistry();
    proxy = await startStallingProxy(reg.host);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await proxy?.stop();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the example go-devenv.yaml passes `ferry config check` and the daemon checks', async () => {
    const example = join(root, 'examples/go-devenv.yaml');
    const { stdout } = await execFileP(process.execPath, [CLI, 'config', 'check', example]);
    expect(stdout).toMatch(/go-devenv\.yaml: ok \(5 images, 8 Go module roots/);
    const c = loadConfig(example);
    expect(() => checkDaemonConfig(c)).not.toThrow();
    expect(c.images.every((i) => JSON.stringify(i.platforms) === JSON.stringify(['linux/amd64', 'linux/arm64']))).toBe(true);
    expect(jobSpecs(c).find((j) => j.name === 'export')?.schedule).toBe('0 0 4 * * 0');
    expect(c.export?.splitSize).toBe('4GiB');
  });

  it('SIGTERM during a sync: in-flight work finishes within the grace period, exit 0, fsck clean; the next start completes', async () => {
    const img = await pushTestImage(reg.host, 'term/app', { tag: 'v1', seed: 'term-v1', layerSizes: [60_000, 20_000] });
    const file = join(dir, 'term.yaml');
    writeFileSync(file, `version: 1\nstore: ./term-store\nregistries:\n  - host: ${proxy.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${proxy.host}/term/app\n`);
    proxy.stall();
    const d = runDaemon(file, '--grace', '60');
    children.push(d.child);
    const base = await d.base();
    await waitFor('a blob download held upstream', () => proxy.held() > 0);
    expect((await status(base)).sources[0]?.state).toBe('running');
    d.child.kill('SIGTERM');
    await waitFor('the daemon to start stopping', () => d.lines().some((l) => l['msg'] === 'stopping: letting in-flight transfers finish'));
    proxy.release();
    expect(await d.exited).toBe(0);
    expect(d.lines().some((l) => String(l['msg']).includes('grace period over'))).toBe(false);
    expect(d.lines().some((l) => l['msg'] === 'daemon stopped')).toBe(true);

    const fsck = await execFileP(process.execPath, [CLI, 'fsck', '-c', file]);
    expect(fsck.stdout).toMatch(/0 problem\(s\)/);

    const again = runDaemon(file);
    children.push(again.child);
    const base2 = await again.base();
    await waitFor('the restarted sync to finish', async () => (await status(base2)).sources[0]?.lastRun?.ok === true);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    const store = Store.open(join(dir, 'term-store'), { readonly: true });
    try {
      expect(store.tags.get({ registry: proxy.host, repository: 'term/app', tag: 'v1' })?.digest).toBe(img.top.digest);
    } finally {
      store.close();
    }
  });

  it('SIGHUP: a broken file is logged and ignored; a good one brings in and syncs a new source', async () => {
    await pushTestImage(reg.host, 'hup/one', { tag: 'v1', seed: 'hup-one' });
    await pushTestImage(reg.host, 'hup/two', { tag: 'v1', seed: 'hup-two' });
    const file = join(dir, 'hup.yaml');
    const head = `version: 1\nstore: ./hup-store\nschedule: "0 0 3 * * *"\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: one\n    source: ${reg.host}/hup/one\n`;
    writeFileSync(file, head);
    const d = runDaemon(file);
    children.push(d.child);
    const base = await d.base();
    await waitFor('the first source', async () => (await status(base)).sources[0]?.lastRun?.ok === true);

    writeFileSync(file, `${head}  - name: two\n    source: ${reg.host}/hup/two\n    platforms: [linux]\n`);
    d.child.kill('SIGHUP');
    const failed = await waitFor('the reload failure in the log', () => d.lines().find((l) => String(l['msg']).startsWith('configuration reload failed')));
    expect(String(failed['err'])).toMatch(/hup\.yaml:\d+:\d+: images\[1\]\.platforms\[0\]/);
    expect((await get(`${base}/healthz`)).status).toBe(200);
    expect((await status(base)).sources.map((s) => s.name)).toEqual(['one']);
    expect(d.child.exitCode).toBeNull();

    writeFileSync(file, `${head}  - name: two\n    source: ${reg.host}/hup/two\n`);
    d.child.kill('SIGHUP');
    await waitFor('the new source to be synced', async () => (await status(base)).sources.find((s) => s.name === 'two')?.lastRun?.ok === true);
    expect(d.lines().some((l) => l['msg'] === 'configuration reloaded')).toBe(true);
    d.child.kill('SIGINT');
    expect(await d.exited).toBe(0);
  });

  it('refuses a bad --listen or --grace with exit code 2', async () => {
    const file = join(dir, 'usage.yaml');
    writeFileSync(file, 'version: 1\nstore: ./usage-store\n');
    const fail = (e: { code: number; stderr: string }): { code: number; stderr: string } => e;
    const bad = await execFileP(process.execPath, [CLI, 'daemon', '-c', file, '--grace', 'soon']).then(() => ({ code: 0, stderr: '' }), fail);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--grace soon/);
    const badListen = await execFileP(process.execPath, [CLI, 'daemon', '-c', file, '--listen', 'nowhere']).then(() => ({ code: 0, stderr: '' }), fail);
    expect(badListen.code).toBe(2);
    expect(badListen.stderr).toMatch(/HOST:PORT/);
  });
});
