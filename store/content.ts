/**
 * The content of the store: blob files (blobs.ts) and their index rows, and the manifests
 * recorded over them with what they reference. A file goes in first (verified, fsynced,
 * renamed) and its row is written after, so a row never exists without its file; a blob
 * placed with `index: false` waits for a row that another part writes in its own transaction
 * (modules.ts, through PlacedBlobs). Concurrent writes of one digest in this process merge.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { FerryError } from '../errors/index.js';
import { parseDigest, platformString, sha256Digest, type Digest } from '../oci/index.js';
import { discardSource, type BlobFiles, type BlobSource } from './blobs.js';
import { compact, type IndexDb } from './db.js';
import type { PlacedBlobs } from './modules.js';
import type { ManifestPresence } from './tags.js';
import type {
  BlobRow,
  ImportFileOptions,
  ManifestReference,
  ManifestSummary,
  ManifestRow,
  PutManifestInput,
  ReadBlobOptions,
  RemovedBlobs,
  UnindexedBlob,
  WriteBlobOptions,
  WriteBlobResult,
} from './types.js';

/**
 * Blob rows nothing in the index names. It reads the tables of every family that holds digests
 * of stored blobs (manifests, tags, module versions, checksum-database files): a new table that
 * does must be added here, or its blobs count as unused.
 */
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

const PUT_BLOB = `INSERT INTO blobs (digest, size, media_type, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(digest) DO UPDATE SET media_type = COALESCE(blobs.media_type, excluded.media_type)`;

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

/** Blobs and manifests: the content-addressed part of the store. */
export class StoreContent implements PlacedBlobs, ManifestPresence {
  /** Writes in progress in this process, by digest: a second writer waits for the first. */
  private readonly inflight = new Map<Digest, Promise<WriteBlobResult>>();
  /** Blobs this process put in place with `index: false` and has not recorded yet, with their sizes. */
  private readonly unindexed = new Map<Digest, number>();

  constructor(
    private readonly db: IndexDb,
    private readonly files: BlobFiles,
    private readonly logger: { warn?(obj: object, msg?: string): void } | undefined,
  ) {}

  // ---- blobs ----

  /** True when the blob is recorded in the index. */
  hasBlob(d: Digest): boolean {
    return this.getBlob(d) !== undefined;
  }

  /** The final path of a blob's file (whether or not it exists). */
  blobPath(d: Digest): string {
    return this.files.path(parseDigest(d, 'blobPath'));
  }

  /** The recorded size of a blob. */
  blobSize(d: Digest): number | undefined {
    return this.getBlob(d)?.size;
  }

  /** The index row of a blob. */
  getBlob(d: Digest): BlobRow | undefined {
    return this.db.run('getBlob', () => {
      const r = this.db.cached('SELECT digest, size, media_type, created_at FROM blobs WHERE digest = ?').get(d) as
        | { digest: Digest; size: number; media_type: string | null; created_at: string }
        | undefined;
      return r && { digest: r.digest, size: r.size, mediaType: r.media_type, createdAt: r.created_at };
    });
  }

  /** Records a blob whose file is in place; keeps the first known media type. */
  private putBlobRow(d: Digest, size: number, mediaType: string | undefined): void {
    this.db.run('putBlob', () => {
      this.db.cached(PUT_BLOB).run(d, size, mediaType ?? null, this.db.iso());
    });
  }

  /**
   * Streams a blob into the store, verifying digest (and size when given) before it is
   * renamed into place and recorded. An already-stored blob's source is destroyed unread
   * (`written: false`); concurrent writes of one digest in this process are merged.
   */
  async writeBlob(d: Digest, source: BlobSource, opts: WriteBlobOptions = {}): Promise<WriteBlobResult> {
    try {
      this.db.assertWritable('writeBlob');
      parseDigest(d, 'writeBlob');
      if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) {
        throw new FerryError('USAGE', `writeBlob: size must be a non-negative integer, got ${String(opts.size)}`, { digest: d });
      }
    } catch (err) {
      discardSource(source);
      throw err;
    }
    return this.merged(d, opts.signal, () => discardSource(source), () => this.writeOnce(d, opts, () => this.files.write(d, source, { size: opts.size, signal: opts.signal }), () => discardSource(source)));
  }

  /**
   * Moves a file the caller wrote (and hashed to `d` while writing) into the store by rename
   * instead of copying it: fsync → rename → record. The file must be on the store's filesystem
   * (see makeTempDir; on another one it is copied and verified instead). When the blob is
   * already stored the file is left where it is (`written: false`): the caller removes it.
   */
  async importFile(file: string, d: Digest, size: number, opts: ImportFileOptions = {}): Promise<WriteBlobResult> {
    this.db.assertWritable('importFile');
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
          if (await this.files.adopt(file, d, size)) return size;
          return this.files.write(d, createReadStream(file, { highWaterMark: 1 << 20 }), { size, signal: opts.signal });
        },
        () => {},
      ),
    );
  }

  /** A new private directory under the store's tmp/, for files to `importFile`; the caller removes it. */
  makeTempDir(label: string): Promise<string> {
    this.db.assertWritable('makeTempDir');
    return this.files.makeTempDir(label);
  }

  /** Stores small content held in memory (manifests, JSON); the digest is computed when not given. */
  async writeBlobBytes(d: Digest | undefined, bytes: Buffer, opts: WriteBlobOptions = {}): Promise<WriteBlobResult> {
    const digest = d ?? sha256Digest(bytes);
    const size = opts.size ?? bytes.length;
    this.db.assertWritable('writeBlob');
    parseDigest(digest, 'writeBlob');
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new FerryError('USAGE', `writeBlob: size must be a non-negative integer, got ${String(size)}`, { digest });
    }
    const o = { ...opts, size };
    // No stream for bytes in memory: the same checks and steps as writeBlob, without the machinery.
    return this.merged(digest, opts.signal, () => {}, () => this.writeOnce(digest, o, () => this.files.writeBytes(digest, bytes, size), () => {}));
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
    const row = this.getBlob(d);
    if (row) {
      let onDisk: number | undefined;
      try {
        onDisk = this.files.fileSize(d);
      } catch (err) {
        discard();
        throw err;
      }
      if (onDisk === row.size) {
        discard();
        if (opts.size !== undefined && opts.size !== row.size) {
          throw new FerryError('SIZE_MISMATCH', `blob ${d} is stored with ${row.size} bytes, but ${opts.size} were expected`, { op: 'writeBlob', digest: d });
        }
        if (opts.mediaType !== undefined && row.mediaType === null) this.putBlobRow(d, row.size, opts.mediaType);
        return { digest: d, size: row.size, written: false };
      }
      this.logger?.warn?.({ digest: d, file: this.files.path(d), onDisk: onDisk ?? null, recorded: row.size }, 'blob file missing or damaged: rewriting it');
    } else if (opts.index === false && this.unindexed.has(d)) {
      // Placed (verified, fsynced) by this process and awaiting its row: many module versions
      // share one .info, so the same bytes are not written again while the rows are batched.
      const placed = this.unindexed.get(d) ?? -1;
      let onDisk: number | undefined;
      try {
        onDisk = this.files.fileSize(d);
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
    if (opts.index !== false) this.putBlobRow(d, size, opts.mediaType);
    else this.unindexed.set(d, size);
    return { digest: d, size, written: true };
  }

  /** A stream of a stored blob, verified as it flows unless `verify: false`; BLOB_UNKNOWN when not stored. */
  readBlob(d: Digest, opts: ReadBlobOptions = {}): Readable {
    const row = this.getBlob(d);
    if (!row) throw new FerryError('BLOB_UNKNOWN', `blob ${d} is not in the store`, { op: 'readBlob', digest: d });
    return this.files.read(d, row.size, { verify: opts.verify !== false, signal: opts.signal });
  }

  /** A whole stored blob, verified; BODY_TOO_LARGE when it is bigger than `maxBytes`. */
  async readBlobBytes(d: Digest, maxBytes: number, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    const row = this.getBlob(d);
    if (!row) throw new FerryError('BLOB_UNKNOWN', `blob ${d} is not in the store`, { op: 'readBlobBytes', digest: d });
    if (row.size > maxBytes) {
      throw new FerryError('BODY_TOO_LARGE', `blob ${d} has ${row.size} bytes, more than the ${maxBytes} allowed here`, { op: 'readBlobBytes', digest: d });
    }
    return this.files.readBytes(d, row.size, opts.signal);
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
    this.db.assertWritable('removeUnreferencedBlobs');
    const wanted = [...new Set(digests)].filter((d) => !this.inflight.has(d) && !this.unindexed.has(d));
    if (wanted.length === 0) return { removed: [], bytes: 0 };
    // Durable before any file goes: a row whose deletion a power cut undid, left without its
    // file, would claim a blob the store no longer has.
    const removed = this.db.durable('deleteUnreferencedBlobs', () => {
      const gone = this.unreferencedBlobs(wanted);
      const del = this.db.cached('DELETE FROM blobs WHERE digest = ?');
      for (const b of gone) del.run(b.digest);
      return gone;
    });
    for (const b of removed) await this.files.remove(b.digest);
    return { removed, bytes: removed.reduce((n, b) => n + b.size, 0) };
  }

  /**
   * Indexed blobs nothing in the index names: no manifest row, manifest reference, tag (or its
   * kept children), module version or checksum-database file. An interrupted sync or import
   * leaves them; `only` (a list of digests) narrows the answer to those.
   */
  unreferencedBlobs(only?: readonly Digest[]): Array<{ digest: Digest; size: number }> {
    return this.db.run('unreferencedBlobs', () =>
      this.db
        .cached(`${UNREFERENCED_BLOBS} ${only ? 'AND b.digest IN (SELECT value FROM json_each(?))' : ''} ORDER BY b.digest`)
        .all(...(only ? [JSON.stringify(only)] : [])) as Array<{ digest: Digest; size: number }>,
    );
  }

  /** Every indexed blob with its size, by digest (for fsck). */
  allBlobRows(): Array<{ digest: Digest; size: number }> {
    return this.db.run('allBlobs', () => this.db.cached('SELECT digest, size FROM blobs ORDER BY digest').all() as Array<{ digest: Digest; size: number }>);
  }

  // ---- PlacedBlobs (store/ only): rows written in another part's transaction (modules.ts) ----

  /** The size of `d`'s file in place: this process's record of what it placed when that says `expected`, else one stat. */
  sizeInPlace(d: Digest, expected: number): number | undefined {
    // One this process placed (verified, fsynced) and has not yet recorded needs no second look.
    const placed = this.unindexed.get(d);
    if (placed === expected) return placed;
    try {
      return this.files.fileSize(d);
    } catch {
      return undefined;
    }
  }

  /** True when the blob has an index row. */
  isIndexed(d: Digest): boolean {
    return this.getBlob(d) !== undefined;
  }

  /** Writes the rows of blob files in place, inside the caller's transaction. */
  insertRows(blobs: readonly UnindexedBlob[], at: string): void {
    this.db.assertInTransaction('insertBlobRows');
    const put = this.db.cached(PUT_BLOB);
    for (const b of blobs) put.run(b.digest, b.size, b.mediaType ?? null, at);
  }

  /** Forgets that these blobs await their rows, once the caller's transaction committed. */
  recorded(blobs: readonly UnindexedBlob[]): void {
    for (const b of blobs) this.unindexed.delete(b.digest);
  }

  // ---- manifests ----

  /** Stores a manifest's exact bytes as a blob and records what it references. */
  async putManifest(m: PutManifestInput): Promise<void> {
    this.db.assertWritable('putManifest');
    parseDigest(m.digest, 'putManifest');
    const refs = m.references.map((r) => ({
      digest: parseDigest(r.digest, `putManifest ${m.digest} reference`),
      mediaType: r.mediaType,
      size: r.size,
      ...(r.platform ? { platform: platformString(r.platform) } : {}),
    }));
    const w = await this.writeBlobBytes(m.digest, m.bytes, { mediaType: m.mediaType, signal: m.signal });
    this.putManifestRows(m.digest, m.mediaType, w.size, m.platform, refs);
  }

  /** Records a manifest (its blob row must exist) and its references, once. */
  private putManifestRows(d: Digest, mediaType: string, size: number, platform: string | undefined, refs: readonly ManifestReference[]): void {
    this.db.write('putManifest', () => {
      const ins = this.db
        .cached('INSERT OR IGNORE INTO manifests (digest, media_type, size, platform, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(d, mediaType, size, platform ?? null, this.db.iso());
      const stmt = this.db.cached('INSERT INTO manifest_refs (manifest, position, digest, media_type, size, platform) VALUES (?, ?, ?, ?, ?, ?)');
      if (ins.changes === 0) {
        // Same digest, same bytes, same references; only a platform learned later is new.
        if (platform !== undefined) this.db.cached('UPDATE manifests SET platform = COALESCE(platform, ?) WHERE digest = ?').run(platform, d);
        // Older versions recorded an index with only the children a platform filter kept;
        // its bytes list them all, and another image entry may keep the others.
        const have = this.db.cached('SELECT COUNT(*) FROM manifest_refs WHERE manifest = ?').pluck().get(d) as number;
        if (have < refs.length) {
          this.db.cached('DELETE FROM manifest_refs WHERE manifest = ?').run(d);
          refs.forEach((r, i) => stmt.run(d, i, r.digest, r.mediaType, r.size, r.platform ?? null));
        }
        return;
      }
      refs.forEach((r, i) => stmt.run(d, i, r.digest, r.mediaType, r.size, r.platform ?? null));
    });
  }

  /** A recorded manifest with its references in order. */
  getManifest(d: Digest): ManifestRow | undefined {
    return this.db.run('getManifest', () => {
      const m = this.db.cached('SELECT digest, media_type, size, platform FROM manifests WHERE digest = ?').get(d) as
        | { digest: Digest; media_type: string; size: number; platform: string | null }
        | undefined;
      if (!m) return undefined;
      const refs = this.db
        .cached('SELECT digest, media_type AS mediaType, size, platform FROM manifest_refs WHERE manifest = ? ORDER BY position')
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

  /**
   * The recorded manifests among `digests` with the bytes each references directly (config and
   * layers for an image, children for an index), in one query, for catalog pages that size
   * thousands of tags. Digests not recorded are left out.
   */
  manifestSummaries(digests: readonly Digest[]): Map<Digest, ManifestSummary> {
    return this.db.run('manifestSummaries', () => {
      const rows = this.db
        .cached(
          `SELECT m.digest, m.media_type AS mediaType, m.size, m.platform, COALESCE(SUM(r.size), 0) AS refsSize, COUNT(r.digest) AS refs
           FROM manifests m LEFT JOIN manifest_refs r ON r.manifest = m.digest
           WHERE m.digest IN (SELECT value FROM json_each(?)) GROUP BY m.digest`,
        )
        .all(JSON.stringify(digests)) as ManifestSummary[];
      return new Map(rows.map((r) => [r.digest, r]));
    });
  }

  /** True when the manifest is recorded. */
  hasManifest(d: Digest): boolean {
    return this.db.run('hasManifest', () => this.db.cached('SELECT 1 FROM manifests WHERE digest = ?').get(d) !== undefined);
  }

  /** References of manifests whose target blob is not indexed; `indexes` selects index or image manifests (for fsck). */
  danglingRefs(indexes: boolean, indexTypes: readonly string[]): Array<{ manifest: Digest; digest: Digest; mediaType: string }> {
    return this.db.run('danglingRefs', () => {
      const marks = indexTypes.map(() => '?').join(', ') || "''";
      return this.db
        .cached(
          `SELECT r.manifest, r.digest, r.media_type AS mediaType FROM manifest_refs r JOIN manifests m ON m.digest = r.manifest
           WHERE m.media_type ${indexes ? '' : 'NOT '}IN (${marks})
             AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = r.digest)
           ORDER BY r.manifest, r.position`,
        )
        .all(...indexTypes) as Array<{ manifest: Digest; digest: Digest; mediaType: string }>;
    });
  }
}
