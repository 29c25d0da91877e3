// A bundle id names one signed manifest. A bundle that reuses an imported bundle's id with other
// content (re-signed with the trusted key, or an altered copy) is refused with BUNDLE_CONFLICT
// naming both digests, and nothing is imported; the same bundle again stays a no-op. Ledgers
// written before the digest was kept are compared on what they recorded.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferEntry, type TrustedKey } from '../../bundle/index.js';
import { importBundles } from '../../importer/index.js';

import { Ledger, LEDGER_MIGRATIONS } from '../../store/index.js';
import { makeFixture, makeKeys, writeFixture, type Fixture } from '../bundle/fixtures.js';
import { runFerry } from '../helpers/ferry-cli.js';

const ID = 'ferry-20240101-0001-0a1b2c3d';

describe('import: one id, one bundle', () => {
  let dir: string;
  let trust: TrustedKey[];
  let pubPath: string;
  let fx: Fixture;
  /** The bundle as exported. */
  let original: { tar: string; digest: string };
  /** Same id, sequence, parent, store and time; other content (its @v/list), signed with the same key. */
  let resigned: { tar: string; digest: string };
  /** Same id, another creation time. */
  let other: { tar: string; digest: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-import-conflict-'));
    const keys = await makeKeys(dir);
    trust = keys.trust;
    pubPath = keys.pubPath;
    fx = await makeFixture(dir, { id: ID });
    const write = async (name: string, f: Fixture): Promise<{ tar: string; digest: string }> => {
      mkdirSync(join(dir, name));
      const r = await writeFixture(join(dir, name), f, keys.privateKey);
      return { tar: r.files.find((x) => x.endsWith('.tar'))!, digest: `sha256:${r.manifestSha256}` };
    };
    original = await write('original', fx);
    const entries = fx.entries.map((e) => (e.path === fx.modPaths.list ? bufferEntry(e.path, Buffer.from('v0.9.0\nv1.0.0\n')) : e));
    resigned = await write('resigned', { ...fx, entries });
    other = await write('other', { ...fx, manifest: { ...fx.manifest, created: '2024-01-02T00:00:00Z' } });
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a re-signed bundle with an imported id, naming both digests; the same bundle again is a no-op', async () => {
    const gomodDir = join(dir, 'gomod');
    const ledger = Ledger.open(join(dir, 'ledger.db'));
    try {
      const first = await importBundles({ bundles: [original.tar], trust, gomodDir, ledger });
      expect(first.bundles[0]).toMatchObject({ id: ID, status: 'imported', manifestDigest: original.digest });
      expect(ledger.getBundle(ID, `gomod:${resolve(gomodDir)}`)?.manifestDigest).toBe(original.digest);
      const list = readFileSync(join(gomodDir, 'example.com', '!hello', '@v', 'list'), 'utf8');

      const err = await importBundles({ bundles: [resigned.tar], trust, gomodDir, ledger }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'BUNDLE_CONFLICT' });
      expect((err as Error).message).toContain(ID);
      expect((err as Error).message).toContain(original.digest);
      expect((err as Error).message).toContain(resigned.digest);
      // Nothing of it arrived, and the ledger still holds the first bundle.
      expect(readFileSync(join(gomodDir, 'example.com', '!hello', '@v', 'list'), 'utf8')).toBe(list);
      expect(ledger.bundleRecords(ID).map((r) => [r.result, r.manifestDigest])).toEqual([['ok', original.digest]]);

      const again = await importBundles({ bundles: [original.tar], trust, gomodDir, ledger });
      expect(again.bundles[0]).toMatchObject({ status: 'already-imported' });
      expect(again.warnings).toEqual([]);
    } finally {
      ledger.close();
    }

    // The command line: exit 1 with both digests named.
    const ledgerArgs = ['--ledger', join(dir, 'ledger.db')];
    const cli = await runFerry(['import', resigned.tar, '--trust', pubPath, '--gomod-dir', gomodDir, ...ledgerArgs]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(original.digest);
    expect(cli.stderr).toContain(resigned.digest);
    const same = await runFerry(['import', original.tar, '--trust', pubPath, '--gomod-dir', gomodDir, ...ledgerArgs]);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('already imported');
  });

  it('refuses two bundles with one id and different content named in one import', async () => {
    const ledger = Ledger.open(join(dir, 'ledger-two.db'));
    try {
      const err = await importBundles({ bundles: [original.tar, resigned.tar], trust, gomodDir: join(dir, 'gomod-two'), ledger }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'BUNDLE_CONFLICT' });
      expect((err as Error).message).toContain(original.digest);
      expect((err as Error).message).toContain(resigned.digest);
      expect(ledger.listBundles()).toEqual([]);
    } finally {
      ledger.close();
    }
  });

  it('a ledger written before digests were kept migrates, and is compared on what it recorded', async () => {
    const gomodDir = resolve(join(dir, 'gomod-legacy'));
    const file = join(dir, 'legacy.db');
    // A ledger at schema 1 with one successful import of the original bundle.
    const db = new Database(file);
    db.exec(LEDGER_MIGRATIONS[0]!);
    db.pragma('user_version = 1');
    db.prepare(
      `INSERT INTO bundles (id, target, sequence, parent, chain, source_store, created, started_at, finished_at, result, error, summary)
       VALUES (?, ?, 1, NULL, '[]', 'store-test', '2024-01-01T00:00:00Z', '2024-01-03T00:00:00.000Z', '2024-01-03T00:00:01.000Z', 'ok', NULL, NULL)`,
    ).run(ID, `gomod:${gomodDir}`);
    db.close();

    // Read-only (ferry ledger right after an upgrade): read as it is.
    const ro = Ledger.open(file, { readonly: true });
    try {
      expect(ro.chainStatus()[0]?.bundles.map((b) => [b.id, b.result, b.manifestDigest])).toEqual([[ID, 'ok', null]]);
    } finally {
      ro.close();
    }

    const ledger = Ledger.open(file);
    try {
      expect(ledger.bundleRecords(ID)).toHaveLength(1);
      // Another creation time: a different bundle under the same id.
      const err = await importBundles({ bundles: [other.tar], trust, gomodDir, ledger }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'BUNDLE_CONFLICT' });
      expect((err as Error).message).toContain('created 2024-01-01T00:00:00Z vs 2024-01-02T00:00:00Z');
      expect((err as Error).message).toContain(other.digest);
      // Everything recorded matches: accepted as imported, saying the content could not be compared.
      const again = await importBundles({ bundles: [original.tar], trust, gomodDir, ledger });
      expect(again.bundles[0]).toMatchObject({ status: 'already-imported' });
      expect(again.warnings.join('\n')).toContain('could not be compared');
    } finally {
      ledger.close();
    }
  });
});
