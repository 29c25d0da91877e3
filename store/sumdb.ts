/**
 * The checksum-database part of the index: verified tree heads per database (a history, the
 * newest is the one Ferry trusts), files kept as blobs by database path (tiles, raw lookups),
 * and the record that vouches for each module version. Proofs are the caller's job (sumdb/):
 * this module only refuses to move a head backwards or sideways.
 */
import type Database from 'better-sqlite3';
import { FerryError } from '../errors/index.js';
import type { Digest } from '../oci/index.js';

/** The schema step that adds these tables (appended to MIGRATIONS in db.ts). */
export const SUMDB_MIGRATION = `
  CREATE TABLE sumdb_heads (
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    hash        TEXT NOT NULL,
    note        TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    exported    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, size)
  ) WITHOUT ROWID;

  CREATE TABLE sumdb_files (
    name       TEXT NOT NULL,
    path       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, path)
  ) WITHOUT ROWID;

  CREATE TABLE sumdb_records (
    name        TEXT NOT NULL,
    module      TEXT NOT NULL,
    version     TEXT NOT NULL,
    record_id   INTEGER NOT NULL CHECK (record_id >= 0),
    text        TEXT NOT NULL,
    lookup_path TEXT NOT NULL,
    head_size   INTEGER NOT NULL,
    checked_at  TEXT NOT NULL,
    PRIMARY KEY (name, module, version)
  ) WITHOUT ROWID;
  CREATE INDEX sumdb_records_module ON sumdb_records(module, version);
`;

/** A verified tree head of a checksum database. */
export interface SumdbHeadRow {
  readonly name: string;
  readonly size: number;
  /** Base64 root hash. */
  readonly hash: string;
  /** The exact signed tree note. */
  readonly note: string;
  readonly verifiedAt: string;
  /** True once a bundle has handed this head out (clients may have cached it). */
  readonly exported: boolean;
}

/** A database file kept as a blob: a tile or a raw lookup body. */
export interface SumdbFileRow {
  readonly name: string;
  /** Path under the database base, e.g. `tile/8/0/x001/234.p/7` or `lookup/m@v1.0.0`. */
  readonly path: string;
  readonly digest: Digest;
  readonly size: number;
}

/** The record vouching for a module version. */
export interface SumdbRecordRow {
  readonly name: string;
  readonly module: string;
  readonly version: string;
  readonly recordId: number;
  /** The record text (go.sum lines) exactly as hashed into the log. */
  readonly text: string;
  /** The sumdb file holding the raw lookup body as received. */
  readonly lookupPath: string;
  /** Size of the tree the record was proved against. */
  readonly headSize: number;
  readonly checkedAt: string;
}

type Run = <T>(op: string, fn: () => T) => T;

interface HeadDbRow {
  name: string;
  size: number;
  hash: string;
  note: string;
  verified_at: string;
  exported: number;
}

interface RecordDbRow {
  name: string;
  module: string;
  version: string;
  record_id: number;
  text: string;
  lookup_path: string;
  head_size: number;
  checked_at: string;
}

function headRow(r: HeadDbRow): SumdbHeadRow {
  return { name: r.name, size: r.size, hash: r.hash, note: r.note, verifiedAt: r.verified_at, exported: r.exported === 1 };
}

function recordRow(r: RecordDbRow): SumdbRecordRow {
  return {
    name: r.name,
    module: r.module,
    version: r.version,
    recordId: r.record_id,
    text: r.text,
    lookupPath: r.lookup_path,
    headSize: r.head_size,
    checkedAt: r.checked_at,
  };
}

/** Typed queries over the checksum-database tables. */
export class SumdbIndex {
  constructor(
    private readonly db: Database.Database,
    private readonly run: Run,
    private readonly iso: () => string,
  ) {}

  /** The newest verified head of a database. */
  latestHead(name: string): SumdbHeadRow | undefined {
    return this.run('sumdbLatestHead', () => {
      const r = this.db.prepare('SELECT * FROM sumdb_heads WHERE name = ? ORDER BY size DESC LIMIT 1').get(name) as HeadDbRow | undefined;
      return r && headRow(r);
    });
  }

  /** Every verified head of a database, oldest first. */
  heads(name: string): SumdbHeadRow[] {
    return this.run('sumdbHeads', () => (this.db.prepare('SELECT * FROM sumdb_heads WHERE name = ? ORDER BY size').all(name) as HeadDbRow[]).map(headRow));
  }

  /**
   * Records a head that the caller has proved consistent with the newest one. A smaller head,
   * or one of the same size with another hash, is SUMDB_INCONSISTENT; the same head is a no-op.
   * Returns true when the head was new.
   */
  putHead(name: string, size: number, hash: string, note: string): boolean {
    return this.run('sumdbPutHead', () =>
      this.db
        .transaction(() => {
          const latest = this.db.prepare('SELECT * FROM sumdb_heads WHERE name = ? ORDER BY size DESC LIMIT 1').get(name) as HeadDbRow | undefined;
          if (latest) {
            if (size === latest.size && hash === latest.hash) return false;
            if (size <= latest.size) {
              throw new FerryError(
                'SUMDB_INCONSISTENT',
                `checksum database ${name}: refusing tree#${size} (${hash}): the newest verified head is tree#${latest.size} (${latest.hash}); a log never shrinks or changes`,
                { op: 'sumdbPutHead' },
              );
            }
          }
          this.db.prepare('INSERT INTO sumdb_heads (name, size, hash, note, verified_at) VALUES (?, ?, ?, ?, ?)').run(name, size, hash, note, this.iso());
          return true;
        })
        .immediate(),
    );
  }

  /** Marks a head as handed out by a bundle. */
  markExported(name: string, size: number): void {
    this.run('sumdbMarkExported', () => {
      this.db.prepare('UPDATE sumdb_heads SET exported = 1 WHERE name = ? AND size = ?').run(name, size);
    });
  }

  /** Records (or replaces) the blob behind a database file; the blob must already be stored. */
  putFile(name: string, path: string, digest: Digest, size: number): void {
    this.run('sumdbPutFile', () => {
      this.db
        .prepare(
          `INSERT INTO sumdb_files (name, path, digest, size, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(name, path) DO UPDATE SET digest = excluded.digest, size = excluded.size`,
        )
        .run(name, path, digest, size, this.iso());
    });
  }

  /** One database file. */
  getFile(name: string, path: string): SumdbFileRow | undefined {
    return this.run('sumdbGetFile', () => {
      const r = this.db.prepare('SELECT name, path, digest, size FROM sumdb_files WHERE name = ? AND path = ?').get(name, path) as SumdbFileRow | undefined;
      return r && { name: r.name, path: r.path, digest: r.digest, size: r.size };
    });
  }

  /** The files of a database whose path starts with `prefix`, by path. */
  listFiles(name: string, prefix = ''): SumdbFileRow[] {
    return this.run('sumdbListFiles', () =>
      this.db
        .prepare(`SELECT name, path, digest, size FROM sumdb_files WHERE name = ? AND substr(path, 1, ?) = ? ORDER BY path`)
        .all(name, prefix.length, prefix) as SumdbFileRow[],
    );
  }

  /** The databases that have a file at `path` (e.g. `supported`: those an import carried in). */
  namesWithFile(path: string): string[] {
    return this.run('sumdbNamesWithFile', () => this.db.prepare('SELECT DISTINCT name FROM sumdb_files WHERE path = ? ORDER BY name').pluck().all(path) as string[]);
  }

  /** Records the record vouching for a module version (replacing an earlier one). */
  putRecord(r: Omit<SumdbRecordRow, 'checkedAt'>): void {
    this.run('sumdbPutRecord', () => {
      this.db
        .prepare(
          `INSERT INTO sumdb_records (name, module, version, record_id, text, lookup_path, head_size, checked_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(name, module, version) DO UPDATE SET record_id = excluded.record_id, text = excluded.text,
             lookup_path = excluded.lookup_path, head_size = excluded.head_size, checked_at = excluded.checked_at`,
        )
        .run(r.name, r.module, r.version, r.recordId, r.text, r.lookupPath, r.headSize, this.iso());
    });
  }

  /** The record of a module version in a database. */
  getRecord(name: string, module: string, version: string): SumdbRecordRow | undefined {
    return this.run('sumdbGetRecord', () => {
      const r = this.db.prepare('SELECT * FROM sumdb_records WHERE name = ? AND module = ? AND version = ?').get(name, module, version) as RecordDbRow | undefined;
      return r && recordRow(r);
    });
  }

  /** Every record of a database (or of all databases), by module and version. */
  listRecords(name?: string): SumdbRecordRow[] {
    return this.run('sumdbListRecords', () => {
      const rows = (
        name === undefined
          ? this.db.prepare('SELECT * FROM sumdb_records ORDER BY name, module, version').all()
          : this.db.prepare('SELECT * FROM sumdb_records WHERE name = ? ORDER BY module, version').all(name)
      ) as RecordDbRow[];
      return rows.map(recordRow);
    });
  }

  /** The databases with a head or a record. */
  names(): string[] {
    return this.run('sumdbNames', () =>
      this.db.prepare('SELECT name FROM sumdb_heads UNION SELECT name FROM sumdb_records ORDER BY name').pluck().all() as string[],
    );
  }
}
