/**
 * Bundles exported from (or imported into) this store: each with the blobs and Go module files
 * it carried, chained to its parent, and the export lock that keeps two exports from racing
 * for a sequence. A bundle record must outlive a power cut (durable()): the bundle on the disc
 * already names its sequence and parent, and a store that forgot it would hand the same
 * sequence to another bundle. Its commit also makes every commit before it durable, the
 * journal entries up to its seqTo included.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { FerryError } from '../errors/index.js';
import { parseDigest, type Digest } from '../oci/index.js';
import type { IndexDb } from './db.js';
import { pidAlive, processStartTime } from './pid.js';
import type { AddBundleInput, BundleRow, LockHolder, StoreLock } from './types.js';

interface BundleDbRow {
  id: string;
  sequence: number;
  parent_id: string | null;
  created_at: string;
  seq_from: number;
  seq_to: number;
  files: string;
  sources: string | null;
  blob_count: number;
}

const BUNDLE_SELECT = `SELECT b.*, (SELECT COUNT(*) FROM bundle_blobs x WHERE x.bundle_id = b.id) AS blob_count FROM bundles b`;

const CHAIN = `WITH RECURSIVE chain(id) AS (
      SELECT id FROM bundles WHERE id = ?
      UNION SELECT b.parent_id FROM bundles b JOIN chain c ON b.id = c.id WHERE b.parent_id IS NOT NULL)`;

/** The meta key holding the newest export's lifecycle announcement. */
const EXPORTED_LIFECYCLE_KEY = 'export.lifecycle';

/** Tokens of the store locks this process holds now (a lock row with our pid and another token is a dead process's). */
const heldLockTokens = new Set<string>();

/** True while the recorded holder of a lock may still be running. */
function lockHolderLive(h: LockHolder): boolean {
  if (typeof h.pid !== 'number' || typeof h.token !== 'string') return false;
  // The index is SQLite in WAL mode, which only processes of one host may share: a holder on
  // another host is a process of the store's previous home (a recreated container, a restored
  // copy) and is not running against this store.
  if (h.host !== hostname()) return false;
  if (h.pid === process.pid) return heldLockTokens.has(h.token);
  if (!pidAlive(h.pid)) return false;
  if (h.startTime === undefined) return true;
  const now = processStartTime(h.pid);
  return now === undefined || now === h.startTime;
}

/** The bundles recorded in this store, and the export lock. */
export class StoreBundles {
  constructor(private readonly db: IndexDb) {}

  /**
   * Holds the index's page cache to `kib` KiB (per schema, the temporary one too) until the
   * returned function restores it: for an export, which reads each journal entry and tag row
   * once or twice in order, so the default cache (16 MB) would only fill with pages never read
   * again.
   */
  limitIndexCache(kib: number): () => void {
    return this.db.limitCache(kib);
  }

  /**
   * Takes the store's export lock, before any export work: one export at a time, so two never
   * race for the bundle sequence. EXPORT_BUSY names the holder when another export (in any
   * process on this host, or in this one) has it; a holder killed without releasing it (kill -9)
   * is recognised by its pid and process start time and replaced. Not a durable write: a power
   * cut ends every holder, and a lock row that outlives its holder is replaced.
   */
  lockExport(): StoreLock {
    this.db.assertWritable('lockExport');
    const startTime = processStartTime(process.pid);
    const holder: LockHolder = {
      pid: process.pid,
      ...(startTime !== undefined ? { startTime } : {}),
      host: hostname(),
      token: randomUUID(),
      since: this.db.iso(),
    };
    const held = this.takeLock('export', holder);
    if (held) {
      throw new FerryError('EXPORT_BUSY', `store ${this.db.dir}: another export is running (process ${held.pid}, since ${held.since}); try again when it has finished`, {
        op: 'export',
        file: this.db.dir,
        temporary: true,
      });
    }
    heldLockTokens.add(holder.token);
    let released = false;
    return {
      holder,
      release: () => {
        if (released) return;
        released = true;
        heldLockTokens.delete(holder.token);
        this.releaseLock('export', holder.token);
      },
    };
  }

  /**
   * Takes the named lock for `holder` in one immediate transaction, unless the recorded holder
   * is still live: then returns that holder and changes nothing.
   */
  private takeLock(name: string, holder: LockHolder): LockHolder | undefined {
    return this.db.write('takeLock', (): LockHolder | undefined => {
      const key = `lock:${name}`;
      const r = this.db.sql.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
      if (r) {
        let held: LockHolder | undefined;
        try {
          held = JSON.parse(r.value) as LockHolder;
        } catch {
          held = undefined; // an unreadable record holds nothing
        }
        if (held && lockHolderLive(held)) return held;
      }
      this.db.sql.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(holder));
      return undefined;
    });
  }

  /** Releases the named lock if `token` still holds it; false when it did not. */
  private releaseLock(name: string, token: string): boolean {
    return this.db.run('releaseLock', () => {
      const r = this.db.sql.prepare(`DELETE FROM meta WHERE key = ? AND json_extract(value, '$.token') = ?`).run(`lock:${name}`, token);
      return r.changes > 0;
    });
  }

  /** Records an exported (or imported) bundle and the blobs and module files it carried; durable. */
  add(b: AddBundleInput): void {
    this.db.assertWritable('addBundle');
    if (!Number.isSafeInteger(b.sequence) || b.sequence < 1) throw new FerryError('USAGE', `addBundle: sequence must be a positive integer, got ${b.sequence}`);
    if (b.seqFrom > b.seqTo) throw new FerryError('USAGE', `addBundle: seqFrom ${b.seqFrom} is after seqTo ${b.seqTo}`);
    const blobs = b.blobs.map((d) => parseDigest(d, `addBundle ${b.id} blob`));
    this.db.durable('addBundle', () => {
      if (this.db.sql.prepare('SELECT 1 FROM bundles WHERE id = ? OR sequence = ?').get(b.id, b.sequence) !== undefined) {
        throw new FerryError('BUNDLE_INVALID', `bundle ${b.id} (sequence ${b.sequence}) clashes with a recorded bundle`, { op: 'addBundle' });
      }
      if (b.parentId !== null && this.db.sql.prepare('SELECT 1 FROM bundles WHERE id = ?').get(b.parentId) === undefined) {
        throw new FerryError('CHAIN_BROKEN', `bundle ${b.id}: parent bundle ${b.parentId} is not recorded in this store`, { op: 'addBundle' });
      }
      this.db.sql
        .prepare('INSERT INTO bundles (id, sequence, parent_id, created_at, seq_from, seq_to, files, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(b.id, b.sequence, b.parentId, b.createdAt, b.seqFrom, b.seqTo, JSON.stringify(b.files ?? null), b.sources ? JSON.stringify([...b.sources]) : null);
      const blob = this.db.sql.prepare('INSERT OR IGNORE INTO bundle_blobs (bundle_id, digest) VALUES (?, ?)');
      for (const d of blobs) blob.run(b.id, d);
      const file = this.db.sql.prepare('INSERT OR IGNORE INTO bundle_module_files (bundle_id, path) VALUES (?, ?)');
      for (const p of b.moduleFiles ?? []) file.run(b.id, p);
      if (b.lifecycle !== undefined) {
        this.db.sql.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(EXPORTED_LIFECYCLE_KEY, b.lifecycle);
      }
    });
  }

  /** The lifecycle announcement of the newest bundle exported from this store (AddBundleInput.lifecycle), if recorded. */
  exportedLifecycle(): string | undefined {
    return this.db.getMeta(EXPORTED_LIFECYCLE_KEY);
  }

  private bundleRow(r: BundleDbRow): BundleRow {
    const files = this.db.sql.prepare('SELECT path FROM bundle_module_files WHERE bundle_id = ? ORDER BY path').pluck().all(r.id) as string[];
    return {
      id: r.id,
      sequence: r.sequence,
      parentId: r.parent_id,
      createdAt: r.created_at,
      seqFrom: r.seq_from,
      seqTo: r.seq_to,
      sources: r.sources === null ? null : (JSON.parse(r.sources) as string[]),
      files: JSON.parse(r.files) as unknown,
      moduleFiles: files,
      blobCount: r.blob_count,
    };
  }

  /** A bundle by id (string) or sequence (number). */
  get(idOrSeq: string | number): BundleRow | undefined {
    return this.db.run('getBundle', () => {
      const col = typeof idOrSeq === 'number' ? 'b.sequence' : 'b.id';
      const r = this.db.sql.prepare(`${BUNDLE_SELECT} WHERE ${col} = ?`).get(idOrSeq) as BundleDbRow | undefined;
      return r && this.bundleRow(r);
    });
  }

  /** Every bundle, by sequence. */
  list(): BundleRow[] {
    return this.db.run('listBundles', () => (this.db.sql.prepare(`${BUNDLE_SELECT} ORDER BY b.sequence`).all() as BundleDbRow[]).map((r) => this.bundleRow(r)));
  }

  /** The bundle with the highest sequence. */
  last(): BundleRow | undefined {
    return this.db.run('lastBundle', () => {
      const r = this.db.sql.prepare(`${BUNDLE_SELECT} ORDER BY b.sequence DESC LIMIT 1`).get() as BundleDbRow | undefined;
      return r && this.bundleRow(r);
    });
  }

  /** The blobs one bundle carried. */
  blobs(id: string): Digest[] {
    return this.db.run('bundleBlobs', () => this.db.sql.prepare('SELECT digest FROM bundle_blobs WHERE bundle_id = ? ORDER BY digest').pluck().all(id) as Digest[]);
  }

  /** Every blob carried by the bundle and its ancestors; CHAIN_BROKEN when the bundle is unknown. */
  blobsCarriedByChain(id: string): Set<Digest> {
    return this.carriedByChain(id, 'blobsCarriedByChain', 'SELECT DISTINCT digest FROM bundle_blobs') as Set<Digest>;
  }

  /** Every module file carried by the bundle and its ancestors; CHAIN_BROKEN when the bundle is unknown. */
  moduleFilesCarriedByChain(id: string): Set<string> {
    return this.carriedByChain(id, 'moduleFilesCarriedByChain', 'SELECT DISTINCT path FROM bundle_module_files');
  }

  private carriedByChain(id: string, op: string, select: string): Set<string> {
    const rows = this.db.run(op, () => {
      if (this.db.sql.prepare('SELECT 1 FROM bundles WHERE id = ?').get(id) === undefined) return undefined;
      return this.db.sql.prepare(`${CHAIN} ${select} WHERE bundle_id IN (SELECT id FROM chain)`).pluck().all(id) as string[];
    });
    if (!rows) throw new FerryError('CHAIN_BROKEN', `bundle ${id} is not recorded in this store`, { op });
    return new Set(rows);
  }

  /** The sequence the next bundle gets: one more than the highest recorded (1 for the first). */
  nextSequence(): number {
    return this.db.run('nextBundleSequence', () => {
      const r = this.db.sql.prepare('SELECT MAX(sequence) AS s FROM bundles').get() as { s: number | null };
      return (r.s ?? 0) + 1;
    });
  }
}
