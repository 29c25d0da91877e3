/**
 * The checksum-database part of the index: verified tree heads per database (a history, the
 * newest is the one Ferry trusts), files kept as blobs by database path (tiles, raw lookups),
 * and the record that vouches for each module version. Proofs are the caller's job (sumdb/):
 * this part only refuses to move a head backwards or sideways. Its tables are schema step 2
 * (migrations.ts); a file's blob goes in through content.ts before its row is written.
 */
import { FerryError } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import type { IndexDb } from './db.js';
import type { StoreContent } from './content.js';

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

/** What the checksum-database part asks of the content family: small blobs in and out. */
export type SumdbBlobs = Pick<StoreContent, 'writeBlobBytes' | 'readBlobBytes'>;

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

/** Checksum databases: verified heads, files kept as blobs, and the records that vouch for versions. */
export class StoreSumdb {
  constructor(
    private readonly db: IndexDb,
    private readonly blobs: SumdbBlobs,
  ) {}

  /** The newest verified tree head of a database. */
  head(name: string): SumdbHeadRow | undefined {
    return this.db.run('sumdbLatestHead', () => {
      const r = this.db.sql.prepare('SELECT * FROM sumdb_heads WHERE name = ? ORDER BY size DESC LIMIT 1').get(name) as HeadDbRow | undefined;
      return r && headRow(r);
    });
  }

  /** Every verified head of a database, oldest first. */
  heads(name: string): SumdbHeadRow[] {
    return this.db.run('sumdbHeads', () => (this.db.sql.prepare('SELECT * FROM sumdb_heads WHERE name = ? ORDER BY size').all(name) as HeadDbRow[]).map(headRow));
  }

  /**
   * Records a tree head the caller has proved consistent with the newest one (CheckTree). A
   * smaller head, or one of the same size with another hash, is SUMDB_INCONSISTENT; the same
   * head is a no-op. Returns true when the head was new.
   */
  putHead(name: string, head: { size: number; hash: string; note: string }): boolean {
    this.db.assertWritable('putSumdbHead');
    const { size, hash, note } = head;
    // Durable: the newest verified head is the trust anchor every later head is checked
    // against; forgetting it to a power cut would let a log that forked after the head before
    // it pass. One commit per database per sync pass.
    return this.db.durable('sumdbPutHead', () => {
      const latest = this.db.sql.prepare('SELECT * FROM sumdb_heads WHERE name = ? ORDER BY size DESC LIMIT 1').get(name) as HeadDbRow | undefined;
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
      this.db.sql.prepare('INSERT INTO sumdb_heads (name, size, hash, note, verified_at) VALUES (?, ?, ?, ?, ?)').run(name, size, hash, note, this.db.iso());
      return true;
    });
  }

  /** Marks a head as handed out in a bundle (its consistency tiles are carried from then on). */
  markExported(name: string, size: number): void {
    this.db.assertWritable('markSumdbHeadExported');
    this.db.run('sumdbMarkExported', () => {
      this.db.sql.prepare('UPDATE sumdb_heads SET exported = 1 WHERE name = ? AND size = ?').run(name, size);
    });
  }

  /** Stores a database file (a verified tile or lookup body) as a blob and indexes it by path (replacing an earlier one). */
  async putFile(name: string, path: string, bytes: Buffer, opts: { signal?: AbortSignal } = {}): Promise<SumdbFileRow> {
    this.db.assertWritable('putSumdbFile');
    const r = await this.blobs.writeBlobBytes(undefined, bytes, { mediaType: 'application/octet-stream', ...(opts.signal ? { signal: opts.signal } : {}) });
    this.db.run('sumdbPutFile', () => {
      this.db.sql
        .prepare(
          `INSERT INTO sumdb_files (name, path, digest, size, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(name, path) DO UPDATE SET digest = excluded.digest, size = excluded.size`,
        )
        .run(name, path, r.digest, r.size, this.db.iso());
    });
    return { name, path, digest: r.digest, size: r.size };
  }

  /** One database file's row. */
  getFile(name: string, path: string): SumdbFileRow | undefined {
    return this.db.run('sumdbGetFile', () => {
      const r = this.db.sql.prepare('SELECT name, path, digest, size FROM sumdb_files WHERE name = ? AND path = ?').get(name, path) as SumdbFileRow | undefined;
      return r && { name: r.name, path: r.path, digest: r.digest, size: r.size };
    });
  }

  /** A database file's bytes (verified against its digest), or undefined when not kept. */
  async readFile(name: string, path: string, opts: { signal?: AbortSignal } = {}): Promise<Buffer | undefined> {
    const row = this.getFile(name, path);
    if (!row) return undefined;
    return this.blobs.readBlobBytes(row.digest, row.size, opts);
  }

  /** The files of a database whose path starts with `prefix`, by path. */
  listFiles(name: string, prefix = ''): SumdbFileRow[] {
    return this.db.run('sumdbListFiles', () =>
      this.db.sql
        .prepare(`SELECT name, path, digest, size FROM sumdb_files WHERE name = ? AND substr(path, 1, ?) = ? ORDER BY path`)
        .all(name, prefix.length, prefix) as SumdbFileRow[],
    );
  }

  /** The databases that have a file at `path` (e.g. `supported`: those an import carried in). */
  namesWithFile(path: string): string[] {
    return this.db.run('sumdbNamesWithFile', () => this.db.sql.prepare('SELECT DISTINCT name FROM sumdb_files WHERE path = ? ORDER BY name').pluck().all(path) as string[]);
  }

  /** Records the record vouching for a module version (replacing an earlier one). */
  putRecord(r: Omit<SumdbRecordRow, 'checkedAt'>): void {
    this.db.assertWritable('putSumdbRecord');
    this.db.run('sumdbPutRecord', () => {
      this.db.sql
        .prepare(
          `INSERT INTO sumdb_records (name, module, version, record_id, text, lookup_path, head_size, checked_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(name, module, version) DO UPDATE SET record_id = excluded.record_id, text = excluded.text,
             lookup_path = excluded.lookup_path, head_size = excluded.head_size, checked_at = excluded.checked_at`,
        )
        .run(r.name, r.module, r.version, r.recordId, r.text, r.lookupPath, r.headSize, this.db.iso());
    });
  }

  /** The record of a module version in a database. */
  getRecord(name: string, module: string, version: string): SumdbRecordRow | undefined {
    return this.db.run('sumdbGetRecord', () => {
      const r = this.db.sql.prepare('SELECT * FROM sumdb_records WHERE name = ? AND module = ? AND version = ?').get(name, module, version) as RecordDbRow | undefined;
      return r && recordRow(r);
    });
  }

  /** Every record of a database (or of all databases), by module and version. */
  listRecords(name?: string): SumdbRecordRow[] {
    return this.db.run('sumdbListRecords', () => {
      const rows = (
        name === undefined
          ? this.db.sql.prepare('SELECT * FROM sumdb_records ORDER BY name, module, version').all()
          : this.db.sql.prepare('SELECT * FROM sumdb_records WHERE name = ? ORDER BY module, version').all(name)
      ) as RecordDbRow[];
      return rows.map(recordRow);
    });
  }

  /** The databases with a head or a record. */
  names(): string[] {
    return this.db.run('sumdbNames', () =>
      this.db.sql.prepare('SELECT name FROM sumdb_heads UNION SELECT name FROM sumdb_records ORDER BY name').pluck().all() as string[],
    );
  }
}
