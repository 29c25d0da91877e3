/**
 * The store facade: blob files (blobs.ts) kept apart from the SQLite index (db.ts), in the
 * manner of cacache. Content goes in first and is recorded after it is in place; a tag moves
 * only through setTag, which the caller calls once everything it points at is stored. A
 * killed process therefore leaves at most temp files, which the next open removes.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { FerryError, toFerryError } from '../errors/index.js';
import { INDEX_MEDIA_TYPES, isNonDistributableMediaType, parseDigest, platformString, sha256Digest, type Digest } from '../oci/index.js';
import { BlobFiles, discardSource, type BlobSource } from './blobs.js';
import { StoreIndex } from './db.js';
import { pidAlive, processStartTime } from './pid.js';
import type { SumdbFileRow, SumdbHeadRow, SumdbRecordRow } from './sumdb.js';
import type {
  AddBundleInput,
  BlobRow,
  BundleRow,
  ChangeResult,
  FinishRunInput,
  FsckOptions,
  FsckProblem,
  FsckResult,
  ImportFileOptions,
  JournalEntry,
  LockHolder,
  ManifestRow,
  ModuleListRow,
  ModuleVersionFilter,
  ModuleVersionInput,
  ModuleVersionRow,
  PutManifestInput,
  PutModuleVersionOptions,
  ReadBlobOptions,
  RemovedBlobs,
  RunKind,
  RunRow,
  SetTagInput,
  SourceState,
  SourceTagKey,
  StoreLock,
  StoreLogger,
  StoreOpenOptions,
  StoreStats,
  TagFilter,
  TagKey,
  TagRow,
  UnindexedBlob,
  WriteBlobOptions,
  WriteBlobResult,
} from './types.js';

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

/** Writes a small file atomically (temp, fsync, rename) so a crash never leaves half a marker. */
function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { flag: 'w' });
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new FerryError('STORE_IO', `cannot write ${file}: ${(err as Error).message}`, { op: 'open', file, cause: err });
  }
}

/** Waits for `p` (ignoring how it ended) unless `signal` aborts first. */
function settleOrAbort(p: Promise<unknown>, signal: AbortSignal | undefined, d: Digest): Promise<void> {
  const settled = p.then(
    () => undefined,
    () => undefined,
  );
  if (!signal) return settled;
  if (signal.aborted) return Promise.reject(new FerryError('ABORTED', `writeBlob of ${d} aborted`, { op: 'writeBlob', digest: d }));
  return new Promise<void>((res, rej) => {
    const onAbort = (): void => rej(new FerryError('ABORTED', `writeBlob of ${d} aborted`, { op: 'writeBlob', digest: d }));
    signal.addEventListener('abort', onAbort, { once: true });
    void settled.then(() => {
      signal.removeEventListener('abort', onAbort);
      res();
    });
  });
}

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

/** A Ferry store: content-addressed blob files plus the SQLite index that describes them. */
export class Store {
  /** The store's id (from the marker file); bundles name their store by it. */
  readonly id: string;
  /** The store directory (absolute). */
  readonly dir: string;
  /** True when opened read-only. */
  readonly readonly: boolean;
  private readonly index: StoreIndex;
  private readonly blobs: BlobFiles;
  private readonly logger: StoreLogger | undefined;
  private readonly now: () => Date;
  /** Writes in progress in this process, by digest: a second writer waits for the first. */
  private readonly inflight = new Map<Digest, Promise<WriteBlobResult>>();
  /** Blobs this process put in place with `index: false` and has not recorded yet, with their sizes. */
  private readonly unindexed = new Map<Digest, number>();

  private constructor(dir: string, id: string, index: StoreIndex, blobs: BlobFiles, opts: StoreOpenOptions) {
    this.dir = dir;
    this.id = id;
    this.index = index;
    this.blobs = blobs;
    this.readonly = opts.readonly === true;
    this.logger = opts.logger;
    this.now = opts.now ?? (() => new Date());
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
    const index = new StoreIndex(dbFile, { readonly: ro, now, busyTimeoutMs: opts.busyTimeoutMs ?? 5000 });
    try {
      const dbId = index.getMeta('store_id');
      if (marker && dbId !== undefined && marker.id !== dbId) {
        throw new FerryError('STORE_CORRUPT', `${markerFile} names store ${marker.id} but its index belongs to store ${dbId}`, { op: 'open', file: root });
      }
      const id = marker?.id ?? dbId ?? randomUUID();
      const blobs = new BlobFiles(root);
      if (!ro) {
        if (dbId === undefined) index.setMeta('store_id', id);
        if (!marker) writeFileAtomic(markerFile, `${JSON.stringify({ storeFormat: STORE_FORMAT, id } satisfies Marker, null, 2)}\n`);
        blobs.init();
        const removed = blobs.cleanTmp(now());
        if (removed.length > 0) opts.logger?.info?.({ store: root, files: removed.length }, 'removed temp files left by an interrupted write');
        const aborted = index.abortOrphanRuns();
        if (aborted > 0) opts.logger?.info?.({ store: root, runs: aborted }, 'marked runs of ended processes as aborted');
      }
      return new Store(root, id, index, blobs, opts);
    } catch (err) {
      index.close();
      throw err;
    }
  }

  /** Stops the blob writer threads and closes the index. */
  close(): void {
    this.blobs.close();
    this.index.close();
  }

  private assertWritable(op: string): void {
    if (this.readonly) throw new FerryError('STORE_IO', `${op}: store ${this.dir} is open read-only`, { op, file: this.dir });
  }

  // ---- locks ----

  /**
   * Takes the store's export lock, before any export work: one export at a time, so two never
   * race for the bundle sequence. EXPORT_BUSY names the holder when another export (in any
   * process on this host, or in this one) has it; a holder killed without releasing it (kill -9)
   * is recognised by its pid and process start time and replaced.
   */
  lockExport(): StoreLock {
    this.assertWritable('lockExport');
    const startTime = processStartTime(process.pid);
    const holder: LockHolder = {
      pid: process.pid,
      ...(startTime !== undefined ? { startTime } : {}),
      host: hostname(),
      token: randomUUID(),
      since: this.now().toISOString(),
    };
    const held = this.index.takeLock('export', holder, lockHolderLive);
    if (held) {
      throw new FerryError('EXPORT_BUSY', `store ${this.dir}: another export is running (process ${held.pid}, since ${held.since}); try again when it has finished`, {
        op: 'export',
        file: this.dir,
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
        this.index.releaseLock('export', holder.token);
      },
    };
  }

  // ---- blobs ----

  /** True when the blob is recorded in the index. */
  hasBlob(d: Digest): boolean {
    return this.index.getBlob(d) !== undefined;
  }

  /** The final path of a blob's file (whether or not it exists). */
  blobPath(d: Digest): string {
    return this.blobs.path(parseDigest(d, 'blobPath'));
  }

  /** The recorded size of a blob. */
  blobSize(d: Digest): number | undefined {
    return this.index.getBlob(d)?.size;
  }

  /** The index row of a blob. */
  getBlob(d: Digest): BlobRow | undefined {
    return this.index.getBlob(d);
  }

  /**
   * Streams a blob into the store, verifying digest (and size when given) before it is
   * renamed into place and recorded. An already-stored blob's source is destroyed unread
   * (`written: false`); concurrent writes of one digest in this process are merged.
   */
  async writeBlob(d: Digest, source: BlobSource, opts: WriteBlobOptions = {}): Promise<WriteBlobResult> {
    try {
      this.assertWritable('writeBlob');
      parseDigest(d, 'writeBlob');
      if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) {
        throw new FerryError('USAGE', `writeBlob: size must be a non-negative integer, got ${String(opts.size)}`, { digest: d });
      }
    } catch (err) {
      discardSource(source);
      throw err;
    }
    return this.merged(d, opts.signal, () => discardSource(source), () => this.writeOnce(d, opts, () => this.blobs.write(d, source, { size: opts.size, signal: opts.signal }), () => discardSource(source)));
  }

  /**
   * Moves a file the caller wrote (and hashed to `d` while writing) into the store by rename
   * instead of copying it: fsync → rename → record. The file must be on the store's filesystem
   * (see makeTempDir; on another one it is copied and verified instead). When the blob is
   * already stored the file is left where it is (`written: false`): the caller removes it.
   */
  async importFile(file: string, d: Digest, size: number, opts: ImportFileOptions = {}): Promise<WriteBlobResult> {
    this.assertWritable('importFile');
    parseDigest(d, 'importFile');
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new FerryError('USAGE', `importFile: size must be a non-negative integer, got ${String(size)}`, { digest: d, file });
    }
    const o = { ...opts, size };
    return this.merged(d, opts.signal, () => {}, () =>
      this.writeOnce(
        d,
        o,
        async () => {
          if (await this.blobs.adopt(file, d, size)) return size;
          return this.blobs.write(d, createReadStream(file, { highWaterMark: 1 << 20 }), { size, signal: opts.signal });
        },
        () => {},
      ),
    );
  }

  /** A new private directory under the store's tmp/, for files to `importFile`; the caller removes it. */
  makeTempDir(label: string): Promise<string> {
    this.assertWritable('makeTempDir');
    return this.blobs.makeTempDir(label);
  }

  /** Runs `write` unless a write of `d` is in flight in this process: then waits and tries again. */
  private async merged(d: Digest, signal: AbortSignal | undefined, discard: () => void, write: () => Promise<WriteBlobResult>): Promise<WriteBlobResult> {
    for (;;) {
      const pending = this.inflight.get(d);
      if (pending) {
        try {
          await settleOrAbort(pending, signal, d);
        } catch (err) {
          discard();
          throw err;
        }
        continue; // the first writer may have failed (bad source): try again with ours
      }
      const p = write();
      this.inflight.set(d, p);
      try {
        return await p;
      } finally {
        this.inflight.delete(d);
      }
    }
  }

  private async writeOnce(
    d: Digest,
    opts: { size?: number | undefined; mediaType?: string | undefined; index?: boolean | undefined },
    place: () => Promise<number>,
    discard: () => void,
  ): Promise<WriteBlobResult> {
    const row = this.index.getBlob(d);
    if (row) {
      let onDisk: number | undefined;
      try {
        onDisk = this.blobs.fileSize(d);
      } catch (err) {
        discard();
        throw err;
      }
      if (onDisk === row.size) {
        discard();
        if (opts.size !== undefined && opts.size !== row.size) {
          throw new FerryError('SIZE_MISMATCH', `blob ${d} is stored with ${row.size} bytes, but ${opts.size} were expected`, { op: 'writeBlob', digest: d });
        }
        if (opts.mediaType !== undefined && row.mediaType === null) this.index.putBlob(d, row.size, opts.mediaType);
        return { digest: d, size: row.size, written: false };
      }
      this.logger?.warn?.({ digest: d, file: this.blobs.path(d), onDisk: onDisk ?? null, recorded: row.size }, 'blob file missing or damaged: rewriting it');
    } else if (opts.index === false && this.unindexed.has(d)) {
      // Placed (verified, fsynced) by this process and awaiting its row: many module versions
      // share one .info, so the same bytes are not written again while the rows are batched.
      const placed = this.unindexed.get(d) ?? -1;
      let onDisk: number | undefined;
      try {
        onDisk = this.blobs.fileSize(d);
      } catch {
        onDisk = undefined;
      }
      if (onDisk === placed && (opts.size === undefined || opts.size === placed)) {
        discard();
        return { digest: d, size: placed, written: false };
      }
    }
    const size = await place();
    // Recorded only now that the file is in place: a row never exists without its file.
    if (opts.index !== false) this.index.putBlob(d, size, opts.mediaType);
    else this.unindexed.set(d, size);
    return { digest: d, size, written: true };
  }

  /** Stores small content held in memory (manifests, JSON); the digest is computed when not given. */
  async writeBlobBytes(d: Digest | undefined, bytes: Buffer, opts: WriteBlobOptions = {}): Promise<WriteBlobResult> {
    const digest = d ?? sha256Digest(bytes);
    const size = opts.size ?? bytes.length;
    this.assertWritable('writeBlob');
    parseDigest(digest, 'writeBlob');
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new FerryError('USAGE', `writeBlob: size must be a non-negative integer, got ${String(size)}`, { digest });
    }
    const o = { ...opts, size };
    // No stream for bytes in memory: the same checks and steps as writeBlob, without the machinery.
    return this.merged(digest, opts.signal, () => {}, () => this.writeOnce(digest, o, () => this.blobs.writeBytes(digest, bytes, size), () => {}));
  }

  /**
   * Removes those of `digests` that nothing in the index uses (no manifest, reference, tag,
   * module version or checksum-database file names them): the rows in one write transaction,
   * then the files. For content a failed piece of work stored before it recorded what uses it
   * (an import's abort). A digest being written in this process is left alone. Another process
   * that saw such a blob as present just before and records a use of it just after is the one
   * race left (no cross-process writer lock yet): its next write of that digest finds the file
   * missing and rewrites it, and fsck reports the gap until then.
   */
  async removeUnreferencedBlobs(digests: Iterable<Digest>): Promise<RemovedBlobs> {
    this.assertWritable('removeUnreferencedBlobs');
    const wanted = [...new Set(digests)].filter((d) => !this.inflight.has(d) && !this.unindexed.has(d));
    if (wanted.length === 0) return { removed: [], bytes: 0 };
    const removed = this.index.deleteUnreferencedBlobs(wanted);
    for (const b of removed) await this.blobs.remove(b.digest);
    return { removed, bytes: removed.reduce((n, b) => n + b.size, 0) };
  }

  /** A stream of a stored blob, verified as it flows unless `verify: false`; BLOB_UNKNOWN when not stored. */
  readBlob(d: Digest, opts: ReadBlobOptions = {}): Readable {
    const row = this.index.getBlob(d);
    if (!row) throw new FerryError('BLOB_UNKNOWN', `blob ${d} is not in the store`, { op: 'readBlob', digest: d });
    return this.blobs.read(d, row.size, { verify: opts.verify !== false, signal: opts.signal });
  }

  /** A whole stored blob, verified; BODY_TOO_LARGE when it is bigger than `maxBytes`. */
  async readBlobBytes(d: Digest, maxBytes: number, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    const row = this.index.getBlob(d);
    if (!row) throw new FerryError('BLOB_UNKNOWN', `blob ${d} is not in the store`, { op: 'readBlobBytes', digest: d });
    if (row.size > maxBytes) {
      throw new FerryError('BODY_TOO_LARGE', `blob ${d} has ${row.size} bytes, more than the ${maxBytes} allowed here`, { op: 'readBlobBytes', digest: d });
    }
    return this.blobs.readBytes(d, row.size, opts.signal);
  }

  // ---- manifests ----

  /** Stores a manifest's exact bytes as a blob and records what it references. */
  async putManifest(m: PutManifestInput): Promise<void> {
    this.assertWritable('putManifest');
    parseDigest(m.digest, 'putManifest');
    const refs = m.references.map((r) => ({
      digest: parseDigest(r.digest, `putManifest ${m.digest} reference`),
      mediaType: r.mediaType,
      size: r.size,
      ...(r.platform ? { platform: platformString(r.platform) } : {}),
    }));
    const w = await this.writeBlobBytes(m.digest, m.bytes, { mediaType: m.mediaType, signal: m.signal });
    this.index.putManifest(m.digest, m.mediaType, w.size, m.platform, refs);
  }

  /** A recorded manifest with its references. */
  getManifest(d: Digest): ManifestRow | undefined {
    return this.index.getManifest(d);
  }

  /** True when the manifest is recorded. */
  hasManifest(d: Digest): boolean {
    return this.index.hasManifest(d);
  }

  // ---- tags and journal ----

  /**
   * One source's state of a tag. Without `source`: the tag's row when a single source mirrors
   * it; USAGE naming the sources when several do.
   */
  getTag(key: TagKey & { readonly source?: string }): TagRow | undefined {
    if (key.source !== undefined) return this.index.getTag({ ...key, source: key.source });
    const rows = this.index.tagRows(key);
    if (rows.length > 1) {
      throw new FerryError('USAGE', `getTag ${key.registry}/${key.repository}:${key.tag}: mirrored by several sources (${rows.map((r) => r.source).join(', ')}); name one`, {
        op: 'getTag',
      });
    }
    return rows[0];
  }

  /** Every source's row of one upstream tag. */
  tagRows(key: TagKey): TagRow[] {
    return this.index.tagRows(key);
  }

  /** Records that a source's unchanged tag was checked (cheap); false when the tag is unknown. */
  touchTag(key: SourceTagKey, checkedAt?: string): boolean {
    this.assertWritable('touchTag');
    return this.index.touchTag(key, checkedAt);
  }

  /** Marks many unchanged tags as checked in one commit; returns how many were known. */
  touchTags(keys: readonly SourceTagKey[], checkedAt?: string): number {
    this.assertWritable('touchTags');
    return keys.length === 0 ? 0 : this.index.touchTags(keys, checkedAt);
  }

  /**
   * Moves a source's tag. Call it only after the manifest and the kept children are stored
   * (MANIFEST_UNKNOWN otherwise). Journals the change when the digest, kept set or target changed,
   * or when `contentAdded` says the closure gained content.
   */
  setTag(row: SetTagInput): ChangeResult {
    this.assertWritable('setTag');
    const where = `setTag ${row.registry}/${row.repository}:${row.tag}`;
    const digest = parseDigest(row.digest, where);
    const kept = [...new Set(row.keptDigests.map((k) => parseDigest(k, `${where} kept digest`)))].sort();
    for (const d of [digest, ...kept]) {
      if (!this.index.hasManifest(d)) {
        throw new FerryError('MANIFEST_UNKNOWN', `${where}: manifest ${d} is not stored; store content before moving the tag`, {
          op: 'setTag',
          registry: row.registry,
          repository: row.repository,
          reference: row.tag,
          digest: d,
        });
      }
    }
    return this.index.setTag({ ...row, digest, keptDigests: kept, platforms: row.platforms === null ? null : [...row.platforms] });
  }

  /** Tags matching the filter. */
  listTags(filter?: TagFilter): TagRow[] {
    return this.index.listTags(filter);
  }

  /** The highest journal seq (0 when empty). */
  currentSeq(): number {
    return this.index.currentSeq();
  }

  /** Journal entries after `seq` (up to `until`, inclusive), in order. */
  journalSince(seq: number, opts: { until?: number } = {}): JournalEntry[] {
    return this.index.journalSince(seq, opts.until);
  }

  // ---- Go modules ----

  /** One stored module version. */
  getModuleVersion(module: string, version: string): ModuleVersionRow | undefined {
    return this.index.getModuleVersion(module, version);
  }

  /**
   * Records a module version whose .info, .mod (and .zip) blobs are stored (BLOB_UNKNOWN
   * otherwise); journals it when new or changed.
   */
  putModuleVersion(row: ModuleVersionInput, opts: PutModuleVersionOptions = {}): ChangeResult {
    this.assertWritable('putModuleVersion');
    this.checkModuleVersion(row, opts);
    const r = this.index.putModuleVersion(row, opts.blobs ?? []);
    for (const b of opts.blobs ?? []) this.unindexed.delete(b.digest);
    return r;
  }

  /**
   * Records several module versions in one commit (one fsync), each checked as by
   * putModuleVersion: an entry that fails its checks gets its error in its place and is not
   * recorded; the others are. A failing commit throws for all.
   */
  putModuleVersions(entries: ReadonlyArray<{ readonly row: ModuleVersionInput; readonly opts?: PutModuleVersionOptions }>): Array<ChangeResult | FerryError> {
    this.assertWritable('putModuleVersions');
    const out: Array<ChangeResult | FerryError> = [];
    const good: Array<{ row: ModuleVersionInput; blobs: readonly UnindexedBlob[] }> = [];
    const at: number[] = [];
    for (const e of entries) {
      try {
        this.checkModuleVersion(e.row, e.opts ?? {});
        at.push(out.length);
        good.push({ row: e.row, blobs: e.opts?.blobs ?? [] });
        out.push({ changed: false });
      } catch (err) {
        out.push(toFerryError(err, 'INTERNAL', { module: e.row.module, version: e.row.version }));
      }
    }
    if (good.length > 0) this.index.putModuleVersions(good).forEach((r, i) => (out[at[i]!] = r));
    for (const g of good) for (const b of g.blobs) this.unindexed.delete(b.digest);
    return out;
  }

  /** The checks of putModuleVersion: digests well-formed, every file stored or in place. */
  private checkModuleVersion(row: ModuleVersionInput, opts: PutModuleVersionOptions): void {
    const where = `putModuleVersion ${row.module}@${row.version}`;
    const pending = new Map<Digest, number>();
    for (const b of opts.blobs ?? []) {
      parseDigest(b.digest, `${where} blob`);
      // Rows follow files: a blob recorded here must already be in place with its size. One
      // this process placed (verified, fsynced) and has not yet recorded needs no second look.
      let onDisk: number | undefined = this.unindexed.get(b.digest);
      if (onDisk !== b.size) {
        try {
          onDisk = statSync(this.blobs.path(b.digest)).size;
        } catch {
          onDisk = undefined;
        }
      }
      if (onDisk !== b.size) {
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
      if (!pending.has(d) && !this.index.getBlob(d)) {
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

  /** Stored module versions matching the filter. */
  listModuleVersions(filter?: ModuleVersionFilter): ModuleVersionRow[] {
    return this.index.listModuleVersions(filter);
  }

  /** The `@v/list` digest recorded at the last check of a module. */
  getModuleList(module: string): ModuleListRow | undefined {
    return this.index.getModuleList(module);
  }

  /** Records the `@v/list` digest seen now, so an unchanged list can skip work next time. */
  setModuleList(module: string, listDigest: string): void {
    this.assertWritable('setModuleList');
    this.index.setModuleList(module, listDigest);
  }

  // ---- checksum database ----

  /** The newest verified tree head of a checksum database. */
  sumdbHead(name: string): SumdbHeadRow | undefined {
    return this.index.sumdb().latestHead(name);
  }

  /** Every verified tree head of a checksum database, oldest first. */
  sumdbHeads(name: string): SumdbHeadRow[] {
    return this.index.sumdb().heads(name);
  }

  /**
   * Records a tree head the caller has proved consistent with the newest one (CheckTree);
   * a smaller head or a same-size head with another hash is SUMDB_INCONSISTENT. True when new.
   */
  putSumdbHead(name: string, head: { size: number; hash: string; note: string }): boolean {
    this.assertWritable('putSumdbHead');
    return this.index.sumdb().putHead(name, head.size, head.hash, head.note);
  }

  /** Marks a head as handed out in a bundle (its consistency tiles are carried from then on). */
  markSumdbHeadExported(name: string, size: number): void {
    this.assertWritable('markSumdbHeadExported');
    this.index.sumdb().markExported(name, size);
  }

  /** Stores a checksum-database file (a verified tile or lookup body) as a blob and indexes it by path. */
  async putSumdbFile(name: string, path: string, bytes: Buffer, opts: { signal?: AbortSignal } = {}): Promise<SumdbFileRow> {
    this.assertWritable('putSumdbFile');
    const r = await this.writeBlobBytes(undefined, bytes, { mediaType: 'application/octet-stream', ...(opts.signal ? { signal: opts.signal } : {}) });
    this.index.sumdb().putFile(name, path, r.digest, r.size);
    return { name, path, digest: r.digest, size: r.size };
  }

  /** The index row of a checksum-database file. */
  getSumdbFile(name: string, path: string): SumdbFileRow | undefined {
    return this.index.sumdb().getFile(name, path);
  }

  /** A checksum-database file's bytes (verified against its digest), or undefined when not kept. */
  async readSumdbFile(name: string, path: string, opts: { signal?: AbortSignal } = {}): Promise<Buffer | undefined> {
    const row = this.index.sumdb().getFile(name, path);
    if (!row) return undefined;
    return this.readBlobBytes(row.digest, row.size, opts);
  }

  /** The checksum-database files whose path starts with `prefix`. */
  listSumdbFiles(name: string, prefix = ''): SumdbFileRow[] {
    return this.index.sumdb().listFiles(name, prefix);
  }

  /** The checksum databases with a file at `path` (`supported`: those an import carried in). */
  sumdbNamesWithFile(path: string): string[] {
    return this.index.sumdb().namesWithFile(path);
  }

  /** Records the checksum-database record vouching for a module version. */
  putSumdbRecord(row: Omit<SumdbRecordRow, 'checkedAt'>): void {
    this.assertWritable('putSumdbRecord');
    this.index.sumdb().putRecord(row);
  }

  /** The record vouching for a module version in a checksum database. */
  getSumdbRecord(name: string, module: string, version: string): SumdbRecordRow | undefined {
    return this.index.sumdb().getRecord(name, module, version);
  }

  /** The records of one checksum database (or all). */
  listSumdbRecords(name?: string): SumdbRecordRow[] {
    return this.index.sumdb().listRecords(name);
  }

  /** The checksum databases this store has heads or records for. */
  sumdbNames(): string[] {
    return this.index.sumdb().names();
  }

  // ---- runs and sources ----

  /** Starts a run and returns its id. */
  startRun(kind: RunKind, meta?: object): number {
    this.assertWritable('startRun');
    return this.index.startRun(kind, meta);
  }

  /** Ends a running run; `r.sources` are recorded in the same commit. */
  finishRun(id: number, r: FinishRunInput): void {
    this.assertWritable('finishRun');
    if (!this.index.finishRun(id, r)) throw new FerryError('INTERNAL', `run ${id} is not a running run in this store`, { op: 'finishRun' });
  }

  /** The latest runs, newest first. */
  lastRuns(limit = 20): RunRow[] {
    return this.index.lastRuns(limit);
  }

  /** Records one source's outcome (at `r.at`, default now). */
  recordSourceResult(source: string, r: { ok: boolean; error?: string; at?: string }): void {
    this.assertWritable('recordSourceResult');
    this.index.recordSourceResult(source, r.ok, r.error, r.at);
  }

  /** Every source's last outcome. */
  sourceStates(): SourceState[] {
    return this.index.sourceStates();
  }

  // ---- bundles ----

  /** Records an exported (or imported) bundle and the blobs and module files it carried. */
  addBundle(b: AddBundleInput): void {
    this.assertWritable('addBundle');
    if (!Number.isSafeInteger(b.sequence) || b.sequence < 1) throw new FerryError('USAGE', `addBundle: sequence must be a positive integer, got ${b.sequence}`);
    if (b.seqFrom > b.seqTo) throw new FerryError('USAGE', `addBundle: seqFrom ${b.seqFrom} is after seqTo ${b.seqTo}`);
    this.index.addBundle({ ...b, blobs: b.blobs.map((d) => parseDigest(d, `addBundle ${b.id} blob`)) });
  }

  /** A bundle by id (string) or sequence (number). */
  getBundle(idOrSeq: string | number): BundleRow | undefined {
    return this.index.getBundle(idOrSeq);
  }

  /** Every bundle, by sequence. */
  listBundles(): BundleRow[] {
    return this.index.listBundles();
  }

  /** The bundle with the highest sequence. */
  lastBundle(): BundleRow | undefined {
    return this.index.lastBundle();
  }

  /** The blobs one bundle carried. */
  bundleBlobs(id: string): Digest[] {
    return this.index.bundleBlobs(id);
  }

  /** Every blob carried by the bundle and its ancestors; CHAIN_BROKEN when the bundle is unknown. */
  blobsCarriedByChain(bundleId: string): Set<Digest> {
    const s = this.index.blobsCarriedByChain(bundleId);
    if (!s) throw new FerryError('CHAIN_BROKEN', `bundle ${bundleId} is not recorded in this store`, { op: 'blobsCarriedByChain' });
    return s;
  }

  /** Every module file carried by the bundle and its ancestors; CHAIN_BROKEN when the bundle is unknown. */
  moduleFilesCarriedByChain(bundleId: string): Set<string> {
    const s = this.index.moduleFilesCarriedByChain(bundleId);
    if (!s) throw new FerryError('CHAIN_BROKEN', `bundle ${bundleId} is not recorded in this store`, { op: 'moduleFilesCarriedByChain' });
    return s;
  }

  /** The sequence the next bundle gets. */
  nextBundleSequence(): number {
    return this.index.nextBundleSequence();
  }

  // ---- stats and fsck ----

  /** Counts for status pages. */
  stats(): StoreStats {
    return this.index.stats();
  }

  /**
   * Checks the store end to end: re-hashes every blob file, finds files without a row,
   * references of image manifests to unstored blobs, tags whose manifest or kept children
   * are missing, and module versions whose files are missing. Reports; repairs nothing. Blobs
   * nothing uses (an interrupted sync or import leaves them) are listed apart: not damage.
   */
  async fsck(opts: FsckOptions = {}): Promise<FsckResult> {
    const problems: FsckProblem[] = [];
    const rows = this.index.allBlobs();
    const present = new Set<Digest>();
    let checked = 0;
    let bytes = 0;
    for (const row of rows) {
      this.throwIfAborted(opts.signal);
      const h = await this.blobs.hashFile(row.digest, opts.signal);
      checked++;
      if (!h) {
        problems.push({ kind: 'missing', digest: row.digest, detail: `indexed blob has no file at ${this.blobs.path(row.digest)}` });
      } else {
        bytes += h.size;
        if (h.size !== row.size) {
          problems.push({ kind: 'size', digest: row.digest, detail: `file has ${h.size} bytes, index says ${row.size}` });
        } else if (h.digest !== row.digest) {
          problems.push({ kind: 'corrupt', digest: row.digest, detail: `file content hashes to ${h.digest}` });
        } else {
          present.add(row.digest);
        }
      }
      opts.onProgress?.({ checked, total: rows.length, bytes });
    }
    const indexed = new Set(rows.map((r) => r.digest));
    for await (const f of this.blobs.walk()) {
      if (f.digest === undefined || !indexed.has(f.digest)) {
        problems.push({ kind: 'orphan-file', ...(f.digest ? { digest: f.digest } : {}), detail: `file ${f.path} has no index row` });
      }
    }
    // Index children may be absent on purpose (platform filtering); the tags' kept sets say which must exist.
    // Foreign (non-distributable) layers are left out at sync by design: reported, not problems.
    const foreignLayers = new Set<Digest>();
    for (const r of this.index.danglingRefs(false, INDEX_MEDIA_TYPES)) {
      if (isNonDistributableMediaType(r.mediaType)) {
        foreignLayers.add(r.digest);
        continue;
      }
      problems.push({ kind: 'dangling-ref', digest: r.digest, detail: `manifest ${r.manifest} references ${r.mediaType} ${r.digest}, which is not stored` });
    }
    for (const t of this.index.listTags()) {
      for (const d of [t.digest, ...t.keptDigests]) {
        if (!this.index.hasManifest(d) || !present.has(d)) {
          const what = d === t.digest ? 'manifest' : 'kept child manifest';
          problems.push({ kind: 'tag-missing-manifest', digest: d, detail: `tag ${t.registry}/${t.repository}:${t.tag}: ${what} ${d} is missing or damaged` });
        }
      }
    }
    for (const m of this.index.moduleMissingBlobs()) {
      problems.push({ kind: 'module-missing-blob', digest: m.digest, detail: `${m.module}@${m.version}: .${m.file} blob ${m.digest} is not stored` });
    }
    return { checked, problems, foreignLayers: [...foreignLayers].sort(), unreferenced: this.index.unreferencedBlobs() };
  }

  private throwIfAborted(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw new FerryError('ABORTED', `fsck of ${this.dir} aborted`, { op: 'fsck', file: this.dir, cause: signal.reason });
  }
}

