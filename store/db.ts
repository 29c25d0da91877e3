/**
 * The SQLite index: the only code in Ferry that speaks SQL. It records what the blob files
 * are (never their bytes), which manifests reference what, where each tag points, a journal
 * of changes that exports read from, Go module versions, runs and bundles.
 */
import Database from 'better-sqlite3';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import { pidAlive } from './pid.js';
import { SUMDB_MIGRATION, SumdbIndex } from './sumdb.js';
import type {
  AddBundleInput,
  BlobRow,
  BundleRow,
  ChangeResult,
  FinishRunInput,
  JournalEntry,
  LockHolder,
  ManifestReference,
  ManifestRow,
  ModuleListRow,
  ModuleVersionFilter,
  ModuleVersionInput,
  ModuleVersionRow,
  RunKind,
  RunRow,
  RunStatus,
  SetTagInput,
  SourceResultInput,
  SourceState,
  SourceTagKey,
  StoreStats,
  TagFilter,
  TagKey,
  TagRow,
  UnindexedBlob,
} from './types.js';

/**
 * Schema migrations; step N (1-based) brings `PRAGMA user_version` from N-1 to N.
 * Append only: a released step is never edited, a change is a new step.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL CHECK (size >= 0),
    media_type TEXT,
    created_at TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE manifests (
    digest     TEXT PRIMARY KEY REFERENCES blobs(digest),
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    platform   TEXT,
    created_at TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE manifest_refs (
    manifest   TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    platform   TEXT,
    PRIMARY KEY (manifest, position)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_refs_digest ON manifest_refs(digest);

  CREATE TABLE tags (
    registry     TEXT NOT NULL,
    repository   TEXT NOT NULL,
    tag          TEXT NOT NULL,
    source       TEXT NOT NULL,
    target       TEXT NOT NULL,
    digest       TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    platforms    TEXT,
    kept_digests TEXT NOT NULL,
    checked_at   TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    PRIMARY KEY (registry, repository, tag)
  ) WITHOUT ROWID;
  CREATE INDEX tags_source ON tags(source);

  CREATE TABLE journal (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('tag', 'module')),
    registry        TEXT,
    repository      TEXT,
    tag             TEXT,
    digest          TEXT,
    previous_digest TEXT,
    source          TEXT,
    target          TEXT,
    module          TEXT,
    version         TEXT
  );

  CREATE TABLE module_versions (
    module      TEXT NOT NULL,
    version     TEXT NOT NULL,
    time        TEXT NOT NULL,
    info_digest TEXT NOT NULL,
    mod_digest  TEXT NOT NULL,
    zip_digest  TEXT,
    h1_zip      TEXT,
    h1_mod      TEXT NOT NULL,
    root        TEXT NOT NULL,
    retracted   TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (module, version)
  ) WITHOUT ROWID;

  CREATE TABLE module_lists (
    module      TEXT PRIMARY KEY,
    list_digest TEXT NOT NULL,
    checked_at  TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('sync', 'export', 'import')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'partial', 'aborted')),
    pid         INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    meta        TEXT,
    summary     TEXT,
    error       TEXT
  );

  CREATE TABLE source_states (
    source        TEXT PRIMARY KEY,
    last_run      TEXT NOT NULL,
    last_ok_flag  INTEGER NOT NULL,
    last_ok       TEXT,
    last_error    TEXT,
    last_error_at TEXT
  ) WITHOUT ROWID;

  CREATE TABLE bundles (
    id         TEXT PRIMARY KEY,
    sequence   INTEGER NOT NULL UNIQUE,
    parent_id  TEXT REFERENCES bundles(id),
    created_at TEXT NOT NULL,
    seq_from   INTEGER NOT NULL,
    seq_to     INTEGER NOT NULL,
    files      TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE bundle_blobs (
    bundle_id TEXT NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
    digest    TEXT NOT NULL,
    PRIMARY KEY (bundle_id, digest)
  ) WITHOUT ROWID;

  CREATE TABLE bundle_module_files (
    bundle_id TEXT NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    PRIMARY KEY (bundle_id, path)
  ) WITHOUT ROWID;
  `,
  // 2: checksum-database heads, files and records (store/sumdb.ts).
  SUMDB_MIGRATION,
  // 3: which sources a bundle carried (`export --only`; NULL: every source), and the source of
  // every module journal entry (its root, as for tags), so exports can tell per source what the
  // chain carried. Module entries of older versions take the root their version row names.
  `
  ALTER TABLE bundles ADD COLUMN sources TEXT;
  UPDATE journal SET source = (SELECT m.root FROM module_versions m WHERE m.module = journal.module AND m.version = journal.version)
    WHERE kind = 'module' AND source IS NULL;
  `,
  // 4: each image entry (source) owns its tag rows: one upstream tag may be mirrored by several
  // entries, each with its own platforms, kept children and target.
  `
  CREATE TABLE tags_by_source (
    source       TEXT NOT NULL,
    registry     TEXT NOT NULL,
    repository   TEXT NOT NULL,
    tag          TEXT NOT NULL,
    target       TEXT NOT NULL,
    digest       TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    platforms    TEXT,
    kept_digests TEXT NOT NULL,
    checked_at   TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    PRIMARY KEY (source, registry, repository, tag)
  ) WITHOUT ROWID;
  INSERT INTO tags_by_source (source, registry, repository, tag, target, digest, media_type, platforms, kept_digests, checked_at, changed_at)
    SELECT source, registry, repository, tag, target, digest, media_type, platforms, kept_digests, checked_at, changed_at FROM tags;
  DROP TABLE tags;
  ALTER TABLE tags_by_source RENAME TO tags;
  CREATE INDEX tags_reference ON tags(registry, repository, tag);
  `,
];

/** Blob rows nothing in the index names (the tables that hold digests of stored blobs). */
const UNREFERENCED_BLOBS = `
  WITH used(digest) AS (
    SELECT digest FROM manifests
    UNION SELECT digest FROM manifest_refs
    UNION SELECT digest FROM tags
    UNION SELECT k.value FROM tags t, json_each(t.kept_digests) k
    UNION SELECT info_digest FROM module_versions
    UNION SELECT mod_digest FROM module_versions
    UNION SELECT zip_digest FROM module_versions WHERE zip_digest IS NOT NULL
    UNION SELECT digest FROM sumdb_files
  )
  SELECT b.digest, b.size FROM blobs b WHERE b.digest NOT IN (SELECT digest FROM used)`;

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Options for opening the index. */
export interface IndexOptions {
  readonly readonly: boolean;
  readonly now: () => Date;
  readonly busyTimeoutMs: number;
}

/** Turns a SQLite failure into a FerryError with a stable code. */
function sqlError(err: unknown, op: string, file: string): unknown {
  if (err instanceof FerryError) return err;
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : String(err);
  const details: ErrorDetails = { op, file, cause: err };
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new FerryError('STORE_LOCKED', `store index is locked by another process (${op}): ${msg}`, { ...details, temporary: true });
    }
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
      return new FerryError('STORE_CORRUPT', `store index is damaged (${op}): ${msg}`, details);
    }
  }
  return new FerryError('STORE_IO', `store index error (${op}): ${msg}`, details);
}

function json(v: unknown): string | null {
  return v === undefined ? null : JSON.stringify(v);
}

function parseJson(s: string | null): unknown {
  return s === null ? undefined : JSON.parse(s);
}

/** Drops null columns so optional fields are absent rather than null. */
function compact<T extends object>(o: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) out[k] = v;
  return out as T;
}

interface TagDbRow {
  registry: string;
  repository: string;
  tag: string;
  source: string;
  target: string;
  digest: string;
  media_type: string;
  platforms: string | null;
  kept_digests: string;
  checked_at: string;
  changed_at: string;
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

interface RunDbRow {
  id: number;
  kind: RunKind;
  status: RunStatus;
  started_at: string;
  finished_at: string | null;
  meta: string | null;
  summary: string | null;
  error: string | null;
}

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

function tagRow(r: TagDbRow): TagRow {
  return {
    registry: r.registry,
    repository: r.repository,
    tag: r.tag,
    source: r.source,
    target: r.target,
    digest: r.digest as Digest,
    mediaType: r.media_type,
    platforms: r.platforms === null ? null : (JSON.parse(r.platforms) as string[]),
    keptDigests: JSON.parse(r.kept_digests) as Digest[],
    checkedAt: r.checked_at,
    changedAt: r.changed_at,
  };
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

function runRow(r: RunDbRow): RunRow {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    meta: parseJson(r.meta),
    summary: parseJson(r.summary),
    error: r.error,
  };
}

/** The SQLite index of a store, with typed methods for every query Ferry makes. */
export class StoreIndex {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly now: () => Date;

  /** Opens (and, unless read-only, creates and migrates) the index at `file`. */
  constructor(file: string, opts: IndexOptions) {
    this.file = file;
    this.now = opts.now;
    try {
      this.db = new Database(file, { readonly: opts.readonly, fileMustExist: opts.readonly, timeout: opts.busyTimeoutMs });
    } catch (err) {
      throw sqlError(err, 'open', file);
    }
    try {
      this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
      this.db.pragma('foreign_keys = ON');
      if (!opts.readonly) {
        this.db.pragma('journal_mode = WAL');
        // FULL: a committed tag move or bundle record survives a power cut, not only a crash.
        this.db.pragma('synchronous = FULL');
      }
      this.migrate(opts.readonly);
    } catch (err) {
      this.db.close();
      throw sqlError(err, 'open', file);
    }
  }

  private migrate(readonly: boolean): void {
    const have = this.db.pragma('user_version', { simple: true }) as number;
    if (have > SCHEMA_VERSION) {
      throw new FerryError(
        'STORE_CORRUPT',
        `store index ${this.file} has schema version ${have}, newer than this Ferry understands (${SCHEMA_VERSION}); upgrade Ferry to use this store`,
        { op: 'open', file: this.file },
      );
    }
    if (have === SCHEMA_VERSION) return;
    if (readonly) {
      throw new FerryError(
        'STORE_CORRUPT',
        `store index ${this.file} has schema version ${have} and needs migrating to ${SCHEMA_VERSION}; open it once read-write`,
        { op: 'open', file: this.file },
      );
    }
    for (let v = have; v < SCHEMA_VERSION; v++) {
      const step = MIGRATIONS[v] ?? '';
      this.db.transaction(() => {
        this.db.exec(step);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  /** Prepared statements of the hot paths (per blob, per version, per tag), compiled once. */
  private readonly stmts = new Map<string, Database.Statement>();

  private cached(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }

  private run<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw sqlError(err, op, this.file);
    }
  }

  private iso(): string {
    return this.now().toISOString();
  }

  private sumdbIndex: SumdbIndex | undefined;

  /** The checksum-database tables (store/sumdb.ts). */
  sumdb(): SumdbIndex {
    this.sumdbIndex ??= new SumdbIndex(this.db, (op, fn) => this.run(op, fn), () => this.iso());
    return this.sumdbIndex;
  }

  /** Closes the database. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The schema version of the open database. */
  schemaVersion(): number {
    return this.run('schemaVersion', () => this.db.pragma('user_version', { simple: true }) as number);
  }

  /** A value from the meta table. */
  getMeta(key: string): string | undefined {
    return this.run('getMeta', () => {
      const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
      return r?.value;
    });
  }

  /** Sets a value in the meta table. */
  setMeta(key: string, value: string): void {
    this.run('setMeta', () => {
      this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
    });
  }

  // ---- locks ----

  /**
   * Takes the named lock for `holder` in one immediate transaction, unless the recorded holder
   * is still live (`isLive` decides): then returns that holder and changes nothing.
   */
  takeLock(name: string, holder: LockHolder, isLive: (h: LockHolder) => boolean): LockHolder | undefined {
    return this.run('takeLock', () =>
      this.db
        .transaction((): LockHolder | undefined => {
          const key = `lock:${name}`;
          const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
          if (r) {
            let held: LockHolder | undefined;
            try {
              held = JSON.parse(r.value) as LockHolder;
            } catch {
              held = undefined; // an unreadable record holds nothing
            }
            if (held && isLive(held)) return held;
          }
          this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(holder));
          return undefined;
        })
        .immediate(),
    );
  }

  /** Releases the named lock if `token` still holds it; false when it did not. */
  releaseLock(name: string, token: string): boolean {
    return this.run('releaseLock', () => {
      const r = this.db.prepare(`DELETE FROM meta WHERE key = ? AND json_extract(value, '$.token') = ?`).run(`lock:${name}`, token);
      return r.changes > 0;
    });
  }

  // ---- blobs ----

  /** The row of a blob, if indexed. */
  getBlob(d: Digest): BlobRow | undefined {
    return this.run('getBlob', () => {
      const r = this.cached('SELECT digest, size, media_type, created_at FROM blobs WHERE digest = ?').get(d) as
        | { digest: Digest; size: number; media_type: string | null; created_at: string }
        | undefined;
      return r && { digest: r.digest, size: r.size, mediaType: r.media_type, createdAt: r.created_at };
    });
  }

  /** Records a blob whose file is in place; keeps the first known media type. */
  putBlob(d: Digest, size: number, mediaType: string | undefined): void {
    this.run('putBlob', () => {
      this.cached(
        `INSERT INTO blobs (digest, size, media_type, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(digest) DO UPDATE SET media_type = COALESCE(blobs.media_type, excluded.media_type)`,
      ).run(d, size, mediaType ?? null, this.iso());
    });
  }

  /** Every indexed blob with its size (for fsck). */
  allBlobs(): Array<{ digest: Digest; size: number }> {
    return this.run('allBlobs', () => this.db.prepare('SELECT digest, size FROM blobs ORDER BY digest').all() as Array<{ digest: Digest; size: number }>);
  }

  /**
   * Indexed blobs nothing in the index names: no manifest row, manifest reference, tag (or its
   * kept children), module version or checksum-database file. An interrupted sync or import
   * leaves them; `only` (a list of digests) narrows the answer to those.
   */
  unreferencedBlobs(only?: readonly Digest[]): Array<{ digest: Digest; size: number }> {
    return this.run('unreferencedBlobs', () =>
      this.db
        .prepare(`${UNREFERENCED_BLOBS} ${only ? 'AND b.digest IN (SELECT value FROM json_each(?))' : ''} ORDER BY b.digest`)
        .all(...(only ? [JSON.stringify(only)] : [])) as Array<{ digest: Digest; size: number }>,
    );
  }

  /**
   * Deletes the rows of those of `digests` that nothing in the index names (see
   * unreferencedBlobs), deciding and deleting in one write transaction; returns what it deleted.
   */
  deleteUnreferencedBlobs(digests: readonly Digest[]): Array<{ digest: Digest; size: number }> {
    return this.run('deleteUnreferencedBlobs', () =>
      this.db
        .transaction(() => {
          const gone = this.unreferencedBlobs(digests);
          const del = this.db.prepare('DELETE FROM blobs WHERE digest = ?');
          for (const b of gone) del.run(b.digest);
          return gone;
        })
        .immediate(),
    );
  }

  // ---- manifests ----

  /** Records a manifest (its blob row must exist) and its references, once. */
  putManifest(d: Digest, mediaType: string, size: number, platform: string | undefined, refs: readonly ManifestReference[]): void {
    this.run('putManifest', () => {
      this.db
        .transaction(() => {
          const ins = this.db
            .prepare('INSERT OR IGNORE INTO manifests (digest, media_type, size, platform, created_at) VALUES (?, ?, ?, ?, ?)')
            .run(d, mediaType, size, platform ?? null, this.iso());
          const stmt = this.db.prepare(
            'INSERT INTO manifest_refs (manifest, position, digest, media_type, size, platform) VALUES (?, ?, ?, ?, ?, ?)',
          );
          if (ins.changes === 0) {
            // Same digest, same bytes, same references; only a platform learned later is new.
            if (platform !== undefined) this.db.prepare('UPDATE manifests SET platform = COALESCE(platform, ?) WHERE digest = ?').run(platform, d);
            // Older versions recorded an index with only the children a platform filter kept;
            // its bytes list them all, and another image entry may keep the others.
            const have = this.db.prepare('SELECT COUNT(*) FROM manifest_refs WHERE manifest = ?').pluck().get(d) as number;
            if (have < refs.length) {
              this.db.prepare('DELETE FROM manifest_refs WHERE manifest = ?').run(d);
              refs.forEach((r, i) => stmt.run(d, i, r.digest, r.mediaType, r.size, r.platform ?? null));
            }
            return;
          }
          refs.forEach((r, i) => stmt.run(d, i, r.digest, r.mediaType, r.size, r.platform ?? null));
        })
        .immediate();
    });
  }

  /** A recorded manifest with its references in order. */
  getManifest(d: Digest): ManifestRow | undefined {
    return this.run('getManifest', () => {
      const m = this.db.prepare('SELECT digest, media_type, size, platform FROM manifests WHERE digest = ?').get(d) as
        | { digest: Digest; media_type: string; size: number; platform: string | null }
        | undefined;
      if (!m) return undefined;
      const refs = this.db
        .prepare('SELECT digest, media_type AS mediaType, size, platform FROM manifest_refs WHERE manifest = ? ORDER BY position')
        .all(d) as Array<Record<string, unknown>>;
      return compact<ManifestRow>({
        digest: m.digest,
        mediaType: m.media_type,
        size: m.size,
        platform: m.platform,
        references: refs.map((r) => compact<ManifestReference>(r)),
      });
    });
  }

  /** True when the manifest is recorded. */
  hasManifest(d: Digest): boolean {
    return this.run('hasManifest', () => this.db.prepare('SELECT 1 FROM manifests WHERE digest = ?').get(d) !== undefined);
  }

  /** References of manifests whose target blob is not indexed; `indexes` selects index or image manifests. */
  danglingRefs(indexes: boolean, indexTypes: readonly string[]): Array<{ manifest: Digest; digest: Digest; mediaType: string }> {
    return this.run('danglingRefs', () => {
      const marks = indexTypes.map(() => '?').join(', ') || "''";
      return this.db
        .prepare(
          `SELECT r.manifest, r.digest, r.media_type AS mediaType FROM manifest_refs r JOIN manifests m ON m.digest = r.manifest
           WHERE m.media_type ${indexes ? '' : 'NOT '}IN (${marks})
             AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = r.digest)
           ORDER BY r.manifest, r.position`,
        )
        .all(...indexTypes) as Array<{ manifest: Digest; digest: Digest; mediaType: string }>;
    });
  }

  // ---- tags and journal ----

  /** One source's state of a tag. */
  getTag(k: SourceTagKey): TagRow | undefined {
    return this.run('getTag', () => {
      const r = this.cached('SELECT * FROM tags WHERE source = ? AND registry = ? AND repository = ? AND tag = ?').get(k.source, k.registry, k.repository, k.tag) as
        | TagDbRow
        | undefined;
      return r && tagRow(r);
    });
  }

  /** Every source's row of one upstream tag, by source. */
  tagRows(k: TagKey): TagRow[] {
    return this.run('tagRows', () =>
      (this.cached('SELECT * FROM tags WHERE registry = ? AND repository = ? AND tag = ? ORDER BY source').all(k.registry, k.repository, k.tag) as TagDbRow[]).map(tagRow),
    );
  }

  /** Updates only the checked time of an unchanged tag; false when the tag is unknown. */
  touchTag(k: SourceTagKey, checkedAt: string | undefined): boolean {
    return this.run('touchTag', () => {
      const r = this.db
        .prepare('UPDATE tags SET checked_at = ? WHERE source = ? AND registry = ? AND repository = ? AND tag = ?')
        .run(checkedAt ?? this.iso(), k.source, k.registry, k.repository, k.tag);
      return r.changes > 0;
    });
  }

  /** Marks many tags as checked in one transaction (one commit for a whole unchanged image). */
  touchTags(keys: readonly SourceTagKey[], checkedAt: string | undefined): number {
    return this.run('touchTags', () => {
      const at = checkedAt ?? this.iso();
      const stmt = this.db.prepare('UPDATE tags SET checked_at = ? WHERE source = ? AND registry = ? AND repository = ? AND tag = ?');
      return this.db.transaction(() => keys.reduce((n, k) => n + stmt.run(at, k.source, k.registry, k.repository, k.tag).changes, 0))();
    });
  }

  /**
   * Upserts a source's tag and, in the same transaction, journals it when it is new or its
   * digest, kept set or target changed. `keptDigests` must arrive sorted and unique.
   */
  setTag(row: SetTagInput): ChangeResult {
    return this.run('setTag', () =>
      this.db
        .transaction((): ChangeResult => {
          const now = this.iso();
          const old = this.getTag(row);
          const kept = JSON.stringify(row.keptDigests);
          const changed =
            old === undefined ||
            old.digest !== row.digest ||
            old.target !== row.target ||
            JSON.stringify(old.keptDigests) !== kept ||
            row.contentAdded === true;
          this.db
            .prepare(
              `INSERT INTO tags (registry, repository, tag, source, target, digest, media_type, platforms, kept_digests, checked_at, changed_at)
               VALUES (@registry, @repository, @tag, @source, @target, @digest, @mediaType, @platforms, @kept, @now, @now)
               ON CONFLICT(source, registry, repository, tag) DO UPDATE SET
                 target = excluded.target, digest = excluded.digest,
                 media_type = excluded.media_type, platforms = excluded.platforms,
                 kept_digests = excluded.kept_digests, checked_at = excluded.checked_at,
                 changed_at = CASE WHEN @changed THEN excluded.changed_at ELSE tags.changed_at END`,
            )
            .run({
              registry: row.registry,
              repository: row.repository,
              tag: row.tag,
              source: row.source,
              target: row.target,
              digest: row.digest,
              mediaType: row.mediaType,
              platforms: row.platforms === null ? null : JSON.stringify(row.platforms),
              kept,
              now,
              changed: changed ? 1 : 0,
            });
          if (!changed) return { changed: false };
          const j = this.db
            .prepare(
              `INSERT INTO journal (at, kind, registry, repository, tag, digest, previous_digest, source, target)
               VALUES (?, 'tag', ?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(now, row.registry, row.repository, row.tag, row.digest, old?.digest ?? null, row.source, row.target);
          return { changed: true, seq: Number(j.lastInsertRowid) };
        })
        .immediate(),
    );
  }

  /** Tags matching the filter, ordered by registry, repository, tag. */
  listTags(f: TagFilter = {}): TagRow[] {
    return this.run('listTags', () => {
      const where: string[] = [];
      const args: string[] = [];
      if (f.source !== undefined) {
        where.push('source = ?');
        args.push(f.source);
      }
      if (f.registry !== undefined) {
        where.push('registry = ?');
        args.push(f.registry);
      }
      if (f.repository !== undefined) {
        where.push('repository = ?');
        args.push(f.repository);
      }
      const sql = `SELECT * FROM tags ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY registry, repository, tag, source`;
      return (this.db.prepare(sql).all(...args) as TagDbRow[]).map(tagRow);
    });
  }

  /** The highest journal seq (0 when empty). */
  currentSeq(): number {
    return this.run('currentSeq', () => {
      const r = this.db.prepare('SELECT MAX(seq) AS seq FROM journal').get() as { seq: number | null };
      return r.seq ?? 0;
    });
  }

  /** Journal entries with `since < seq <= until`, in seq order. */
  journalSince(since: number, until: number | undefined): JournalEntry[] {
    return this.run('journalSince', () => {
      const rows = this.db
        .prepare(
          `SELECT seq, at, kind, registry, repository, tag, digest, previous_digest AS previousDigest, source, target, module, version
           FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq`,
        )
        .all(since, until ?? Number.MAX_SAFE_INTEGER) as Array<Record<string, unknown>>;
      return rows.map((r) => compact<JournalEntry>(r));
    });
  }

  // ---- Go modules ----

  /** One stored module version. */
  getModuleVersion(module: string, version: string): ModuleVersionRow | undefined {
    return this.run('getModuleVersion', () => {
      const r = this.cached('SELECT * FROM module_versions WHERE module = ? AND version = ?').get(module, version) as ModuleDbRow | undefined;
      return r && moduleRow(r);
    });
  }

  /** Upserts a module version and journals it when it is new or any field changed. */
  putModuleVersion(row: ModuleVersionInput, blobs: readonly UnindexedBlob[] = []): ChangeResult {
    return this.run('putModuleVersion', () => this.db.transaction((): ChangeResult => this.upsertModuleVersion(row, blobs)).immediate());
  }

  /** putModuleVersion for several versions in one transaction (one commit, one fsync). */
  putModuleVersions(entries: ReadonlyArray<{ readonly row: ModuleVersionInput; readonly blobs?: readonly UnindexedBlob[] | undefined }>): ChangeResult[] {
    return this.run('putModuleVersions', () =>
      this.db.transaction((): ChangeResult[] => entries.map((e) => this.upsertModuleVersion(e.row, e.blobs ?? []))).immediate(),
    );
  }

  /** The body of putModuleVersion; runs inside the caller's transaction. */
  private upsertModuleVersion(row: ModuleVersionInput, blobs: readonly UnindexedBlob[]): ChangeResult {
    const now = this.iso();
    // The version's blob rows (files already in place) share its commit: one fsync, not four.
    if (blobs.length > 0) {
      const put = this.cached(
        `INSERT INTO blobs (digest, size, media_type, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(digest) DO UPDATE SET media_type = COALESCE(blobs.media_type, excluded.media_type)`,
      );
      for (const b of blobs) put.run(b.digest, b.size, b.mediaType ?? null, now);
    }
    const old = this.getModuleVersion(row.module, row.version);
    const next = { ...row, retracted: row.retracted ?? null };
    const changed =
      old === undefined ||
      (['time', 'infoDigest', 'modDigest', 'zipDigest', 'h1Zip', 'h1Mod', 'root', 'retracted'] as const).some((k) => old[k] !== next[k]);
    if (!changed) return { changed: false };
    this.cached(
        `INSERT INTO module_versions (module, version, time, info_digest, mod_digest, zip_digest, h1_zip, h1_mod, root, retracted, updated_at)
         VALUES (@module, @version, @time, @infoDigest, @modDigest, @zipDigest, @h1Zip, @h1Mod, @root, @retracted, @now)
         ON CONFLICT(module, version) DO UPDATE SET
           time = excluded.time, info_digest = excluded.info_digest, mod_digest = excluded.mod_digest,
           zip_digest = excluded.zip_digest, h1_zip = excluded.h1_zip, h1_mod = excluded.h1_mod,
           root = excluded.root, retracted = excluded.retracted, updated_at = excluded.updated_at`,
    ).run({ ...next, now });
    const j = this.cached(`INSERT INTO journal (at, kind, digest, source, module, version) VALUES (?, 'module', ?, ?, ?, ?)`).run(
      now,
      next.zipDigest ?? next.modDigest,
      row.root,
      row.module,
      row.version,
    );
    return { changed: true, seq: Number(j.lastInsertRowid) };
  }

  /** Module versions matching the filter, ordered by module then version text. */
  listModuleVersions(f: ModuleVersionFilter = {}): ModuleVersionRow[] {
    return this.run('listModuleVersions', () => {
      const where: string[] = [];
      const args: string[] = [];
      if (f.module !== undefined) {
        where.push('module = ?');
        args.push(f.module);
      }
      if (f.withZip === true) where.push('zip_digest IS NOT NULL');
      if (f.withZip === false) where.push('zip_digest IS NULL');
      const sql = `SELECT * FROM module_versions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY module, version`;
      return (this.db.prepare(sql).all(...args) as ModuleDbRow[]).map(moduleRow);
    });
  }

  /** Every (module, version, kind, digest) a module version needs whose blob is not indexed. */
  moduleMissingBlobs(): Array<{ module: string; version: string; file: string; digest: Digest }> {
    return this.run('moduleMissingBlobs', () =>
      this.db
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

  /** The last `@v/list` digest recorded for a module. */
  getModuleList(module: string): ModuleListRow | undefined {
    return this.run('getModuleList', () => {
      const r = this.db.prepare('SELECT list_digest, checked_at FROM module_lists WHERE module = ?').get(module) as
        | { list_digest: string; checked_at: string }
        | undefined;
      return r && { listDigest: r.list_digest, checkedAt: r.checked_at };
    });
  }

  /** Records the `@v/list` digest seen now for a module. */
  setModuleList(module: string, listDigest: string): void {
    this.run('setModuleList', () => {
      this.db
        .prepare(
          `INSERT INTO module_lists (module, list_digest, checked_at) VALUES (?, ?, ?)
           ON CONFLICT(module) DO UPDATE SET list_digest = excluded.list_digest, checked_at = excluded.checked_at`,
        )
        .run(module, listDigest, this.iso());
    });
  }

  // ---- runs and sources ----

  /** Starts a run owned by this process. */
  startRun(kind: RunKind, meta: object | undefined): number {
    return this.run('startRun', () => {
      const r = this.db
        .prepare(`INSERT INTO runs (kind, status, pid, started_at, meta) VALUES (?, 'running', ?, ?, ?)`)
        .run(kind, process.pid, this.iso(), json(meta));
      return Number(r.lastInsertRowid);
    });
  }

  /** Ends a run; false when no running run has this id. */
  finishRun(id: number, r: FinishRunInput): boolean {
    return this.run('finishRun', () =>
      // The sources' outcomes share the run's commit: one fsync at the end of a pass, not two.
      this.db
        .transaction((): boolean => {
          this.putSourceResults(r.sources ?? []);
          const res = this.db
            .prepare(`UPDATE runs SET status = ?, finished_at = ?, summary = ?, error = ? WHERE id = ? AND status = 'running'`)
            .run(r.status, this.iso(), json(r.summary), r.error ?? null, id);
          return res.changes > 0;
        })
        .immediate(),
    );
  }

  /** Marks as aborted the runs left 'running' by processes that no longer exist; returns how many. */
  abortOrphanRuns(): number {
    return this.run('abortOrphanRuns', () => {
      const rows = this.db.prepare(`SELECT id, pid FROM runs WHERE status = 'running'`).all() as Array<{ id: number; pid: number }>;
      const stmt = this.db.prepare(`UPDATE runs SET status = 'aborted', finished_at = ?, error = ? WHERE id = ? AND status = 'running'`);
      let n = 0;
      for (const r of rows) {
        if (r.pid === process.pid || pidAlive(r.pid)) continue;
        n += stmt.run(this.iso(), `process ${r.pid} ended before the run finished`, r.id).changes;
      }
      return n;
    });
  }

  /** The most recent runs, newest first. */
  lastRuns(limit: number): RunRow[] {
    return this.run('lastRuns', () =>
      (this.db.prepare('SELECT id, kind, status, started_at, finished_at, meta, summary, error FROM runs ORDER BY id DESC LIMIT ?').all(limit) as RunDbRow[]).map(
        runRow,
      ),
    );
  }

  /** Records one source's result at `at`. */
  recordSourceResult(source: string, ok: boolean, error: string | undefined, at: string | undefined): void {
    this.run('recordSourceResult', () => {
      const when = at ?? this.iso();
      this.db
        .prepare(
          `INSERT INTO source_states (source, last_run, last_ok_flag, last_ok, last_error, last_error_at)
           VALUES (@source, @when, @ok, CASE WHEN @ok THEN @when END, CASE WHEN @ok THEN NULL ELSE @error END, CASE WHEN @ok THEN NULL ELSE @when END)
           ON CONFLICT(source) DO UPDATE SET
             last_run = excluded.last_run, last_ok_flag = excluded.last_ok_flag,
             last_ok = COALESCE(excluded.last_ok, source_states.last_ok),
             last_error = CASE WHEN @ok THEN source_states.last_error ELSE excluded.last_error END,
             last_error_at = CASE WHEN @ok THEN source_states.last_error_at ELSE excluded.last_error_at END`,
        )
        .run({ source, when, ok: ok ? 1 : 0, error: error ?? 'failed' });
    });
  }

  /** Sources' results and module roots' list digests; runs inside the caller's transaction. */
  private putSourceResults(entries: ReadonlyArray<SourceResultInput>): void {
    for (const e of entries) {
      if (e.moduleList) this.setModuleList(e.moduleList.module, e.moduleList.listDigest);
      this.recordSourceResult(e.source, e.ok, e.error, e.at);
    }
  }

  /** Every source's last result, by name. */
  sourceStates(): SourceState[] {
    return this.run('sourceStates', () => {
      const rows = this.db
        .prepare('SELECT source, last_run AS lastRun, last_ok_flag, last_ok AS lastOk, last_error AS lastError, last_error_at AS lastErrorAt FROM source_states ORDER BY source')
        .all() as Array<Record<string, unknown>>;
      return rows.map((r) => {
        const { last_ok_flag, ...rest } = r;
        return compact<SourceState>({ ...rest, ok: last_ok_flag === 1 });
      });
    });
  }

  // ---- bundles ----

  /** Records a bundle with the blobs and module files it carried. */
  addBundle(b: AddBundleInput): void {
    this.run('addBundle', () => {
      this.db
        .transaction(() => {
          if (this.db.prepare('SELECT 1 FROM bundles WHERE id = ? OR sequence = ?').get(b.id, b.sequence) !== undefined) {
            throw new FerryError('BUNDLE_INVALID', `bundle ${b.id} (sequence ${b.sequence}) clashes with a recorded bundle`, { op: 'addBundle' });
          }
          if (b.parentId !== null && this.db.prepare('SELECT 1 FROM bundles WHERE id = ?').get(b.parentId) === undefined) {
            throw new FerryError('CHAIN_BROKEN', `bundle ${b.id}: parent bundle ${b.parentId} is not recorded in this store`, { op: 'addBundle' });
          }
          this.db
            .prepare('INSERT INTO bundles (id, sequence, parent_id, created_at, seq_from, seq_to, files, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
            .run(b.id, b.sequence, b.parentId, b.createdAt, b.seqFrom, b.seqTo, JSON.stringify(b.files ?? null), b.sources ? JSON.stringify([...b.sources]) : null);
          const blob = this.db.prepare('INSERT OR IGNORE INTO bundle_blobs (bundle_id, digest) VALUES (?, ?)');
          for (const d of b.blobs) blob.run(b.id, d);
          const file = this.db.prepare('INSERT OR IGNORE INTO bundle_module_files (bundle_id, path) VALUES (?, ?)');
          for (const p of b.moduleFiles ?? []) file.run(b.id, p);
        })
        .immediate();
    });
  }

  private bundleRow(r: BundleDbRow): BundleRow {
    const files = this.db.prepare('SELECT path FROM bundle_module_files WHERE bundle_id = ? ORDER BY path').pluck().all(r.id) as string[];
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

  private static readonly BUNDLE_SELECT = `SELECT b.*, (SELECT COUNT(*) FROM bundle_blobs x WHERE x.bundle_id = b.id) AS blob_count FROM bundles b`;

  /** A bundle by id (string) or sequence (number). */
  getBundle(idOrSeq: string | number): BundleRow | undefined {
    return this.run('getBundle', () => {
      const col = typeof idOrSeq === 'number' ? 'b.sequence' : 'b.id';
      const r = this.db.prepare(`${StoreIndex.BUNDLE_SELECT} WHERE ${col} = ?`).get(idOrSeq) as BundleDbRow | undefined;
      return r && this.bundleRow(r);
    });
  }

  /** Every bundle, by sequence. */
  listBundles(): BundleRow[] {
    return this.run('listBundles', () =>
      (this.db.prepare(`${StoreIndex.BUNDLE_SELECT} ORDER BY b.sequence`).all() as BundleDbRow[]).map((r) => this.bundleRow(r)),
    );
  }

  /** The bundle with the highest sequence. */
  lastBundle(): BundleRow | undefined {
    return this.run('lastBundle', () => {
      const r = this.db.prepare(`${StoreIndex.BUNDLE_SELECT} ORDER BY b.sequence DESC LIMIT 1`).get() as BundleDbRow | undefined;
      return r && this.bundleRow(r);
    });
  }

  /** The blobs one bundle carried. */
  bundleBlobs(id: string): Digest[] {
    return this.run('bundleBlobs', () => this.db.prepare('SELECT digest FROM bundle_blobs WHERE bundle_id = ? ORDER BY digest').pluck().all(id) as Digest[]);
  }

  private static readonly CHAIN = `WITH RECURSIVE chain(id) AS (
      SELECT id FROM bundles WHERE id = ?
      UNION SELECT b.parent_id FROM bundles b JOIN chain c ON b.id = c.id WHERE b.parent_id IS NOT NULL)`;

  /** Every blob carried by the bundle and its ancestors; undefined when the bundle is unknown. */
  blobsCarriedByChain(id: string): Set<Digest> | undefined {
    return this.run('blobsCarriedByChain', () => {
      if (this.db.prepare('SELECT 1 FROM bundles WHERE id = ?').get(id) === undefined) return undefined;
      const rows = this.db
        .prepare(`${StoreIndex.CHAIN} SELECT DISTINCT digest FROM bundle_blobs WHERE bundle_id IN (SELECT id FROM chain)`)
        .pluck()
        .all(id) as Digest[];
      return new Set(rows);
    });
  }

  /** Every module file carried by the bundle and its ancestors; undefined when the bundle is unknown. */
  moduleFilesCarriedByChain(id: string): Set<string> | undefined {
    return this.run('moduleFilesCarriedByChain', () => {
      if (this.db.prepare('SELECT 1 FROM bundles WHERE id = ?').get(id) === undefined) return undefined;
      const rows = this.db
        .prepare(`${StoreIndex.CHAIN} SELECT DISTINCT path FROM bundle_module_files WHERE bundle_id IN (SELECT id FROM chain)`)
        .pluck()
        .all(id) as string[];
      return new Set(rows);
    });
  }

  /** One more than the highest recorded bundle sequence (1 for the first). */
  nextBundleSequence(): number {
    return this.run('nextBundleSequence', () => {
      const r = this.db.prepare('SELECT MAX(sequence) AS s FROM bundles').get() as { s: number | null };
      return (r.s ?? 0) + 1;
    });
  }

  // ---- stats ----

  /** Counts for status pages. */
  stats(): StoreStats {
    return this.run('stats', () => {
      const one = (sql: string): number => (this.db.prepare(sql).pluck().get() as number | null) ?? 0;
      return {
        blobs: one('SELECT COUNT(*) FROM blobs'),
        bytes: one('SELECT COALESCE(SUM(size), 0) FROM blobs'),
        manifests: one('SELECT COUNT(*) FROM manifests'),
        tags: one('SELECT COUNT(*) FROM tags'),
        sources: one('SELECT COUNT(*) FROM (SELECT source FROM tags UNION SELECT source FROM source_states)'),
        moduleVersions: one('SELECT COUNT(*) FROM module_versions'),
        journalSeq: one('SELECT COALESCE(MAX(seq), 0) FROM journal'),
      };
    });
  }
}
