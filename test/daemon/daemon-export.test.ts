// Automatic bundles: a scheduled export writes a verified incremental bundle when something
// changed and nothing otherwise; retention keeps the newest N and spares unconfirmed bundles.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrustedKey } from '../../bundle/keys.js';
import { verifyBundle } from '../../bundle/verify.js';
import { Daemon, EXPORT_DUE_FILE, listBundlesOnDisk, parseConfirmations, pruneBundles, type DaemonStatus } from '../../daemon/index.js';
import { pushTestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { get, metric, waitFor } from './daemon-fixtures.js';

const silent = pino({ level: 'silent' });

describe('daemon: scheduled export', () => {
  let reg: RunningRegistry;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-daemon-export-'));
    reg = await startRegistry();
    const { privateKey, publicKey } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(join(dir, 'signing.pem'), privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'signing.pub.pem'), publicKey);
  });

  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a verified bundle when a tag changed, and none when nothing changed', async () => {
    await pushTestImage(reg.host, 'exp/app', { tag: 'v1', seed: 'exp-v1' });
    const file = join(dir, 'ferry.yaml');
    const out = join(dir, 'outbox');
    writeFileSync(
      file,
      [
        'version: 1',
        'store: ./store',
        'schedule: "*/2 * * * * *"',
        'registries:',
        `  - host: ${reg.host}`,
        '    tls: plain-http',
        'images:',
        '  - name: app',
        `    source: ${reg.host}/exp/app`,
        'export:',
        '  schedule: "*/3 * * * * *"',
        '  signingKey: ./signing.pem',
        '  out: ./outbox',
        '  keep: 5',
        '',
      ].join('\n'),
    );
    const d = new Daemon({ configFile: file, logger: silent, listen: '127.0.0.1:0', processMetrics: false });
    await d.start();
    const base = `http://127.0.0.1:${d.address!.port}`;
    const status = async (): Promise<DaemonStatus> => JSON.parse((await get(`${base}/status`)).body) as DaemonStatus;
    try {
      const first = await waitFor('the first bundle', async () => (await status()).lastBundle ?? undefined);
      expect(first.sequence).toBe(1);
      const trust = [await loadTrustedKey(join(dir, 'signing.pub.pem'))];
      const v1 = await verifyBundle(out, { trust });
      expect(v1.manifest.id).toBe(first.id);
      expect(v1.manifest.images.map((i) => i.tag)).toEqual(['v1']);
      expect(existsSync(join(out, EXPORT_DUE_FILE))).toBe(true);

      // Two more export runs with nothing new: no second bundle.
      const firstRunAt = (await status()).export!.lastRun!.finishedAt;
      await waitFor('an export run that found nothing new', async () => {
        const e = (await status()).export!.lastRun!;
        return e.finishedAt > firstRunAt && e.skippedReason !== undefined;
      });
      expect((await status()).lastBundle?.id).toBe(first.id);
      expect(readdirSync(out).filter((f) => f.endsWith('.parts.json'))).toHaveLength(1);

      // A changed tag gives an incremental bundle whose parent is the first.
      await pushTestImage(reg.host, 'exp/app', { tag: 'v1', seed: 'exp-v1-rebuilt' });
      const second = await waitFor('the second bundle', async () => {
        const b = (await status()).lastBundle;
        return b && b.id !== first.id ? b : undefined;
      });
      expect(second.sequence).toBe(2);
      const v2 = await verifyBundle(out, { trust, name: second.id.replace(/-[0-9a-f]{8}$/, '') });
      expect(v2.manifest.parent).toBe(first.id);
      expect(v2.manifest.images.map((i) => i.tag)).toEqual(['v1']);
      const m = (await get(`${base}/metrics`)).body;
      expect(metric(m, 'ferry_bundles_exported_total')).toBe(2);
      expect(metric(m, 'ferry_bundle_exported_bytes_total')).toBeGreaterThan(0);
      expect((await status()).export).toMatchObject({ name: 'export', kind: 'export', schedule: '*/3 * * * * *', lastError: null });
    } finally {
      await d.stop();
    }
  });

  it('a missed export (due time passed while down) runs after the catch-up sync', async () => {
    await pushTestImage(reg.host, 'missed/app', { tag: 'v1', seed: 'missed-v1' });
    const sub = join(dir, 'missed');
    mkdirSync(join(sub, 'outbox'), { recursive: true });
    const file = join(sub, 'ferry.yaml');
    writeFileSync(
      file,
      `version: 1\nstore: ./store\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: app\n    source: ${reg.host}/missed/app\nexport:\n  schedule: "0 0 4 * * 0"\n  signingKey: ${join(dir, 'signing.pem')}\n  out: ./outbox\n`,
    );
    writeFileSync(join(sub, 'outbox', EXPORT_DUE_FILE), '2000-01-02T04:00:00.000Z\n');
    const d = new Daemon({ configFile: file, logger: silent, processMetrics: false });
    await d.start();
    try {
      const b = await waitFor('the catch-up bundle', () => d.status().lastBundle ?? undefined);
      expect(b.sequence).toBe(1);
      await d.whenIdle();
      // The next due time is remembered again, in the future this time.
      const due = new Date(readFileSync(join(sub, 'outbox', EXPORT_DUE_FILE), 'utf8').trim());
      expect(due.getTime()).toBeGreaterThan(Date.now());
    } finally {
      await d.stop();
    }
  });

  it('a lifecycle change alone is due: the next scheduled export carries it, then nothing until the next change', async () => {
    await pushTestImage(reg.host, 'life/app', { tag: 'v1', seed: 'life-v1' });
    const sub = join(dir, 'life');
    mkdirSync(sub);
    const file = join(sub, 'ferry.yaml');
    const config = (lifecycle: string): string =>
      `version: 1\nstore: ./store\nschedule: "0 0 4 1 1 *"\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\n` +
      `images:\n  - name: app\n    source: ${reg.host}/life/app\n${lifecycle}` +
      `export:\n  schedule: "*/2 * * * * *"\n  signingKey: ${join(dir, 'signing.pem')}\n  out: ./outbox\n`;
    writeFileSync(file, config(''));
    const d = new Daemon({ configFile: file, logger: silent, processMetrics: false });
    await d.start();
    try {
      await d.trigger('app');
      const first = await waitFor('the first bundle', () => d.status().lastBundle ?? undefined);
      const trust = [await loadTrustedKey(join(dir, 'signing.pub.pem'))];
      const name = (id: string): string => id.replace(/-[0-9a-f]{8}$/, '');
      expect((await verifyBundle(join(sub, 'outbox'), { trust, name: name(first.id) })).manifest.lifecycle).toBeUndefined();

      // Deprecated in the configuration, no tag moved: the next export round writes a bundle that says so.
      writeFileSync(file, config('    lifecycle: deprecated\n    note: use life/next\n'));
      expect((await d.reload()).ok).toBe(true);
      const second = await waitFor('the lifecycle bundle', () => {
        const b = d.status().lastBundle;
        return b && b.id !== first.id ? b : undefined;
      });
      const m2 = (await verifyBundle(join(sub, 'outbox'), { trust, name: name(second.id) })).manifest;
      expect(m2.images).toEqual([]);
      expect(m2.lifecycle).toEqual([{ kind: 'image', name: 'app', target: 'life/app', state: 'deprecated', note: 'use life/next' }]);

      // Said once: the rounds after it skip.
      const after = d.status().export!.lastRun!.finishedAt;
      await waitFor('an export round that found nothing to say', () => {
        const e = d.status().export!.lastRun!;
        return e.finishedAt > after && e.skippedReason !== undefined ? e : undefined;
      });
      expect(d.status().lastBundle?.id).toBe(second.id);

      // Active again: importers learn it only from a bundle, so one more is due.
      writeFileSync(file, config(''));
      expect((await d.reload()).ok).toBe(true);
      const third = await waitFor('the bundle saying the source is active again', () => {
        const b = d.status().lastBundle;
        return b && b.id !== second.id ? b : undefined;
      });
      expect((await verifyBundle(join(sub, 'outbox'), { trust, name: name(third.id) })).manifest.lifecycle).toBeUndefined();
    } finally {
      await d.stop();
    }
  });

  it('retention keeps the newest N and never deletes a bundle not confirmed as imported', async () => {
    const out = join(dir, 'retention');
    mkdirSync(out);
    const ids: string[] = [];
    for (let i = 1; i <= 4; i++) {
      const name = `ferry-2025010${i}-000${i}`;
      const id = `${name}-0000000${i}`;
      ids.push(id);
      writeFileSync(join(out, `${name}.parts.json`), JSON.stringify({ formatVersion: 1, bundleId: id, name, parts: [] }));
      writeFileSync(join(out, `${name}.parts.json.sig`), 'sig');
      writeFileSync(join(out, `${name}.tar`), 'tar');
    }
    writeFileSync(join(out, 'import.sh'), '#!/bin/sh\n');
    writeFileSync(join(out, 'ferry-20250101-0001-notes.txt'), 'not a bundle file');
    expect((await listBundlesOnDisk(out)).map((b) => b.id)).toEqual([...ids].reverse());

    // Confirmations configured but no file yet: nothing is confirmed, nothing deleted.
    const conf = join(dir, 'imported.txt');
    const none = await pruneBundles({ dir: out, keep: 2, confirmations: conf });
    expect(none.removed).toEqual([]);
    expect(none.unconfirmed).toHaveLength(2);

    writeFileSync(conf, `# imported inside\n${ids[0]}  2025-01-03 ok\n`);
    const some = await pruneBundles({ dir: out, keep: 2, confirmations: conf });
    expect(some.removed).toEqual(['ferry-20250101-0001']);
    expect(some.unconfirmed).toEqual(['ferry-20250102-0002']);
    expect(existsSync(join(out, 'ferry-20250101-0001.tar'))).toBe(false);
    expect(existsSync(join(out, 'ferry-20250101-0001.parts.json.sig'))).toBe(false);
    expect(existsSync(join(out, 'ferry-20250101-0001-notes.txt'))).toBe(true);
    expect(existsSync(join(out, 'import.sh'))).toBe(true);

    // Without confirmations, keep alone decides.
    const all = await pruneBundles({ dir: out, keep: 2 });
    expect(all.removed).toEqual(['ferry-20250102-0002']);
    expect(all.kept).toEqual(['ferry-20250104-0004', 'ferry-20250103-0003']);
  });

  it('reads confirmations as text or JSON', () => {
    expect([...parseConfirmations('a-1\n# c\n\nb-2 imported 2025\n')]).toEqual(['a-1', 'b-2']);
    expect([...parseConfirmations('["a-1", {"id": "b-2"}, {"bundleId": "c-3"}]')]).toEqual(['a-1', 'b-2', 'c-3']);
    expect([...parseConfirmations('{"imported": [{"id": "d-4", "at": "x"}]}')]).toEqual(['d-4']);
    expect(() => parseConfirmations('{oops', 'f.json')).toThrow(/f\.json: not valid JSON/);
  });
});
