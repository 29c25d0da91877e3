// The status page of `ferry daemon --listen` in a real browser (Debian's headless chromium): it
// shows every source, and after the daemon's scheduled sync, an operator's export and the inside's
// confirmation it changes by itself (polling /status), without a reload. A failing source's
// error is shown as text; every request goes to the daemon itself.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFerry, spawnFerry } from '../helpers/ferry-cli.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { OciLayoutBuilder, pushLayout } from '../helpers/images.js';
import { foreignRequests, launchBrowser, type TestBrowser } from '../helpers/pages.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

/** How long the page may take to show what the daemon did (the schedule fires every 2 s, the page polls every 3 s). */
const SHOWN = { timeout: 60_000, intervals: [250] };

describe('the daemon status page in a browser', () => {
  let dir: string;
  let up: RunningRegistry;
  let goproxy: StaticServer;
  let layout: OciLayoutBuilder;
  let browser: TestBrowser;
  let daemon: ChildProcess | undefined;
  let url = '';
  let cfg = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-pages-status-'));
    up = await startRegistry();
    layout = await OciLayoutBuilder.create();
    const img = await layout.addImage({ layers: [await layout.addLayer({ size: 32 * 1024, seed: 'status' })] });
    await layout.tag('v1', img);
    await pushLayout(layout.dir, 'v1', `${up.host}/team/app:v1`);
    await buildProxyTree(join(dir, 'proxy'), [{ path: 'example.com/greet', version: 'v1.0.0' }]);
    goproxy = await serveDir(join(dir, 'proxy'));
    mkdirSync(join(dir, 'keys'));
    expect((await runFerry(['keygen', '--out', join(dir, 'keys', 'ferry')])).code).toBe(0);
    cfg = join(dir, 'ferry.yaml');
    // Every 2 seconds, no catch-up: the page first shows sources that never ran.
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\nschedule: "*/2 * * * * *"\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
        `images:\n  - source: ${up.host}/team/app\n  - source: ${up.host}/team/gone\n` +
        `goModules:\n  proxy: ${goproxy.url}\n  sumdb: "off"\n  modules:\n    - path: example.com/greet\n      versions: [v1.0.0]\n` +
        `export:\n  signingKey: ${join(dir, 'keys', 'ferry.key')}\n  out: ${join(dir, 'out')}\n  confirmations: ${join(dir, 'confirmed.txt')}\n`,
    );
    daemon = spawnFerry(['daemon', '-c', cfg, '--listen', '127.0.0.1:0', '--no-catch-up', '--log-format', 'json']);
    url = await new Promise<string>((ok, fail) => {
      let out = '';
      const look = (c: Buffer): void => {
        out += c.toString();
        const m = /listening on (http:\/\/[0-9.:]+)/.exec(out);
        if (m) ok(m[1]!);
      };
      daemon!.stdout!.on('data', look);
      daemon!.stderr!.on('data', look);
      daemon!.once('exit', (code) => fail(new Error(`ferry daemon exited ${code}: ${out}`)));
    });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    daemon?.kill('SIGTERM');
    await Promise.all([up?.stop(), goproxy?.stop()]);
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('changes after a sync, an export and a confirmation, without a reload', async () => {
    const { page, record } = await browser.open();
    const res = await page.goto(`${url}/`);
    expect(res?.status()).toBe(200);
    expect(await page.locator('h1').textContent()).toBe('Ferry daemon');
    const row = (name: string) => page.locator('section[aria-labelledby="sources"] tbody tr', { has: page.locator('th', { hasText: name }) });
    expect(await page.locator('section[aria-labelledby="sources"] tbody th').allTextContents()).toEqual(expect.arrayContaining([`${up.host}/team/app`, `${up.host}/team/gone`]));
    // A marker that a reload would lose.
    await page.evaluate('window.__sameDocument = true');

    // The schedule runs: the page shows the outcome by itself.
    await expect.poll(() => row(`${up.host}/team/app`).locator('td').nth(2).textContent(), SHOWN).toMatch(/^ok, /);
    // Later runs found nothing new; each shows its duration and what it fetched.
    expect(await row(`${up.host}/team/app`).locator('td').nth(2).textContent()).toMatch(/^ok, \d+(\.\d)? (ms|s), \d+(\.\d)? (B|KiB) in \d+ blobs?/);
    await expect.poll(() => row(`${up.host}/team/gone`).locator('td').nth(5).textContent(), SHOWN).toMatch(/\S/);
    expect(await row(`${up.host}/team/gone`).locator('td .bad').first().textContent()).not.toBe('');
    await expect.poll(() => page.locator('#store-size').textContent(), SHOWN).toMatch(/KiB in \d+ blobs; 1 tag, 1 module version$/);
    await expect.poll(() => page.locator('#pending-summary').textContent(), SHOWN).toMatch(/^1 tag and 1 module version/);
    expect(await page.locator('section[aria-labelledby="pending"] tbody th.tag').textContent()).toBe('v1');

    // An operator's export: the bundle appears, not confirmed; then the inside confirms it.
    const exp = await runFerry(['export', '-c', cfg, '--json']);
    expect(exp.code, exp.stderr).toBe(0);
    const id = (JSON.parse(exp.stdout) as { id: string }).id;
    const bundleRow = page.locator('section[aria-labelledby="bundles"] tbody tr', { has: page.locator('code', { hasText: id }) });
    await expect.poll(() => bundleRow.locator('td').last().textContent(), SHOWN).toBe('not confirmed yet');
    await expect.poll(() => page.locator('#pending-summary').textContent(), SHOWN).toMatch(/^Nothing/);
    writeFileSync(join(dir, 'confirmed.txt'), `${id}\n`);
    await expect.poll(() => bundleRow.locator('td').last().textContent(), SHOWN).toBe('confirmed imported');
    expect(await page.evaluate('window.__sameDocument')).toBe(true);
    await browser.screenshot(page, 'status');

    expect(record.dialogs).toEqual([]);
    expect(record.errors).toEqual([]);
    expect(foreignRequests(record, new URL(url).origin)).toEqual([]);
    expect(record.requests.filter((u) => new URL(u).pathname === '/status').length).toBeGreaterThan(1);
    await page.close();
  });
});
