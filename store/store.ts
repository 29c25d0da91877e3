/**
 * The store: content-addressed blob files (blobs.ts) kept apart from the SQLite index, in the
 * manner of cacache. Content goes in first and is recorded after it is in place; a tag moves
 * only once everything it points at is stored. A killed process therefore leaves at most temp
 * files, which the next open removes. The index is one connection (db.ts) shared by narrow
 * parts, one per table family: `content` (blobs, manifests), `tags` and `journal`, `modules`,
 * `runs` (and source states), `bundles` (and the export lock), `sumdb`; fsck.ts reads them all.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FerryError } from '../errors/index.js';
import { StoreAttachments } from './attachments.js';
import { BlobFiles } from './blobs.js';
import { StoreBundles } from './bundles.js';
import { StoreContent } from './content.js';
import { IndexDb } from './db.js';
import { fsck, storeStats } from './fsck.js';
import { collectGarbage, pendingGcFiles, type GcOptions, type GcResult } from './gc.js';
import { StoreModules } from './modules.js';
import { StoreRuns } from './runs.js';
import { StoreSumdb } from './sumdb.js';
import { StoreJournal, StoreTags } from './tags.js';
import type { FsckOptions, FsckResult, StoreOpenOptions, StoreStats } from './types.js';

/** The on-disk format version this code writes into the marker file. */
export const STORE_FORMAT = 1;
/** The marker file that makes a directory a Ferry store and names it. */
export const STORE_MARKER = 'ferry-store.json';
/** The index database file name. */
export const STORE_DB = 'ferry.db';

interface Marker {
  storeFormat: number;
  id: string;
}

function readMarker(file: string): Marker | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FerryError('STORE_IO', `cannot read ${file}: ${(err as Error).message}`, { op: 'open', file, cause: err });
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw new FerryError('STORE_CORRUPT', `${file} is not JSON: ${(err as Error).message}`, { op: 'open', file, cause: err });
  }
  const o = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
  if (typeof o['storeFormat'] !== 'number' || typeof o['id'] !== 'string' || o['id'] === '') {
    throw new FerryError('STORE_CORRUPT', `${file} lacks a numeric storeFormat and a string id`, { op: 'open', file });
  }
  if (o['storeFormat'] > STORE_FORMAT) {
    throw new FerryError(
      'STORE_CORRUPT',
      `store format ${o['storeFormat']} in ${file} is newer than this Ferry understands (${STORE_FORMAT}); upgrade Ferry to use this store`,
      { op: 'open', file },
    );
  }
  return { storeFormat: o['storeFormat'], id: o['id'] };
}

/** fsyncs what `path` names (a file, or a directory so its entries are durable). */
function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a small file atomically (temp, fsync, rename, fsync of the directory) so a crash never
 * leaves half a marker, nor loses a marker the index already names.
 */
function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { flag: 'w' });
    fsyncPath(tmp);
    renameSync(tmp, file);
    fsyncPath(dirname(file));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new FerryError('STORE_IO', `cannot write ${file}: ${(err as Error).message}`, { op: 'open', file, cause: err });
  }
}


/** A Ferry store: content-addressed blob files plus the SQLite index that describes them. */
export class Store {
  /** The store's id (from the marker file); bundles name their store by it. */
  readonly id: string;
  /** The store directory (absolute). */
  readonly dir: string;
  /** True when opened read-only. */
  readonly readonly: boolean;
  /** Blobs and manifests: the content-addressed part. */
  readonly content: StoreContent;
  /** The journal of changes exports read from. */
  readonly journal: StoreJournal;
  /** Where each source's tags point. */
  readonly tags: StoreTags;
  /** Go module versions and module lists. */
  readonly modules: StoreModules;
  /** Sync, export and import runs, and the sources' outcomes. */
  readonly runs: StoreRuns;
  /** Bundles recorded in this store, and the export lock. */
  readonly bundles: StoreBundles;
  /** Checksum-database heads, files and records. */
  readonly sumdb: StoreSumdb;
  /** Signatures, attestations, SBOMs and referrers by the manifest they are attached to. */
  readonly attachments: StoreAttachments;
  private readonly db: IndexDb;
  private readonly files: BlobFiles;

  private constructor(dir: string, id: string, db: IndexDb, files: BlobFiles, opts: StoreOpenOptions) {
    this.dir = dir;
    this.id = id;
    this.db = db;
    this.files = files;
    this.readonly = opts.readonly === true;
    // One connection for every part: a write that spans families (a module version with its
    // blob rows and journal entry; a run's end with its sources' outcomes and module lists; a
    // tag move with its journal entry) is one transaction, owned by the part that starts it.
    this.content = new StoreContent(db, files, opts.logger);
    this.journal = new StoreJournal(db);
    this.tags = new StoreTags(db, this.journal, this.content);
    this.modules = new StoreModules(db, this.content, this.journal);
    this.runs = new StoreRuns(db, this.modules);
    this.bundles = new StoreBundles(db);
    this.sumdb = new StoreSumdb(db, this.content);
    this.attachments = new StoreAttachments(db);
  }

  /**
   * Opens the store at `dir`, creating it when absent (unless read-only or `create: false`),
   * migrating the index and removing temp files left by killed processes.
   */
  static open(dir: string, opts: StoreOpenOptions = {}): Store {
    const root = resolve(dir);
    const ro = opts.readonly === true;
    const now = opts.now ?? (() => new Date());
    const markerFile = join(root, STORE_MARKER);
    const dbFile = join(root, STORE_DB);
    if (opts.busyTimeoutMs !== undefined && (!Number.isFinite(opts.busyTimeoutMs) || opts.busyTimeoutMs < 0)) {
      throw new FerryError('USAGE', `store option busyTimeoutMs must be a non-negative number, got ${String(opts.busyTimeoutMs)}`);
    }
    if (ro || opts.create === false) {
      if (!existsSync(dbFile)) {
        const why = existsSync(root) ? `the directory holds no ${STORE_DB}` : 'no such directory';
        throw new FerryError('STORE_NOT_FOUND', `no Ferry store at ${root}: ${why} (ferry sync, ferry daemon and ferry import --store create one)`, { op: 'open', file: root });
      }
    }
    if (!ro) {
      try {
        mkdirSync(root, { recursive: true });
      } catch (err) {
        throw new FerryError('STORE_IO', `cannot create store directory ${root}: ${(err as Error).message}`, { op: 'open', file: root, cause: err });
      }
      if (!existsSync(markerFile) && !existsSync(dbFile)) {
        const foreign = readdirSync(root).filter((n) => n !== 'blobs' && n !== 'tmp');
        if (foreign.length > 0) {
          throw new FerryError('USAGE', `refusing to use ${root} as a store: it is not empty and has no ${STORE_MARKER}`, { op: 'open', file: root });
        }
      }
    }
    const marker = readMarker(markerFile);
    const db = new IndexDb(dbFile, { readonly: ro, now, busyTimeoutMs: opts.busyTimeoutMs ?? 5000, dir: root });
    try {
      const dbId = db.getMeta('store_id');
      if (marker && dbId !== undefined && marker.id !== dbId) {
        throw new FerryError('STORE_CORRUPT', `${markerFile} names store ${marker.id} but its index belongs to store ${dbId}`, { op: 'open', file: root });
      }
      const id = marker?.id ?? dbId ?? randomUUID();
      const files = new BlobFiles(root);
      if (!ro) {
        if (dbId === undefined) db.setMeta('store_id', id);
        if (!marker) writeFileAtomic(markerFile, `${JSON.stringify({ storeFormat: STORE_FORMAT, id } satisfies Marker, null, 2)}\n`);
        files.init();
        const removed = files.cleanTmp(now());
        if (removed.length > 0) opts.logger?.info?.({ store: root, files: removed.length }, 'removed temp files left by an interrupted write');
      }
      const store = new Store(root, id, db, files, opts);
      if (!ro) {
        const aborted = store.runs.abortOrphans();
        if (aborted > 0) opts.logger?.info?.({ store: root, runs: aborted }, 'marked runs of ended processes as aborted');
      }
      return store;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * Makes every index commit so far durable (see IndexDb.flush): for the end of work that
   * something outside the store then records as done.
   */
  flush(op: string): void {
    this.db.flush(op);
  }

  /** Closes the blob directories' descriptors and the index. */
  close(): void {
    this.files.close();
    this.db.close();
  }

  /**
   * Checks the store end to end (fsck.ts): re-hashes every blob file, finds files without a
   * row, dangling references, tags and module versions whose content is missing. Reports;
   * repairs nothing. Blobs nothing uses are listed apart: not damage.
   */
  fsck(opts: FsckOptions = {}): Promise<FsckResult> {
    return fsck({ dir: this.dir, files: this.files, content: this.content, tags: this.tags, modules: this.modules, pendingDeletes: pendingGcFiles(this.db) }, opts);
  }

  /**
   * Removes what nothing live needs (gc.ts): tags of sources not in `keepSources`, then the
   * manifests and blobs no kept tag, module version or checksum-database file reaches.
   */
  gc(opts: GcOptions = {}): Promise<GcResult> {
    return collectGarbage(this.db, this.files, opts);
  }

  /** Counts for status pages. */
  stats(): StoreStats {
    return storeStats(this.db);
  }
}
