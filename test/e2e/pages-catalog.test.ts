// The catalog page of `ferry serve` in a real browser (Debian's headless chromium): what a store
// synced from a real docker-registry and GOPROXY holds, and what a Go module tree imported from a
// signed bundle holds with the bundle recorded in its ledger. The filter narrows the tables; an
// annotation carrying markup stays inert; every request the page makes goes to Ferry itself.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../registry/index.js';
import { makeCosignKey, pushCosignSignature } from '../helpers/cosign.js';
import { runFerry, spawnFerry } from '../helpers/ferry-cli.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { OciLayoutBuilder, pushLayout } from '../helpers/images.js';
import { foreignRequests, launchBrowser, type TestBrowser } from '../helpers/pages.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';

/** An upstream description annotation that tries everything an attacker would. */
const EVIL = `<script>window.__pwned='script';fetch('http://198.51.100.7/x')</script>"><img src=x onerror="window.__pwned='img'">`;
const PSEUDO = 'v0.0.0-20240301000000-abcdefabcdef';

/**
 * Run in the page: the contrast ratio (WCAG 2 relative luminance) of each kind of text against
 * the background it is drawn on, keyed by a selector naming it.
 */
const CONTRAST = `(() => {
  const lum = (c) => {
    const [r, g, b] = c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map((v) => Number(v) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (!/rgba\\(.*, 0\\)$/.test(c) && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const out = {};
  for (const sel of ['h1', 'p.muted', 'nav a', 'td.wrap', 'pre code', '.badge', 'footer', 'thead th', 'tbody tr:nth-child(even) td']) {
    const el = document.querySelector(sel);
    if (!el) continue;
    const a = lum(getComputedStyle(el).color);
    const b = lum(bg(el));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
})()`;

/** Starts `ferry serve ARGS --listen 127.0.0.1:0` and returns its URL. */
async function startFerryServe(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawnFerry(['serve', ...args, '--listen', '127.0.0.1:0']);
  const url = await new Promise<string>((ok, fail) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /serving on (http:\/\/\S+)/.exec(out);
      if (m) ok(m[1]!);
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => fail(new Error(`ferry serve exited ${code}: ${err}`)));
  });
  return { url, child };
}

describe('the catalog page in a browser', () => {
  let dir: string;
  let up: RunningRegistry;
  let goproxy: StaticServer;
  let layout: OciLayoutBuilder;
  let browser: TestBrowser;
  const serves: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-pages-catalog-'));
    up = await startRegistry();
    layout = await OciLayoutBuilder.create();
    const base = await layout.addLayer({ size: 64 * 1024, seed: 'base' });
    const amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 4000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 4000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const golang = await layout.addIndex([amd, arm]);
    await layout.tag('1.22', golang);
    await pushLayout(layout.dir, '1.22', `${up.host}/library/golang:1.22`);
    // golang:1.22 is signed upstream, as `cosign sign --key` leaves it: the sync brings the signature.
    const key = await makeCosignKey();
    const client = new RegistryClient({ host: up.host, tls: 'plain-http' });
    try {
      await pushCosignSignature(client, 'library/golang', golang.digest, key, `${up.host}/library/golang`);
    } finally {
      await client.close();
      await key.remove();
    }
    const tool = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'tool' })], annotations: { 'org.opencontainers.image.description': EVIL } });
    await layout.tag('v1', tool);
    await pushLayout(layout.dir, 'v1', `${up.host}/team/tool:v1`);
    await buildProxyTree(join(dir, 'proxy'), [
      { path: 'example.com/greet', version: 'v1.0.0' },
      { path: 'example.com/greet', version: 'v1.1.0' },
      { path: 'example.com/nightly', version: PSEUDO },
    ]);
    goproxy = await serveDir(join(dir, 'proxy'));
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
        `images:\n  - source: ${up.host}/library/golang\n    target: mirror/golang\n  - source: ${up.host}/team/tool\n` +
        `goModules:\n  proxy: ${goproxy.url}\n  sumdb: "off"\n  modules:\n    - path: example.com/greet\n      versions: [v1.0.0, v1.1.0]\n    - path: example.com/nightly\n      versions: [${PSEUDO}]\n` +
        `export:\n  signingKey: ${join(dir, 'keys', 'ferry.key')}\n  out: ${join(dir, 'out')}\n`,
    );
    mkdirSync(join(dir, 'keys'));
    for (const args of [['keygen', '--out', join(dir, 'keys', 'ferry')], ['sync', '-c', cfg], ['export', '-c', cfg]]) {
      const r = await runFerry(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    const tar = readdirSync(join(dir, 'out')).find((f) => f.endsWith('.tar'));
    const imp = await runFerry(['import', join(dir, 'out', tar!), '--trust', join(dir, 'keys', 'ferry.pub'), '--gomod-dir', join(dir, 'tree')]);
    expect(imp.code, imp.stderr).toBe(0);
    browser = await launchBrowser();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    for (const c of serves) c.kill('SIGTERM');
    await Promise.all([up?.stop(), goproxy?.stop()]);
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows what the synced store holds, narrows with the filter, keeps the annotation inert and loads nothing from elsewhere', async () => {
    const { url, child } = await startFerryServe(['--store', join(dir, 'store')]);
    serves.push(child);
    const { page, record } = await browser.open();
    const res = await page.goto(`${url}/`);
    expect(res?.status()).toBe(200);
    await page.waitForLoadState('networkidle');
    expect(await page.locator('h1').textContent()).toBe('Ferry catalog');
    expect((await page.locator('h3').allTextContents()).sort()).toEqual(['mirror/golang', 'team/tool']);
    const golang = page.locator('section[aria-label="mirror/golang"] tbody tr');
    expect(await golang.count()).toBe(1);
    expect(await golang.locator('th').textContent()).toBe('1.22');
    expect(await golang.locator('td').nth(1).textContent()).toBe('linux/amd64, linux/arm64/v8');
    // The signature the sync brought is marked, its digest in the cell's title.
    const signed = golang.locator('td.attachments');
    expect(await signed.isVisible()).toBe(true);
    expect(await signed.textContent()).toBe('signed');
    expect(await signed.getAttribute('title')).toMatch(/^signature sha256:[0-9a-f]{64} \(tag sha256-[0-9a-f]{64}\.sig\)$/);
    expect(await golang.locator('td').nth(5).locator('code').textContent()).toBe(`docker pull ${new URL(url).host}/mirror/golang:1.22`);
    expect(await page.locator('section[aria-label="team/tool"] tbody td').nth(1).textContent()).toBe('linux/amd64');
    // The annotation is shown as text, exactly as upstream wrote it, and nothing of it ran.
    expect(await page.getByText(EVIL, { exact: true }).count()).toBe(1);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(1);
    // Go modules with the pseudo-version marked, and the settings to use.
    const nightly = page.locator('tr', { has: page.locator('th', { hasText: 'example.com/nightly' }) });
    expect(await nightly.locator('.badge').textContent()).toBe('pseudo');
    expect(await page.locator('pre code').first().textContent()).toContain(`go env -w GOPROXY=${url}`);
    await browser.screenshot(page, 'catalog');

    // Typing in the filter narrows the rows at once (the script), and the URL keeps the filter.
    await page.locator('#filter').fill('arm64');
    await expect.poll(() => page.locator('tr[data-f]:visible').count()).toBe(1);
    expect(await page.locator('tr[data-f]:visible th').textContent()).toBe('1.22');
    expect(await page.locator('#filter-count').textContent()).toMatch(/^1 of \d+ rows match$/);
    expect(new URL(page.url()).searchParams.get('q')).toBe('arm64');
    // Every word must match, in any order.
    await page.locator('#filter').fill('arm64 GOLANG');
    await expect.poll(() => page.locator('tr[data-f]:visible th').allTextContents()).toEqual(['1.22']);
    await page.locator('#filter').fill('greet');
    await expect.poll(() => page.locator('tr[data-f]:visible th').allTextContents()).toEqual(['example.com/greet']);
    await page.locator('#filter').fill('');
    await expect.poll(() => page.locator('tr[data-f]:visible').count()).toBeGreaterThan(3);
    // Keyboard focus moves from the filter to the first copy button and is drawn.
    await page.locator('#filter').focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.getAttribute("data-copy")')).toMatch(/^docker pull /);
    expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');

    // Readable contrast (WCAG AA, 4.5:1) for body text, muted text, links, states and code blocks.
    const ratios = (await page.evaluate(CONTRAST)) as Record<string, number>;
    for (const [what, r] of Object.entries(ratios)) expect(r, what).toBeGreaterThanOrEqual(4.5);
    expect(Object.keys(ratios).length).toBeGreaterThanOrEqual(5);

    expect(record.dialogs).toEqual([]);
    expect(record.errors).toEqual([]);
    expect(foreignRequests(record, new URL(url).origin)).toEqual([]);
    expect(record.requests.some((u) => u.includes('/-/ui/ferry.css'))).toBe(true);
    expect(record.requests.some((u) => u.includes('/-/ui/ferry.js'))).toBe(true);
    await page.close();
  });

  it('reads without JavaScript: the same tables, and ?q= filters on the server', async () => {
    const { url, child } = await startFerryServe(['--store', join(dir, 'store')]);
    serves.push(child);
    const page = await browser.context.newPage();
    await page.route('**/-/ui/ferry.js*', (r) => r.abort());
    await page.goto(`${url}/?q=tool`);
    expect(await page.locator('tr[data-f]:visible th').allTextContents()).toEqual(['v1']);
    await page.close();
  });

  it('shows what the imported tree holds and the bundle in its ledger', async () => {
    const { url, child } = await startFerryServe(['--gomod-dir', join(dir, 'tree')]);
    serves.push(child);
    const { page, record } = await browser.open();
    await page.goto(`${url}/`);
    await page.waitForLoadState('networkidle');
    expect(await page.locator('#images').count()).toBe(0);
    expect(await page.locator('tbody th.wrap').allTextContents()).toEqual(['example.com/greet', 'example.com/nightly']);
    const greet = page.locator('tr', { has: page.locator('th', { hasText: 'example.com/greet' }) });
    expect(await greet.locator('td.versions code').allTextContents()).toEqual(['v1.1.0', 'v1.0.0']);
    expect(await greet.locator('td').nth(1).locator('code').textContent()).toBe('go get example.com/greet@v1.1.0');
    expect(await page.locator('#bundles').textContent()).toBe('Bundles imported');
    expect(await page.locator('section[aria-labelledby="bundles"] tbody tr').count()).toBe(1);
    expect(await page.locator('section[aria-labelledby="bundles"] td.ok').textContent()).toBe('ok');
    expect(await page.locator('section[aria-labelledby="bundles"] p.ok').textContent()).toContain('No gaps');
    await browser.screenshot(page, 'catalog-tree');
    expect(record.errors).toEqual([]);
    expect(foreignRequests(record, new URL(url).origin)).toEqual([]);
    await page.close();
  });
});
