/**
 * Go module versions and module lists. A version is recorded once its .info, .mod (and .zip)
 * blobs are stored, and journaled when new or changed. One commit carries the version row, its
 * journal entry and the rows of blob files placed for it with `index: false`: the blob rows
 * through content.ts's PlacedBlobs, the entry through tags.ts's JournalAppend, both written
 * inside this part's transaction.
 */
import { FerryError, toFerryError } from '../errors/index.js';
import { parseDigest, type Digest } from '../oci/index.js';
import type { IndexDb } from './db.js';
import type { JournalAppend } from './tags.js';
import type {
  ChangeResult,
  ModuleListRow,
  ModuleVersionFilter,
  ModuleVersionInput,
  ModuleVersionRow,
  ModuleVersionSized,
  PutModuleVersionOptions,
  UnindexedBlob,
} from './types.js';

/** What the modules part asks of the content family (content.ts) for blobs placed without a row. */
export interface PlacedBlobs {
  /**
   * The size of `d`'s file in place, or undefined when absent: taken from this process's
   * record of what it placed when that says `expected`, else from one stat.
   */
  sizeInPlace(d: Digest, expected: number): number | undefined;
  /** True when the blob has an index row. */
  isIndexed(d: Digest): boolean;
  /** Writes the rows of blob files in place, inside the caller's transaction. */
  insertRows(blobs: readonly UnindexedBlob[], at: string): void;
  /** Forgets that these blobs await their rows, once the caller's transaction committed. */
  recorded(blobs: readonly UnindexedBlob[]): void;
}

/** What the runs part may write of module lists: a root's list digest, inside its own transaction. */
export interface ModuleListWrite {
  /** Records a module's `@v/list` digest seen now, inside the caller's transaction. */
  writeList(module: string, listDigest: string): void;
}

interface ModuleDbRow {
  module: string;
  version: string;
  time: string;
  info_digest: string;
  mod_digest: string;
  zip_digest: string | null;
  h1_zip: string | null;
  h1_mod: string;
  root: string;
  retracted: string | null;
  updated_at: string;
}

function moduleRow(r: ModuleDbRow): ModuleVersionRow {
  return {
    module: r.module,
    version: r.version,
    time: r.time,
    infoDigest: r.info_digest as Digest,
    modDigest: r.mod_digest as Digest,
    zipDigest: r.zip_digest as Digest | null,
    h1Zip: r.h1_zip,
    h1Mod: r.h1_mod,
    root: r.root,
    retracted: r.retracted,
    updatedAt: r.updated_at,
  };
}

/** A module entry of putMany: the version and its options. */
export interface PutModuleVersionEntry {
  readonly row: ModuleVersionInput;
  readonly opts?: PutModuleVersionOptions;
}

/** Go module versions and the `@v/list` digests of module roots. */
export class StoreModules implements ModuleListWrite {
  constructor(
    private readonly db: IndexDb,
    private readonly placed: PlacedBlobs,
    private readonly journal: JournalAppend,
  ) {}

  /** One stored module version. */
  get(module: string, version: string): ModuleVersionRow | undefined {
    return this.db.run('getModuleVersion', () => {
      const r = this.db.cached('SELECT * FROM module_versions WHERE module = ? AND version = ?').get(module, version) as ModuleDbRow | undefined;
      return r && moduleRow(r);
    });
  }

  /**
   * Records a module version whose .info, .mod (and .zip) blobs are stored (BLOB_UNKNOWN
   * otherwise); journals it when new or changed.
   */
  put(row: ModuleVersionInput, opts: PutModuleVersionOptions = {}): ChangeResult {
    this.db.assertWritable('putModuleVersion');
    this.check(row, opts);
    const blobs = opts.blobs ?? [];
    const r = this.db.write('putModuleVersion', (): ChangeResult => this.upsert(row, blobs));
    this.placed.recorded(blobs);
    return r;
  }

  /**
   * Records several module versions in one commit (one fsync), each checked as by put: an
   * entry that fails its checks gets its error in its place and is not recorded; the others
   * are. A failing commit throws for all.
   */
  putMany(entries: readonly PutModuleVersionEntry[]): Array<ChangeResult | FerryError> {
    this.db.assertWritable('putModuleVersions');
    const out: Array<ChangeResult | FerryError> = [];
    const good: Array<{ row: ModuleVersionInput; blobs: readonly UnindexedBlob[] }> = [];
    const at: number[] = [];
    for (const e of entries) {
      try {
        this.check(e.row, e.opts ?? {});
        at.push(out.length);
        good.push({ row: e.row, blobs: e.opts?.blobs ?? [] });
        out.push({ changed: false });
      } catch (err) {
        out.push(toFerryError(err, 'INTERNAL', { module: e.row.module, version: e.row.version }));
      }
    }
    if (good.length > 0) {
      this.db.write('putModuleVersions', (): ChangeResult[] => good.map((g) => this.upsert(g.row, g.blobs))).forEach((r, i) => (out[at[i]!] = r));
    }
    for (const g of good) this.placed.recorded(g.blobs);
    return out;
  }

  /** The checks of put: digests well-formed, every file stored or in place. */
  private check(row: ModuleVersionInput, opts: PutModuleVersionOptions): void {
    const where = `putModuleVersion ${row.module}@${row.version}`;
    const pending = new Map<Digest, number>();
    for (const b of opts.blobs ?? []) {
      parseDigest(b.digest, `${where} blob`);
      // Rows follow files: a blob recorded here must already be in place with its size.
      if (this.placed.sizeInPlace(b.digest, b.size) !== b.size) {
        throw new FerryError('BLOB_UNKNOWN', `${where}: blob ${b.digest} is not in place with ${b.size} bytes; write it before recording it`, {
          op: 'putModuleVersion',
          module: row.module,
          version: row.version,
          digest: b.digest,
        });
      }
      pending.set(b.digest, b.size);
    }
    const files: Array<[string, Digest | null]> = [
      ['info', row.infoDigest],
      ['mod', row.modDigest],
      ['zip', row.zipDigest],
    ];
    for (const [kind, d] of files) {
      if (d === null) continue;
      parseDigest(d, `${where} ${kind}`);
      if (!pending.has(d) && !this.placed.isIndexed(d)) {
        throw new FerryError('BLOB_UNKNOWN', `${where}: the .${kind} blob ${d} is not stored; store files before recording the version`, {
          op: 'putModuleVersion',
          module: row.module,
          version: row.version,
          digest: d,
        });
      }
    }
    if ((row.zipDigest === null) !== (row.h1Zip === null)) {
      throw new FerryError('USAGE', `${where}: zipDigest and h1Zip must both be set or both be null`, { module: row.module, version: row.version });
    }
  }

  /** The body of put; runs inside the caller's transaction. */
  private upsert(row: ModuleVersionInput, blobs: readonly UnindexedBlob[]): ChangeResult {
    const now = this.db.iso();
    // The version's blob rows (files already in place) share its commit: one fsync, not four.
    if (blobs.length > 0) this.placed.insertRows(blobs, now);
    const old = this.get(row.module, row.version);
    const next = { ...row, retracted: row.retracted ?? null };
    const changed =
      old === undefined ||
      (['time', 'infoDigest', 'modDigest', 'zipDigest', 'h1Zip', 'h1Mod', 'root', 'retracted'] as const).some((k) => old[k] !== next[k]);
    if (!changed) return { changed: false };
    this.db
      .cached(
        `INSERT INTO module_versions (module, version, time, info_digest, mod_digest, zip_digest, h1_zip, h1_mod, root, retracted, updated_at)
         VALUES (@module, @version, @time, @infoDigest, @modDigest, @zipDigest, @h1Zip, @h1Mod, @root, @retracted, @now)
         ON CONFLICT(module, version) DO UPDATE SET
           time = excluded.time, info_digest = excluded.info_digest, mod_digest = excluded.mod_digest,
           zip_digest = excluded.zip_digest, h1_zip = excluded.h1_zip, h1_mod = excluded.h1_mod,
           root = excluded.root, retracted = excluded.retracted, updated_at = excluded.updated_at`,
      )
      .run({ ...next, now });
    const seq = this.journal.appendModule({ at: now, digest: next.zipDigest ?? next.modDigest, source: row.root, module: row.module, version: row.version });
    return { changed: true, seq };
  }

  /** Stored module versions matching the filter, ordered by module then version text. */
  list(f: ModuleVersionFilter = {}): ModuleVersionRow[] {
    return this.db.run('listModuleVersions', () => {
      const where: string[] = [];
      const args: string[] = [];
      if (f.module !== undefined) {
        where.push('module = ?');
        args.push(f.module);
      }
      if (f.withZip === true) where.push('zip_digest IS NOT NULL');
      if (f.withZip === false) where.push('zip_digest IS NULL');
      const sql = `SELECT * FROM module_versions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY module, version`;
      return (this.db.sql.prepare(sql).all(...args) as ModuleDbRow[]).map(moduleRow);
    });
  }

  /** Every stored module version with its zip's size (null without a zip), by module then version text, in one pass. */
  listWithSizes(): ModuleVersionSized[] {
    return this.db.run('listModuleVersionsSized', () =>
      this.db.sql
        .prepare(
          `SELECT v.module, v.version, v.time, v.retracted, b.size AS zipSize FROM module_versions v
           LEFT JOIN blobs b ON b.digest = v.zip_digest ORDER BY v.module, v.version`,
        )
        .all() as ModuleVersionSized[],
    );
  }

  /** Every (module, version, file, digest) a module version needs whose blob is not indexed (for fsck). */
  missingBlobs(): Array<{ module: string; version: string; file: string; digest: Digest }> {
    return this.db.run('moduleMissingBlobs', () =>
      this.db.sql
        .prepare(
          `SELECT module, version, file, digest FROM (
             SELECT module, version, 'info' AS file, info_digest AS digest FROM module_versions
             UNION ALL SELECT module, version, 'mod', mod_digest FROM module_versions
             UNION ALL SELECT module, version, 'zip', zip_digest FROM module_versions WHERE zip_digest IS NOT NULL
           ) m WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest) ORDER BY module, version, file`,
        )
        .all() as Array<{ module: string; version: string; file: string; digest: Digest }>,
    );
  }

  /** The `@v/list` digest recorded at the last check of a module. */
  getList(module: string): ModuleListRow | undefined {
    return this.db.run('getModuleList', () => {
      const r = this.db.sql.prepare('SELECT list_digest, checked_at FROM module_lists WHERE module = ?').get(module) as
        | { list_digest: string; checked_at: string }
        | undefined;
      return r && { listDigest: r.list_digest, checkedAt: r.checked_at };
    });
  }

  /** Records the `@v/list` digest seen now, so an unchanged list can skip work next time. */
  setList(module: string, listDigest: string): void {
    this.db.assertWritable('setModuleList');
    this.db.run('setModuleList', () => this.upsertList(module, listDigest));
  }

  /** Records a module's `@v/list` digest seen now, inside the caller's transaction (store/ only: runs.ts). */
  writeList(module: string, listDigest: string): void {
    this.db.assertInTransaction('writeModuleList');
    this.upsertList(module, listDigest);
  }

  private upsertList(module: string, listDigest: string): void {
    this.db.sql
      .prepare(
        `INSERT INTO module_lists (module, list_digest, checked_at) VALUES (?, ?, ?)
         ON CONFLICT(module) DO UPDATE SET list_digest = excluded.list_digest, checked_at = excluded.checked_at`,
      )
      .run(module, listDigest, this.db.iso());
  }
}
