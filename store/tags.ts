/**
 * Tags and the journal. Each image entry (source) owns its rows of the tags it mirrors; a tag
 * moves only once everything it points at is stored, and each move that changes what the tag
 * selects is journaled in the same transaction. The journal is the ordered list of changes
 * exports read from: tag moves (written here) and module versions (appended by modules.ts
 * inside its own transaction, through JournalAppend).
 */
import type Database from 'better-sqlite3';
import { FerryError } from '../errors/index.js';
import { parseDigest, type Digest } from '../oci/index.js';
import { compact, type IndexDb } from './db.js';
import type { ChangeResult, JournalEntry, SetTagInput, SourceTagKey, TagFilter, TagKey, TagRow } from './types.js';

/** What the tags part asks of the manifests (content.ts): is a manifest recorded. */
export interface ManifestPresence {
  hasManifest(d: Digest): boolean;
}

/** A module version's journal entry, appended by modules.ts. */
export interface ModuleJournalInput {
  readonly at: string;
  /** The version's zip digest, or its mod digest when it has no zip. */
  readonly digest: Digest;
  /** The module root the version was synced for. */
  readonly source: string;
  readonly module: string;
  readonly version: string;
}

/** What another part may write to the journal: its entries, inside its own transaction. */
export interface JournalAppend {
  /** Appends a module entry inside the caller's transaction (store/ only: modules.ts); returns its seq. */
  appendModule(e: ModuleJournalInput): number;
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

/** The journal: what changed, in order, for exports to carry. */
export class StoreJournal implements JournalAppend {
  constructor(private readonly db: IndexDb) {}

  /** The highest journal seq (0 when empty). */
  currentSeq(): number {
    return this.db.run('currentSeq', () => {
      // The highest seq ever given (gc may have compacted the newest entry, a covered removal).
      const r = this.db.cached("SELECT MAX(COALESCE((SELECT MAX(seq) FROM journal), 0), COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0)) AS seq").get() as { seq: number | null };
      return r.seq ?? 0;
    });
  }

  /**
   * Journal entries after `seq` (up to `until`, inclusive), in order; at most `limit` of them
   * (a page: the next one starts after the last seq returned).
   */
  since(seq: number, opts: { until?: number; limit?: number } = {}): JournalEntry[] {
    return this.db.run('journalSince', () => {
      const rows = this.db
        .cached(
          `SELECT seq, at, kind, registry, repository, tag, digest, previous_digest AS previousDigest, source, target, module, version
           FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
        )
        .all(seq, opts.until ?? Number.MAX_SAFE_INTEGER, opts.limit ?? -1) as Array<Record<string, unknown>>;
      return rows.map((r) => compact<JournalEntry>(r));
    });
  }

  /** Journal entries after `seq` (up to `until`, inclusive), in order, read `pageSize` at a time. */
  *pages(seq: number, opts: { until?: number; pageSize: number }): Generator<JournalEntry[]> {
    for (let from = seq; ; ) {
      const page = this.since(from, { ...(opts.until !== undefined ? { until: opts.until } : {}), limit: opts.pageSize });
      if (page.length === 0) return;
      yield page;
      if (page.length < opts.pageSize) return;
      from = page[page.length - 1]!.seq;
    }
  }

  /** Appends a module entry inside the caller's transaction (store/ only: modules.ts); returns its seq. */
  appendModule(e: ModuleJournalInput): number {
    this.db.assertInTransaction('journal appendModule');
    const j = this.db.cached(`INSERT INTO journal (at, kind, digest, source, module, version) VALUES (?, 'module', ?, ?, ?, ?)`).run(e.at, e.digest, e.source, e.module, e.version);
    return Number(j.lastInsertRowid);
  }

  /**
   * Appends a tag's removal inside the caller's transaction (store/ only: StoreTags.remove): a
   * tag entry with no digest, `previous_digest` naming what it pointed at; returns its seq.
   */
  appendTagRemoval(row: TagRow, at: string): number {
    this.db.assertInTransaction('journal appendTagRemoval');
    const j = this.db
      .cached(
        `INSERT INTO journal (at, kind, registry, repository, tag, digest, previous_digest, source, target)
         VALUES (?, 'tag', ?, ?, ?, NULL, ?, ?, ?)`,
      )
      .run(at, row.registry, row.repository, row.tag, row.digest, row.source, row.target);
    return Number(j.lastInsertRowid);
  }

  /** Appends a tag move inside the caller's transaction (store/ only: StoreTags.set); returns its seq. */
  appendTag(row: SetTagInput, previous: Digest | undefined, at: string): number {
    this.db.assertInTransaction('journal appendTag');
    const j = this.db
      .cached(
        `INSERT INTO journal (at, kind, registry, repository, tag, digest, previous_digest, source, target)
         VALUES (?, 'tag', ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(at, row.registry, row.repository, row.tag, row.digest, previous ?? null, row.source, row.target);
    return Number(j.lastInsertRowid);
  }
}

/** Where each source's tags point. */
export class StoreTags {
  constructor(
    private readonly db: IndexDb,
    private readonly journal: StoreJournal,
    private readonly manifests: ManifestPresence,
  ) {}

  /**
   * One source's state of a tag. Without `source`: the tag's row when a single source mirrors
   * it; USAGE naming the sources when several do.
   */
  get(key: TagKey & { readonly source?: string }): TagRow | undefined {
    if (key.source !== undefined) return this.getOne({ ...key, source: key.source });
    const rows = this.rows(key);
    if (rows.length > 1) {
      throw new FerryError('USAGE', `getTag ${key.registry}/${key.repository}:${key.tag}: mirrored by several sources (${rows.map((r) => r.source).join(', ')}); name one`, {
        op: 'getTag',
      });
    }
    return rows[0];
  }

  private getOne(k: SourceTagKey): TagRow | undefined {
    return this.db.run('getTag', () => {
      const r = this.db.cached('SELECT * FROM tags WHERE source = ? AND registry = ? AND repository = ? AND tag = ?').get(k.source, k.registry, k.repository, k.tag) as
        | TagDbRow
        | undefined;
      return r && tagRow(r);
    });
  }

  /** Every source's row of one upstream tag, by source. */
  rows(k: TagKey): TagRow[] {
    return this.db.run('tagRows', () =>
      (this.db.cached('SELECT * FROM tags WHERE registry = ? AND repository = ? AND tag = ? ORDER BY source').all(k.registry, k.repository, k.tag) as TagDbRow[]).map(tagRow),
    );
  }

  /** Records that a source's unchanged tag was checked (cheap); false when the tag is unknown. */
  touch(k: SourceTagKey, checkedAt?: string): boolean {
    this.db.assertWritable('touchTag');
    return this.db.run('touchTag', () => {
      const r = this.db
        .cached('UPDATE tags SET checked_at = ? WHERE source = ? AND registry = ? AND repository = ? AND tag = ?')
        .run(checkedAt ?? this.db.iso(), k.source, k.registry, k.repository, k.tag);
      return r.changes > 0;
    });
  }

  /** Marks many unchanged tags as checked in one commit (a whole unchanged image); returns how many were known. */
  touchMany(keys: readonly SourceTagKey[], checkedAt?: string): number {
    this.db.assertWritable('touchTags');
    if (keys.length === 0) return 0;
    return this.db.run('touchTags', () => {
      const at = checkedAt ?? this.db.iso();
      const stmt = this.db.cached('UPDATE tags SET checked_at = ? WHERE source = ? AND registry = ? AND repository = ? AND tag = ?');
      return this.db.sql.transaction(() => keys.reduce((n, k) => n + stmt.run(at, k.source, k.registry, k.repository, k.tag).changes, 0))();
    });
  }

  /**
   * Moves a source's tag. Call it only after the manifest and the kept children are stored
   * (MANIFEST_UNKNOWN otherwise). Journals the change, in the same transaction, when the digest,
   * kept set or target changed, or when `contentAdded` says the closure gained content.
   */
  set(input: SetTagInput): ChangeResult {
    this.db.assertWritable('setTag');
    const where = `setTag ${input.registry}/${input.repository}:${input.tag}`;
    const digest = parseDigest(input.digest, where);
    const keptDigests = [...new Set(input.keptDigests.map((k) => parseDigest(k, `${where} kept digest`)))].sort();
    for (const d of [digest, ...keptDigests]) {
      if (!this.manifests.hasManifest(d)) {
        throw new FerryError('MANIFEST_UNKNOWN', `${where}: manifest ${d} is not stored; store content before moving the tag`, {
          op: 'setTag',
          registry: input.registry,
          repository: input.repository,
          reference: input.tag,
          digest: d,
        });
      }
    }
    const row: SetTagInput = { ...input, digest, keptDigests, platforms: input.platforms === null ? null : [...input.platforms] };
    return this.db.write('setTag', (): ChangeResult => {
      const now = this.db.iso();
      const old = this.getOne(row);
      const kept = JSON.stringify(row.keptDigests);
      const changed =
        old === undefined ||
        old.digest !== row.digest ||
        old.target !== row.target ||
        JSON.stringify(old.keptDigests) !== kept ||
        row.contentAdded === true;
      this.db
        .cached(
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
      return { changed: true, seq: this.journal.appendTag(row, old?.digest, now) };
    });
  }

  /**
   * Removes a source's tag from the live tags (`prune: true`: gone upstream or no longer
   * selected), journaling the removal in the same transaction so the next bundle carries it.
   * Its content stays until nothing needs it.
   */
  remove(k: SourceTagKey): ChangeResult {
    this.db.assertWritable('removeTag');
    return this.db.write('removeTag', (): ChangeResult => {
      const old = this.getOne(k);
      if (old === undefined) return { changed: false };
      this.db.cached('DELETE FROM tags WHERE source = ? AND registry = ? AND repository = ? AND tag = ?').run(k.source, k.registry, k.repository, k.tag);
      return { changed: true, seq: this.journal.appendTagRemoval(old, this.db.iso()) };
    });
  }

  /**
   * An empty set of tag keys, held in a temporary table of this connection (not in the store's
   * file), whose rows are read back in pages: what an export carries of 50,000 tags is never a
   * list in memory. Close it when done.
   */
  keySet(): TagKeySet {
    return new TagKeySet(this.db, `tag_keys_${++keySets}`);
  }

  /** Every tag's row, `pageSize` at a time, in list() order (keyset pages: nothing held between them). */
  *pages(pageSize: number): Generator<TagRow[]> {
    const first = this.db.cached('SELECT * FROM tags ORDER BY registry, repository, tag, source LIMIT ?');
    const next = this.db.cached('SELECT * FROM tags WHERE (registry, repository, tag, source) > (?, ?, ?, ?) ORDER BY registry, repository, tag, source LIMIT ?');
    for (let after: TagCursor | undefined; ; ) {
      const a = after;
      const page = this.db.run('listTagsPage', () =>
        ((a === undefined ? first.all(pageSize) : next.all(a.registry, a.repository, a.tag, a.source, pageSize)) as TagDbRow[]).map(tagRow),
      );
      if (page.length === 0) return;
      yield page;
      if (page.length < pageSize) return;
      after = page[page.length - 1];
    }
  }

  /** Tags matching the filter, ordered by registry, repository, tag, source. */
  list(f: TagFilter = {}): TagRow[] {
    return this.db.run('listTags', () => {
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
      return (this.db.sql.prepare(sql).all(...args) as TagDbRow[]).map(tagRow);
    });
  }
}

let keySets = 0;

/** Where a page of a TagKeySet's rows starts after: the last row of the page before. */
export type TagCursor = Pick<TagRow, 'registry' | 'repository' | 'tag' | 'source'>;

/** Tag keys in a temporary table, read back as the tags' rows in pages (StoreTags.keySet). */
export class TagKeySet {
  private readonly insert: Database.Statement;
  private readonly first: Database.Statement;
  private readonly next: Database.Statement;
  private closed = false;

  constructor(
    private readonly db: IndexDb,
    private readonly table: string,
  ) {
    const t = `temp.${table}`;
    db.run('tagKeySet', () =>
      db.sql.exec(`CREATE TEMP TABLE ${table} (registry TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (registry, repository, tag, source)) WITHOUT ROWID`),
    );
    const rows = `SELECT t.* FROM ${t} k JOIN tags t ON t.source = k.source AND t.registry = k.registry AND t.repository = k.repository AND t.tag = k.tag`;
    const order = 'ORDER BY k.registry, k.repository, k.tag, k.source LIMIT ?';
    this.insert = db.sql.prepare(`INSERT OR IGNORE INTO ${t} (registry, repository, tag, source) VALUES (?, ?, ?, ?)`);
    this.first = db.sql.prepare(`${rows} ${order}`);
    this.next = db.sql.prepare(`${rows} WHERE (k.registry, k.repository, k.tag, k.source) > (?, ?, ?, ?) ${order}`);
  }

  /** Adds keys (one transaction; a key already in the set is left as it is). */
  add(keys: Iterable<SourceTagKey>): void {
    this.db.run('tagKeySetAdd', () =>
      this.db.sql.transaction(() => {
        for (const k of keys) this.insert.run(k.registry, k.repository, k.tag, k.source);
      })(),
    );
  }

  /**
   * The rows of the set's keys that are live tags, ordered by registry, repository, tag, source
   * (as StoreTags.list), at most `limit`, after `after` (the last row of the previous page).
   */
  page(after: TagCursor | undefined, limit: number): TagRow[] {
    return this.db.run('tagKeySetPage', () => {
      const rows = (after === undefined ? this.first.all(limit) : this.next.all(after.registry, after.repository, after.tag, after.source, limit)) as TagDbRow[];
      return rows.map(tagRow);
    });
  }

  /** Every row of the set's live tags, `pageSize` at a time, in StoreTags.list order. */
  *pages(pageSize: number): Generator<TagRow[]> {
    for (let after: TagCursor | undefined; ; ) {
      const page = this.page(after, pageSize);
      if (page.length === 0) return;
      yield page;
      if (page.length < pageSize) return;
      after = page[page.length - 1];
    }
  }

  /**
   * The set's live rows that send their tag to a target another of them sends the same tag to,
   * in StoreTags.list order (rare: overlapping tag filters of two image entries into one repository).
   */
  sharedTargets(): TagRow[] {
    return this.db.run('tagKeySetShared', () => {
      const rows = this.db.sql
        .prepare(
          `WITH r AS (SELECT t.* FROM temp.${this.table} k JOIN tags t ON t.source = k.source AND t.registry = k.registry AND t.repository = k.repository AND t.tag = k.tag)
           SELECT * FROM r WHERE (target, tag) IN (SELECT target, tag FROM r GROUP BY target, tag HAVING COUNT(*) > 1)
           ORDER BY registry, repository, tag, source`,
        )
        .all() as TagDbRow[];
      return rows.map(tagRow);
    });
  }

  /** The distinct digest and media type pairs the set's live rows name, with how many rows name each. */
  digests(): Array<{ digest: Digest; mediaType: string; rows: number }> {
    return this.db.run('tagKeySetDigests', () =>
      this.db.sql
        .prepare(
          `SELECT t.digest AS digest, t.media_type AS mediaType, COUNT(*) AS rows FROM temp.${this.table} k
           JOIN tags t ON t.source = k.source AND t.registry = k.registry AND t.repository = k.repository AND t.tag = k.tag
           GROUP BY t.digest, t.media_type ORDER BY t.digest, t.media_type`,
        )
        .all() as Array<{ digest: Digest; mediaType: string; rows: number }>,
    );
  }

  /** Drops the temporary table. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.run('tagKeySetClose', () => this.db.sql.exec(`DROP TABLE IF EXISTS temp.${this.table}`));
  }
}
