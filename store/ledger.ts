/**
 * The import ledger: a small SQLite database, separate from any store's index, recording which
 * bundles arrived at which target and the state of every item (blob, manifest, tag, module)
 * they put there. It is what makes an import idempotent and resumable after kill -9, and what
 * tells an operator which disc of a chain is missing. Like the store index, the schema is a
 * list of numbered migrations tracked in `PRAGMA user_version`.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { StatementCache } from './db.js';

/**
 * Ledger migrations; step N (1-based) brings `PRAGMA user_version` from N-1 to N.
 * Append only: a released step is never edited.
 */
export const LEDGER_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE bundles (
    id           TEXT NOT NULL,
    target       TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    parent       TEXT,
    chain        TEXT NOT NULL,
    source_store TEXT NOT NULL,
    created      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    result       TEXT NOT NULL CHECK (result IN ('running', 'ok', 'failed', 'partial')),
    error        TEXT,
    summary      TEXT,
    PRIMARY KEY (id, target)
  ) WITHOUT ROWID;
  CREATE INDEX bundles_store ON bundles(source_store, sequence);

  CREATE TABLE items (
    target    TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('blob', 'manifest', 'tag', 'module', 'file')),
    scope     TEXT NOT NULL,
    key       TEXT NOT NULL,
    digest    TEXT,
    state     TEXT NOT NULL CHECK (state IN ('done', 'failed')),
    bundle_id TEXT NOT NULL,
    detail    TEXT,
    at        TEXT NOT NULL,
    PRIMARY KEY (target, kind, scope, key)
  ) WITHOUT ROWID;
  CREATE INDEX items_digest ON items(target, digest);
  `,
  // 2: the sha256 of the signed ferry-bundle.json each import read, so a bundle that reuses an
  // imported bundle's id with other content is told apart (NULL in records of older versions).
  `
  ALTER TABLE bundles ADD COLUMN manifest_digest TEXT;
  `,
  // 3: the sources a bundle made with `export --only` carried (JSON; NULL: every source).
  `
  ALTER TABLE bundles ADD COLUMN sources TEXT;
  `,
  // 4: the sources each source store announced as deprecated or archived (ferry-bundle.json's
  // `lifecycle`), as of the newest bundle that said so; a source no longer listed is active again.
  `
  CREATE TABLE lifecycle (
    source_store TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('image', 'module')),
    name         TEXT NOT NULL,
    target       TEXT,
    state        TEXT NOT NULL CHECK (state IN ('deprecated', 'archived')),
    note         TEXT,
    bundle_id    TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    at           TEXT NOT NULL,
    PRIMARY KEY (source_store, kind, name)
  ) WITHOUT ROWID;
  `,
];

/** The ledger schema version this code writes. */
export const LEDGER_SCHEMA_VERSION = LEDGER_MIGRATIONS.length;

/** How a bundle import ended ('running' while it has not, or when the process was killed). */
export type LedgerResult = 'running' | 'ok' | 'failed' | 'partial';
/** The kinds of item the ledger tracks. */
export type LedgerItemKind = 'blob' | 'manifest' | 'tag' | 'module' | 'file';

/** One bundle's import into one target. */
export interface LedgerBundle {
  readonly id: string;
  /** The target, e.g. `registry:host:5000/prefix`, `gomod:/srv/gomod`, `store:/srv/store`. */
  readonly target: string;
  readonly sequence: number;
  readonly parent: string | null;
  /** Ancestor ids, nearest last. */
  readonly chain: readonly string[];
  /** Id of the store the bundle was exported from. */
  readonly sourceStore: string;
  /** The bundle's creation time. */
  readonly created: string;
  /** `sha256:` digest of the signed ferry-bundle.json bytes; null in records written before it was kept. */
  readonly manifestDigest: string | null;
  /** The sources a bundle made with `export --only` carried; null: every source. */
  readonly sources: readonly string[] | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly result: LedgerResult;
  readonly error: string | null;
  readonly summary: unknown;
}

/** What `startBundle` records. */
export type StartBundleInput = Omit<LedgerBundle, 'startedAt' | 'finishedAt' | 'result' | 'error' | 'summary'>;

/** One item at a target. */
export interface LedgerItem {
  readonly target: string;
  readonly kind: LedgerItemKind;
  /** The repository for blobs, manifests and tags; '' for modules and files. */
  readonly scope: string;
  /** The digest (blob, manifest), tag, `module@version` or file path. */
  readonly key: string;
  /** The content digest the item holds (a tag's manifest digest). */
  readonly digest: string | null;
  readonly state: 'done' | 'failed';
  readonly bundleId: string;
  /** Free text, e.g. `filtered-from sha256:...`. */
  readonly detail: string | null;
  readonly at: string;
}

/** What `recordItem` records. */
export type RecordItemInput = Omit<LedgerItem, 'at'>;

/** A source a bundle announced as deprecated or archived. */
export interface LedgerLifecycle {
  readonly sourceStore: string;
  readonly kind: 'image' | 'module';
  /** The source's name on the DMZ. */
  readonly name: string;
  /** The intranet repository (image) or module path (module root); null for a go.mod root. */
  readonly target: string | null;
  readonly state: 'deprecated' | 'archived';
  readonly note: string | null;
  /** The bundle that said so, and its sequence. */
  readonly bundleId: string;
  readonly sequence: number;
  readonly at: string;
}

/** One source store's bundles as the ledger knows them. */
export interface LedgerChainStatus {
  readonly sourceStore: string;
  /** Every recorded import, by sequence then target. */
  readonly bundles: LedgerBundle[];
  /** Highest sequence imported successfully (0 when none). */
  readonly highest: number;
  /** Bundles (sequence and id when known) that later bundles need but that never arrived successfully. */
  readonly missing: Array<{ readonly sequence: number; readonly id: string | null }>;
  /** The highest sequence imported successfully that carried every source (0 when none). */
  readonly allSourcesThrough: number;
  /**
   * Bundles imported after that one which carried only some sources (`export --only`): a source
   * not named in them is as of `allSourcesThrough`, however high `highest` is.
   */
  readonly partial: Array<{ readonly sequence: number; readonly id: string; readonly sources: readonly string[] }>;
}

interface BundleDbRow {
  id: string;
  target: string;
  sequence: number;
  parent: string | null;
  chain: string;
  source_store: string;
  created: string;
  /** Absent when a read-only open left an older schema as it was. */
  manifest_digest?: string | null;
  sources?: string | null;
  started_at: string;
  finished_at: string | null;
  result: LedgerResult;
  error: string | null;
  summary: string | null;
}

interface ItemDbRow {
  target: string;
  kind: LedgerItemKind;
  scope: string;
  key: string;
  digest: string | null;
  state: 'done' | 'failed';
  bundle_id: string;
  detail: string | null;
  at: string;
}

function bundleRow(r: BundleDbRow): LedgerBundle {
  return {
    id: r.id,
    target: r.target,
    sequence: r.sequence,
    parent: r.parent,
    chain: JSON.parse(r.chain) as string[],
    sourceStore: r.source_store,
    created: r.created,
    manifestDigest: r.manifest_digest ?? null,
    sources: r.sources === undefined || r.sources === null ? null : (JSON.parse(r.sources) as string[]),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    result: r.result,
    error: r.error,
    summary: r.summary === null ? null : (JSON.parse(r.summary) as unknown),
  };
}

function itemRow(r: ItemDbRow): LedgerItem {
  return {
    target: r.target,
    kind: r.kind,
    scope: r.scope,
    key: r.key,
    digest: r.digest,
    state: r.state,
    bundleId: r.bundle_id,
    detail: r.detail,
    at: r.at,
  };
}

/** The sequence number embedded in a bundle id (`ferry-YYYYMMDD-NNNN-xxxxxxxx`), or undefined. */
export function sequenceFromBundleId(id: string): number | undefined {
  const m = /^ferry-\d{8}-(\d+)-[0-9a-f]{8}$/.exec(id);
  return m ? Number(m[1]) : undefined;
}

function sqlError(err: unknown, op: string, file: string): FerryError {
  if (err instanceof FerryError) return err;
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : String(err);
  const details: ErrorDetails = { op, file, cause: err };
  if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))) {
    return new FerryError('STORE_LOCKED', `import ledger ${file} is locked by another process (${op}): ${msg}`, { ...details, temporary: true });
  }
  if (typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')) {
    return new FerryError('STORE_CORRUPT', `import ledger ${file} is damaged (${op}): ${msg}`, details);
  }
  return new FerryError('STORE_IO', `import ledger ${file} error (${op}): ${msg}`, details);
}

/** Options for `Ledger.open`. */
export interface LedgerOpenOptions {
  /** Open without creating or migrating (for `ferry ledger`). @default false */
  readonly readonly?: boolean;
  /** Clock for recorded times. @default () => new Date() */
  readonly now?: () => Date;
  /** How long to wait for another process's write lock. @default 5000 */
  readonly busyTimeoutMs?: number;
}

/** The import ledger database. Every write commits at once (synchronous=FULL), so a kill loses nothing recorded. */
export class Ledger {
  /** Absolute path of the database file. */
  readonly file: string;
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly stmts = new StatementCache();

  private constructor(file: string, db: Database.Database, now: () => Date) {
    this.file = file;
    this.db = db;
    this.now = now;
  }

  /** Opens (creating and migrating unless read-only) the ledger at `file`. */
  static open(file: string, opts: LedgerOpenOptions = {}): Ledger {
    const abs = resolve(file);
    const ro = opts.readonly === true;
    let db: Database.Database;
    try {
      if (!ro) mkdirSync(dirname(abs), { recursive: true });
      db = new Database(abs, { readonly: ro, fileMustExist: ro, timeout: opts.busyTimeoutMs ?? 5000 });
    } catch (err) {
      if (ro) throw new FerryError('NOT_FOUND', `no import ledger at ${abs}`, { op: 'open', file: abs, cause: err });
      throw sqlError(err, 'open', abs);
    }
    try {
      if (!ro) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
      }
      const have = db.pragma('user_version', { simple: true }) as number;
      if (have > LEDGER_SCHEMA_VERSION) {
        throw new FerryError('STORE_CORRUPT', `import ledger ${abs} has schema version ${have}, newer than this Ferry understands (${LEDGER_SCHEMA_VERSION})`, {
          op: 'open',
          file: abs,
        });
      }
      // Read-only, an older ledger is read as it is (columns added since read as unknown): `ferry
      // ledger` and dry runs work right after an upgrade; the next import migrates it.
      if (have === 0 && ro) throw new FerryError('STORE_CORRUPT', `import ledger ${abs} has no schema yet; run an import once`, { op: 'open', file: abs });
      if (have < LEDGER_SCHEMA_VERSION && !ro) {
        for (let v = have; v < LEDGER_SCHEMA_VERSION; v++) {
          const step = LEDGER_MIGRATIONS[v] ?? '';
          db.transaction(() => {
            db.exec(step);
            db.pragma(`user_version = ${v + 1}`);
          }).immediate();
        }
      }
    } catch (err) {
      db.close();
      throw sqlError(err, 'open', abs);
    }
    return new Ledger(abs, db, opts.now ?? (() => new Date()));
  }

  /** Closes the database. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  private run<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw sqlError(err, op, this.file);
    }
  }

  /** A prepared statement, compiled once per connection. */
  private cached(sql: string): Database.Statement {
    return this.stmts.get(this.db, sql);
  }

  /** One bundle's record at one target. */
  getBundle(id: string, target: string): LedgerBundle | undefined {
    return this.run('getBundle', () => {
      const r = this.db.prepare('SELECT * FROM bundles WHERE id = ? AND target = ?').get(id, target) as BundleDbRow | undefined;
      return r ? bundleRow(r) : undefined;
    });
  }

  /** Every record of a bundle id (one per target). */
  bundleRecords(id: string): LedgerBundle[] {
    return this.run('bundleRecords', () =>
      (this.db.prepare('SELECT * FROM bundles WHERE id = ? ORDER BY target').all(id) as BundleDbRow[]).map(bundleRow),
    );
  }

  /** Every recorded bundle import, by source store, sequence and target. */
  listBundles(): LedgerBundle[] {
    return this.run('listBundles', () =>
      (this.db.prepare('SELECT * FROM bundles ORDER BY source_store, sequence, target').all() as BundleDbRow[]).map(bundleRow),
    );
  }

  /** Records (or restarts) a bundle import as running; an earlier failed or killed attempt is overwritten. */
  startBundle(b: StartBundleInput): void {
    const at = this.now().toISOString();
    this.run('startBundle', () =>
      this.db
        .prepare(
          `INSERT INTO bundles (id, target, sequence, parent, chain, source_store, created, manifest_digest, sources, started_at, finished_at, result, error, summary)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 'running', NULL, NULL)
           ON CONFLICT(id, target) DO UPDATE SET manifest_digest = excluded.manifest_digest, sources = excluded.sources,
             started_at = excluded.started_at, finished_at = NULL, result = 'running', error = NULL, summary = NULL`,
        )
        .run(b.id, b.target, b.sequence, b.parent, JSON.stringify(b.chain), b.sourceStore, b.created, b.manifestDigest, b.sources ? JSON.stringify(b.sources) : null, at),
    );
  }

  /** Records how a bundle import ended. */
  finishBundle(id: string, target: string, result: Exclude<LedgerResult, 'running'>, r: { error?: string; summary?: object } = {}): void {
    const at = this.now().toISOString();
    const changes = this.run('finishBundle', () =>
      this.db
        .prepare('UPDATE bundles SET finished_at = ?, result = ?, error = ?, summary = ? WHERE id = ? AND target = ?')
        .run(at, result, r.error ?? null, r.summary === undefined ? null : JSON.stringify(r.summary), id, target).changes,
    );
    if (changes === 0) throw new FerryError('INTERNAL', `finishBundle: bundle ${id} at ${target} was never started`, { op: 'finishBundle' });
  }

  /** True when the bundle was imported successfully into `target`. */
  isImported(id: string, target: string): boolean {
    return this.getBundle(id, target)?.result === 'ok';
  }

  /** Records an item's state (replacing an earlier record of the same item). */
  recordItem(i: RecordItemInput): void {
    this.recordItems([i]);
  }

  /**
   * Records several items in one transaction (one commit, so one sync to disk, for all of them):
   * for many items done together, e.g. tags moved concurrently.
   */
  recordItems(items: readonly RecordItemInput[]): void {
    if (items.length === 0) return;
    const at = this.now().toISOString();
    this.run('recordItem', () => {
      const put = this.cached(
        `INSERT INTO items (target, kind, scope, key, digest, state, bundle_id, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(target, kind, scope, key) DO UPDATE SET digest = excluded.digest, state = excluded.state,
             bundle_id = excluded.bundle_id, detail = excluded.detail, at = excluded.at`,
      );
      this.db.transaction(() => {
        for (const i of items) put.run(i.target, i.kind, i.scope, i.key, i.digest, i.state, i.bundleId, i.detail, at);
      }).immediate();
    });
  }

  /** One item's record. */
  getItem(target: string, kind: LedgerItemKind, scope: string, key: string): LedgerItem | undefined {
    return this.run('getItem', () => {
      const r = this.cached('SELECT * FROM items WHERE target = ? AND kind = ? AND scope = ? AND key = ?').get(target, kind, scope, key) as
        | ItemDbRow
        | undefined;
      return r ? itemRow(r) : undefined;
    });
  }

  /** True when the item is recorded as done. */
  isDone(target: string, kind: LedgerItemKind, scope: string, key: string): boolean {
    return this.getItem(target, kind, scope, key)?.state === 'done';
  }

  /** Scopes (repositories) at `target` where a blob or manifest with this digest is recorded as done. */
  scopesWith(target: string, digest: string, kind: 'blob' | 'manifest'): string[] {
    return this.run('scopesWith', () =>
      (
        this.cached("SELECT scope FROM items WHERE target = ? AND digest = ? AND kind = ? AND state = 'done' ORDER BY at").all(target, digest, kind) as Array<{
          scope: string;
        }>
      ).map((r) => r.scope),
    );
  }

  /**
   * Of `tags` in repository `scope` at `target`, those recorded as done, with the digest each
   * names: one query for a page of tags instead of one per tag.
   */
  tagsDone(target: string, scope: string, tags: readonly string[]): Map<string, string> {
    const out = new Map<string, string>();
    if (tags.length === 0) return out;
    this.run('tagsDone', () => {
      const rows = this.cached(
        "SELECT key, digest FROM items WHERE target = ? AND kind = 'tag' AND scope = ? AND state = 'done' AND digest IS NOT NULL AND key IN (SELECT value FROM json_each(?))",
      ).all(target, scope, JSON.stringify(tags)) as Array<{ key: string; digest: string }>;
      for (const r of rows) out.set(r.key, r.digest);
    });
    return out;
  }

  /** Forgets an item (a tag or manifest an import deleted at the target). */
  forgetItem(target: string, kind: LedgerItemKind, scope: string, key: string): void {
    this.run('forgetItem', () => this.cached('DELETE FROM items WHERE target = ? AND kind = ? AND scope = ? AND key = ?').run(target, kind, scope, key));
  }

  /** Tags at `target` in repository `scope` recorded as done at `digest`. */
  tagsAt(target: string, scope: string, digest: string): string[] {
    return this.run('tagsAt', () =>
      (this.cached("SELECT key FROM items WHERE target = ? AND kind = 'tag' AND scope = ? AND digest = ? AND state = 'done' ORDER BY key").all(target, scope, digest) as Array<{ key: string }>).map(
        (r) => r.key,
      ),
    );
  }

  /**
   * Every blob an imported bundle placed at `target` and every image it tagged there (done): a
   * later bundle of the chain may list any of their blobs in `requires` instead of carrying them
   * again, so a gc of that store keeps them.
   */
  importedBlobs(target: string): Set<string> {
    return this.run('importedBlobs', () => new Set(this.db.prepare("SELECT DISTINCT digest FROM items WHERE target = ? AND kind IN ('blob', 'tag') AND state = 'done' AND digest IS NOT NULL").pluck().all(target) as string[]));
  }

  /** Items a bundle recorded. */
  bundleItems(bundleId: string, target?: string): LedgerItem[] {
    return this.run('bundleItems', () => {
      const rows = (
        target === undefined
          ? this.db.prepare('SELECT * FROM items WHERE bundle_id = ? ORDER BY target, kind, scope, key').all(bundleId)
          : this.db.prepare('SELECT * FROM items WHERE bundle_id = ? AND target = ? ORDER BY kind, scope, key').all(bundleId, target)
      ) as ItemDbRow[];
      return rows.map(itemRow);
    });
  }

  /**
   * Records the lifecycle list of a bundle of `sourceStore`: its entries replace what older
   * bundles of that store said, and a source an older bundle listed but this one does not is
   * active again. A bundle older than the newest one recorded changes nothing.
   */
  recordLifecycle(
    sourceStore: string,
    bundleId: string,
    sequence: number,
    entries: ReadonlyArray<{ readonly kind: 'image' | 'module'; readonly name: string; readonly target: string | null; readonly state: 'deprecated' | 'archived'; readonly note?: string }>,
  ): void {
    const at = this.now().toISOString();
    this.run('recordLifecycle', () =>
      this.db.transaction(() => {
        const newest = this.db.prepare('SELECT MAX(sequence) AS s FROM lifecycle WHERE source_store = ?').get(sourceStore) as { s: number | null };
        if (newest.s !== null && newest.s > sequence) return;
        this.db.prepare('DELETE FROM lifecycle WHERE source_store = ?').run(sourceStore);
        const ins = this.db.prepare(
          'INSERT INTO lifecycle (source_store, kind, name, target, state, note, bundle_id, sequence, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        );
        for (const e of entries) ins.run(sourceStore, e.kind, e.name, e.target, e.state, e.note ?? null, bundleId, sequence, at);
      })(),
    );
  }

  /** Every source announced as deprecated or archived, by source store, kind and name. */
  lifecycle(): LedgerLifecycle[] {
    // A ledger opened read-only may predate migration 4.
    if (this.run('lifecycle', () => this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lifecycle'").get()) === undefined) return [];
    return this.run('lifecycle', () =>
      (
        this.db.prepare('SELECT * FROM lifecycle ORDER BY source_store, kind, name').all() as Array<{
          source_store: string;
          kind: 'image' | 'module';
          name: string;
          target: string | null;
          state: 'deprecated' | 'archived';
          note: string | null;
          bundle_id: string;
          sequence: number;
          at: string;
        }>
      ).map((r) => ({ sourceStore: r.source_store, kind: r.kind, name: r.name, target: r.target, state: r.state, note: r.note, bundleId: r.bundle_id, sequence: r.sequence, at: r.at })),
    );
  }

  /**
   * Per source store: what arrived, and which bundles the chain is missing — ancestors named by
   * the chains of arrived bundles but never imported successfully, and gaps in the sequences.
   */
  chainStatus(): LedgerChainStatus[] {
    const all = this.listBundles();
    const byStore = new Map<string, LedgerBundle[]>();
    for (const b of all) {
      const list = byStore.get(b.sourceStore) ?? [];
      list.push(b);
      byStore.set(b.sourceStore, list);
    }
    const out: LedgerChainStatus[] = [];
    for (const [sourceStore, bundles] of byStore) {
      const okIds = new Set(bundles.filter((b) => b.result === 'ok').map((b) => b.id));
      const okSeqs = new Set(bundles.filter((b) => b.result === 'ok').map((b) => b.sequence));
      const highest = Math.max(0, ...okSeqs);
      const missing = new Map<number, string | null>();
      for (const b of bundles) {
        for (const anc of b.chain) {
          if (okIds.has(anc)) continue;
          const seq = sequenceFromBundleId(anc);
          if (seq !== undefined && !okSeqs.has(seq)) missing.set(seq, anc);
        }
      }
      // Sequence gaps inside the newest bundle's chain (an export with --since may skip on purpose
      // what lies outside it): a disc that was never imported, id unknown unless a chain named it.
      const newest = bundles.reduce((a, b) => (b.sequence > a.sequence ? b : a));
      const start = newest.chain.length === 0 ? newest.sequence : (sequenceFromBundleId(newest.chain[0]!) ?? newest.sequence);
      for (let s = start; s < newest.sequence; s++) if (!okSeqs.has(s) && !missing.has(s)) missing.set(s, null);
      const ok = bundles.filter((b) => b.result === 'ok');
      const allSourcesThrough = Math.max(0, ...ok.filter((b) => b.sources === null).map((b) => b.sequence));
      const partial = new Map<string, { sequence: number; id: string; sources: readonly string[] }>();
      for (const b of ok) if (b.sources !== null && b.sequence > allSourcesThrough) partial.set(b.id, { sequence: b.sequence, id: b.id, sources: b.sources });
      out.push({
        sourceStore,
        bundles,
        highest,
        missing: [...missing.entries()].sort((a, b) => a[0] - b[0]).map(([sequence, id]) => ({ sequence, id })),
        allSourcesThrough,
        partial: [...partial.values()].sort((a, b) => a.sequence - b.sequence),
      });
    }
    return out;
  }
}
