// Headless Chromium from Debian (/usr/bin/chromium), driven by playwright-core, for the page
// tests: a fresh profile per launch, no browser download, nothing that phones home. Each page
// records every request it made, every dialog, every uncaught error and console message, so a
// test can assert that no request left the server under test and that injected markup stayed inert.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium (scripts/setup.mjs installs it for `npm test`). */
export const CHROMIUM = '/usr/bin/chromium';

/** Where the test run writes screenshots (gitignored). */
export const SCREENSHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../.screenshots');

/** Chromium flags: headless, no sandbox (tests may run as root), nothing in the background. */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** What a page did. */
export interface PageRecord {
  readonly requests: string[];
  readonly dialogs: string[];
  readonly errors: string[];
  readonly console: string[];
}

/** A launched browser with its own profile directory. */
export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new page whose activity is recorded. */
  open(): Promise<{ page: Page; record: PageRecord }>;
  /** Writes a full-page screenshot to .screenshots/NAME.png; returns the path. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

/** Launches Debian's chromium headless with a fresh --user-data-dir. */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'ferry-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  return {
    context,
    async open() {
      const page = await context.newPage();
      const record: PageRecord = { requests: [], dialogs: [], errors: [], console: [] };
      page.on('request', (r) => record.requests.push(r.url()));
      page.on('dialog', (d) => {
        record.dialogs.push(`${d.type()}: ${d.message()}`);
        void d.dismiss();
      });
      page.on('pageerror', (e) => record.errors.push(e.message));
      page.on('console', (m) => record.console.push(`${m.type()}: ${m.text()}`));
      return { page, record };
    },
    async screenshot(page, name) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const file = join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The requests of a record that went anywhere but `origin` (e.g. `http://127.0.0.1:1234`). */
export function foreignRequests(record: PageRecord, origin: string): string[] {
  return record.requests.filter((u) => new URL(u).origin !== origin);
}
