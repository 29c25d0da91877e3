/**
 * The store index's connection: one better-sqlite3 handle that every part of the index shares
 * (tags.ts, modules.ts, runs.ts, bundles.ts, content.ts, sumdb.ts), so a write that spans
 * families is still one transaction. It opens and migrates the database, turns SQLite failures
 * into FerryErrors, and is the one place that decides how durable a commit is.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { migrate } from './migrations.js';

/** A value of `PRAGMA synchronous` the index may run with (in WAL mode). */
export type Synchronous = 'FULL' | 'NORMAL';

/**
 * How durable an ordinary commit is; `PRAGMA synchronous` is set here and nowhere else.
 * FULL: every commit is on disk before it returns, so a committed tag move or bundle record
 * survives a power cut, not only a crash. NORMAL (WAL): a commit survives a crash of the
 * process, but the last ones may be lost to a power cut; writes made through `durable()` still
 * reach the disk before they return, and with them every commit before them (the WAL is one
 * file, appended in commit order), and `flush()` makes every commit so far durable.
 *
 * NORMAL: what a power cut may take is what the next sync fetches again; the records that must
 * outlive one (bundle records, checksum-database heads, the end of an import into a store, whose
 * ledger then says done) are durable writes or followed by `flush()`. Measured against FULL on
 * the benchmark's workloads (alternating runs, time NORMAL/FULL): about 1 for image sync, Go
 * module sync, export and import alike, so what decides is that no batching is needed to spare
 * fsyncs (the module sync records each event-loop turn's versions in one commit).
 */
export const INDEX_SYNCHRONOUS: Synchronous = 'NORMAL';

/** Options for opening the index. */
export interface IndexOptions {
  readonly readonly: boolean;
  readonly now: () => Date;
  readonly busyTimeoutMs: number;
  /** The store directory, named by the read-only refusal. */
  readonly dir: string;
  /**
   * The durability of ordinary commits (tests of `durable()` pass NORMAL).
   * @default INDEX_SYNCHRONOUS
   */
  readonly synchronous?: Synchronous;
}

/** Turns a SQLite failure into a FerryError with a stable code. */
export function sqlError(err: unknown, op: string, file: string): unknown {
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

/** A JSON column value (NULL for undefined). */
export function json(v: unknown): string | null {
  return v === undefined ? null : JSON.stringify(v);
}

/** A JSON column read back (undefined for NULL). */
export function parseJson(s: string | null): unknown {
  return s === null ? undefined : JSON.parse(s);
}

/** Drops null columns so optional fields are absent rather than null. */
export function compact<T extends object>(o: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) out[k] = v;
  return out as T;
}

/**
 * Prepared statements of one connection, each compiled once: a statement compiled per call holds
 * native memory until the garbage collector reaches it.
 */
export class StatementCache {
  private readonly stmts = new Map<string, Database.Statement>();

  /** The statement for `sql` on `db`, the connection this cache belongs to. */
  get(db: Database.Database, sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }
}

/** The shared connection of a store's index; the parts run their SQL through it. */
export class IndexDb {
  readonly file: string;
  /** The store directory. */
  readonly dir: string;
  /** True when opened read-only. */
  readonly readonly: boolean;
  /** The handle, for the parts of the index (store/ only). */
  readonly sql: Database.Database;
  private readonly now: () => Date;
  private readonly synchronous: Synchronous;
  /** Prepared statements of the hot paths (per blob, per version, per tag), compiled once. */
  private readonly stmts = new StatementCache();

  /** Opens (and, unless read-only, creates and migrates) the index at `file`. */
  constructor(file: string, opts: IndexOptions) {
    this.file = file;
    this.dir = opts.dir;
    this.readonly = opts.readonly;
    this.now = opts.now;
    this.synchronous = opts.synchronous ?? INDEX_SYNCHRONOUS;
    try {
      this.sql = new Database(file, { readonly: opts.readonly, fileMustExist: opts.readonly, timeout: opts.busyTimeoutMs });
    } catch (err) {
      throw sqlError(err, 'open', file);
    }
    try {
      this.sql.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
      this.sql.pragma('foreign_keys = ON');
      if (!opts.readonly) {
        this.sql.pragma('journal_mode = WAL');
        this.sql.pragma(`synchronous = ${this.synchronous}`);
      }
      migrate(this.sql, file, opts.readonly);
      this.tx = this.sql.transaction((fn: () => unknown) => fn());
    } catch (err) {
      this.sql.close();
      throw sqlError(err, 'open', file);
    }
  }

  /** Runs `fn`, turning a SQLite failure into a FerryError naming `op`. */
  run<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw sqlError(err, op, this.file);
    }
  }

  /**
   * One transaction wrapper that runs the function it is given, made once: better-sqlite3's
   * `transaction()` builds several functions per call, garbage on every commit of a hot path
   * (one per tag moved).
   */
  private readonly tx: Database.Transaction<(fn: () => unknown) => unknown>;

  /** Runs `fn` in one immediate write transaction: an ordinary commit (see INDEX_SYNCHRONOUS). */
  write<T>(op: string, fn: () => T): T {
    return this.run(op, () => this.tx.immediate(fn) as T);
  }

  /**
   * Runs `fn` in one immediate write transaction whose commit is on disk before this returns,
   * whatever INDEX_SYNCHRONOUS says: for the records that must survive a power cut (see the
   * callers). SQLite refuses to change `synchronous` inside a transaction, so this must be the
   * outermost one.
   */
  durable<T>(op: string, fn: () => T): T {
    if (this.synchronous === 'FULL') return this.write(op, fn);
    return this.run(op, () => {
      if (this.sql.inTransaction) throw new FerryError('INTERNAL', `${op}: a durable write cannot run inside another transaction`, { op });
      this.sql.pragma('synchronous = FULL');
      try {
        return this.tx.immediate(fn) as T;
      } finally {
        this.sql.pragma(`synchronous = ${this.synchronous}`);
      }
    });
  }

  /**
   * Makes every commit so far durable, whatever INDEX_SYNCHRONOUS says: fsyncs the WAL file,
   * which holds every commit since the last checkpoint (a checkpoint syncs the database file
   * before the WAL is reused). For a point after which something outside the index (a ledger,
   * a report) says the work is done. Outside a transaction only.
   */
  flush(op: string): void {
    this.run(op, () => {
      if (this.sql.inTransaction) throw new FerryError('INTERNAL', `${op}: a flush cannot run inside a transaction`, { op });
      if (this.readonly || this.synchronous === 'FULL') return;
      let fd: number;
      try {
        fd = fs.openSync(`${this.file}-wal`, 'r');
      } catch (err) {
        // No WAL file: nothing committed since the last checkpoint that closed it.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw new FerryError('STORE_IO', `store index flush (${op}) failed for ${this.file}-wal: ${(err as Error).message}`, { op, file: `${this.file}-wal`, cause: err });
      }
      try {
        fs.fsyncSync(fd);
      } catch (err) {
        throw new FerryError('STORE_IO', `store index flush (${op}) failed for ${this.file}-wal: ${(err as Error).message}`, { op, file: `${this.file}-wal`, cause: err });
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  /**
   * Refuses to run a part's write outside its caller's transaction: the methods other parts
   * call to write their rows (see the interfaces in tags.ts, modules.ts and content.ts) commit
   * with the caller's rows or not at all.
   */
  assertInTransaction(op: string): void {
    if (!this.sql.inTransaction) throw new FerryError('INTERNAL', `${op} must run inside its caller's transaction`, { op });
  }

  /** Sets the page cache of the main and temporary schemas to `kib` KiB; the returned function restores what they were. */
  limitCache(kib: number): () => void {
    return this.run('limitCache', () => {
      const size = -Math.max(1, Math.floor(kib));
      const main = this.sql.pragma('main.cache_size', { simple: true }) as number;
      const temp = this.sql.pragma('temp.cache_size', { simple: true }) as number;
      this.sql.pragma(`main.cache_size = ${size}`);
      this.sql.pragma(`temp.cache_size = ${size}`);
      return () =>
        this.run('restoreCache', () => {
          this.sql.pragma(`main.cache_size = ${main}`);
          this.sql.pragma(`temp.cache_size = ${temp}`);
        });
    });
  }

  /** A prepared statement, compiled once per connection. */
  cached(sql: string): Database.Statement {
    return this.stmts.get(this.sql, sql);
  }

  /** Now, as recorded in every time column. */
  iso(): string {
    return this.now().toISOString();
  }

  /** Refuses a write on a store opened read-only. */
  assertWritable(op: string): void {
    if (this.readonly) throw new FerryError('STORE_IO', `${op}: store ${this.dir} is open read-only`, { op, file: this.dir });
  }

  /** Closes the database. */
  close(): void {
    if (this.sql.open) this.sql.close();
  }

  /** The schema version of the open database. */
  schemaVersion(): number {
    return this.run('schemaVersion', () => this.sql.pragma('user_version', { simple: true }) as number);
  }

  /** A value from the meta table. */
  getMeta(key: string): string | undefined {
    return this.run('getMeta', () => {
      const r = this.sql.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
      return r?.value;
    });
  }

  /** Sets a value in the meta table. */
  setMeta(key: string, value: string): void {
    this.run('setMeta', () => {
      this.sql.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
    });
  }
}
