/**
 * The schema of the store index as numbered steps: step N (1-based) brings `PRAGMA user_version`
 * from N-1 to N, each in its own transaction. Append only: a released step is never edited (a
 * store written by any earlier version replays the steps it lacks), a change is a new step.
 */
import type Database from 'better-sqlite3';
import { FerryError } from '../errors/index.js';

/** Step 2: the checksum-database tables (store/sumdb.ts). */
const SUMDB_MIGRATION = `
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

/** The steps, in order (see the header: append only). */
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
  // Attachments (signatures, attestations, SBOMs, referrers) by the manifest they are attached
  // to: `tag` is the cosign digest tag an attachment is found by ('' for an OCI referrer).
  `
  CREATE TABLE attachments (
    subject       TEXT NOT NULL,
    digest        TEXT NOT NULL,
    tag           TEXT NOT NULL DEFAULT '',
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    artifact_type TEXT,
    annotations   TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (subject, digest, tag)
  ) WITHOUT ROWID;
  CREATE INDEX attachments_digest ON attachments(digest);
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to SCHEMA_VERSION. A newer schema is refused (this Ferry would misread
 * it); a read-only open of an older one is refused too, since migrating writes.
 */
export function migrate(db: Database.Database, file: string, readonly: boolean): void {
  const have = db.pragma('user_version', { simple: true }) as number;
  if (have > SCHEMA_VERSION) {
    throw new FerryError(
      'STORE_CORRUPT',
      `store index ${file} has schema version ${have}, newer than this Ferry understands (${SCHEMA_VERSION}); upgrade Ferry to use this store`,
      { op: 'open', file },
    );
  }
  if (have === SCHEMA_VERSION) return;
  if (readonly) {
    throw new FerryError(
      'STORE_CORRUPT',
      `store index ${file} has schema version ${have} and needs migrating to ${SCHEMA_VERSION}; open it once read-write`,
      { op: 'open', file },
    );
  }
  for (let v = have; v < SCHEMA_VERSION; v++) {
    const step = MIGRATIONS[v] ?? '';
    db.transaction(() => {
      db.exec(step);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
