/**
 * Blob files: `blobs/sha256/<2 hex>/<64 hex>`, written through `tmp/` and renamed into place
 * only after the bytes were hashed, checked and fsynced, so a final path never holds a
 * partial or wrong file. Knows nothing of the index.
 */
import { createHash, hash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, fsync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError, isFerryError } from '../errors/index.js';
import { VerifyingStream, digestHex, isDigest, type Digest } from '../oci/index.js';
import { pidAlive } from './pid.js';

/** A blob body: a Node stream or any async iterable of bytes. */
export type BlobSource = Readable | AsyncIterable<Uint8Array>;

/** Temp files older than this are removed at open even if their pid looks alive (pids get reused). */
const STALE_TMP_MS = 24 * 60 * 60 * 1000;

function ioError(err: unknown, op: string, file: string, digest?: Digest): FerryError {
  if (isFerryError(err)) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new FerryError('STORE_IO', `store ${op} failed for ${file}: ${msg}`, { op, file, digest, cause: err });
}

function abortError(err: unknown, op: string, digest: Digest): FerryError {
  return new FerryError('ABORTED', `${op} of ${digest} aborted`, { op, digest, cause: err });
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as NodeJS.ErrnoException).code === 'ABORT_ERR');
}

/** Destroys a source we will not read, so its network connection is released. */
export function discardSource(source: BlobSource): void {
  if (source instanceof Readable) {
    source.destroy();
    return;
  }
  const s = source as { destroy?: () => void };
  if (typeof s.destroy === 'function') {
    s.destroy();
    return;
  }
  // A generator that never started just completes; others get the chance to clean up.
  void Promise.resolve(source[Symbol.asyncIterator]().return?.()).catch(() => undefined);
}

/** Writes every byte of `buf` at the file's current position. */
async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** Writes every byte of `bufs`, in order, at the file's current position (writev, resumed after a short write). */
async function writevAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest);
    let n = bytesWritten;
    let i = 0;
    while (i < rest.length && n >= rest[i]!.length) n -= rest[i++]!.length;
    rest = rest.slice(i);
    if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n);
  }
}

/** A Writable onto an open file that fsyncs before it finishes. */
class SyncedFileSink extends Writable {
  constructor(
    private readonly fh: FileHandle,
    private readonly file: string,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    writeAll(this.fh, chunk).then(
      () => cb(),
      (err: unknown) => cb(ioError(err, 'write', this.file)),
    );
  }

  // Network bodies arrive in small chunks (often 16-64 KiB); the ones that queued while the
  // previous write was in flight go to disk in one writev instead of one thread-pool trip each.
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    writevAll(
      this.fh,
      chunks.map((c) => c.chunk),
    ).then(
      () => cb(),
      (err: unknown) => cb(ioError(err, 'write', this.file)),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.fh.sync().then(
      () => cb(),
      (err: unknown) => cb(ioError(err, 'fsync', this.file)),
    );
  }
}

/** A blob file found on disk by `walk`. */
export interface BlobFile {
  readonly path: string;
  /** The digest its path names, or undefined when the path is not a well-formed blob path. */
  readonly digest?: Digest;
}

/** The blob files under one store directory. */

/** The smallest read buffer of a blob stream (BlobFiles.read). */
const READ_MIN = 16 * 1024;
export class BlobFiles {
  readonly root: string;
  readonly tmpDir: string;
  private readonly shardsMade = new Set<string>();
  private readonly dirFds = new Map<string, number>();
  private readonly tmpPrefix = `${randomBytes(6).toString('hex')}-`;
  private tmpCount = 0;

  constructor(dir: string) {
    this.root = join(dir, 'blobs', 'sha256');
    this.tmpDir = join(dir, 'tmp');
  }

  /** Creates the blob and tmp directories. */
  init(): void {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
  }

  /**
   * A new private directory under `tmp/` (so its files can be renamed into place, and a killed
   * process's leftovers are removed at the next open); the caller removes it.
   */
  async makeTempDir(label: string): Promise<string> {
    try {
      return await mkdtemp(join(this.tmpDir, `${process.pid}.${label}-`));
    } catch (err) {
      throw ioError(err, 'create temp directory', this.tmpDir);
    }
  }

  /**
   * A fresh temp file name: `<pid>.` (so cleanTmp knows whose it is), a random part drawn once per
   * store (two opens of one store in a process never collide) and a counter.
   */
  private tempName(): string {
    return join(this.tmpDir, `${process.pid}.${this.tmpPrefix}${(this.tmpCount++).toString(36)}`);
  }

  /** The final path of a blob. */
  path(d: Digest): string {
    const hex = digestHex(d);
    return join(this.root, hex.slice(0, 2), hex);
  }

  /** The size of a blob's file, or undefined when it is absent (one stat, without the thread pool). */
  fileSize(d: Digest): number | undefined {
    try {
      return statSync(this.path(d)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(err, 'stat', this.path(d), d);
    }
  }

  /**
   * Removes temp files left by processes that ended mid-write. Files of live processes
   * (a daemon syncing while the CLI exports) are kept unless they are a day old.
   */
  cleanTmp(now: Date): string[] {
    const removed: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.tmpDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
      throw ioError(err, 'list', this.tmpDir);
    }
    for (const name of names) {
      const file = join(this.tmpDir, name);
      const pid = Number(/^(\d+)\./.exec(name)?.[1] ?? NaN);
      let stale = true;
      if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) {
        try {
          stale = now.getTime() - statSync(file).mtimeMs > STALE_TMP_MS;
        } catch {
          continue;
        }
      }
      if (!stale) continue;
      rmSync(file, { force: true, recursive: true });
      removed.push(name);
    }
    return removed;
  }

  /**
   * Streams `source` into the blob file for `d`: tmp file → hash → verify digest and size →
   * fsync → rename → fsync the directory. Returns the size. On any failure nothing is left
   * at the final path and the temp file is removed.
   */
  async write(d: Digest, source: BlobSource, opts: { size?: number; signal?: AbortSignal }): Promise<number> {
    return this.viaTemp(d, async (fh, tmp) => {
      const verifier = new VerifyingStream({ digest: d, size: opts.size, details: { op: 'writeBlob' } });
      try {
        await pipeline(source, verifier, new SyncedFileSink(fh, tmp), opts.signal ? { signal: opts.signal } : {});
      } catch (err) {
        if (isAbort(err) || opts.signal?.aborted) throw abortError(err, 'writeBlob', d);
        throw err;
      }
      return verifier.bytes;
    });
  }

  /**
   * `write` for content already in memory (manifests, .info, .mod, small module zips): the same
   * checks, then the same temp → fsync → rename → fsync-directory order. Resolves only once the
   * file is durably in place.
   */
  async writeBytes(d: Digest, bytes: Uint8Array, size?: number): Promise<number> {
    if (size !== undefined && bytes.length !== size) {
      throw new FerryError('SIZE_MISMATCH', `content for ${d} has ${bytes.length} bytes, expected ${size}`, { op: 'writeBlob', digest: d });
    }
    const got = `sha256:${hash('sha256', bytes, 'hex')}`;
    if (got !== d) throw new FerryError('DIGEST_MISMATCH', `content digest mismatch: expected ${d}, got ${got}`, { op: 'writeBlob', digest: d });
    return this.viaTemp(d, async (fh, tmp) => {
      await fh.writeFile(bytes).catch((err: unknown) => {
        throw ioError(err, 'write', tmp, d);
      });
      await fh.sync().catch((err: unknown) => {
        throw ioError(err, 'fsync', tmp, d);
      });
      return bytes.length;
    });
  }

  /**
   * The shared tail of every write: `fill` writes, verifies and fsyncs a fresh temp file and
   * returns its size; then close → rename to the final path → fsync the directory. On any
   * failure the temp file is removed and nothing is at the final path.
   */
  private async viaTemp(d: Digest, fill: (fh: FileHandle, tmp: string) => Promise<number>): Promise<number> {
    const tmp = this.tempName();
    const final = this.path(d);
    let fh: FileHandle | undefined;
    let renamed = false;
    try {
      try {
        fh = await open(tmp, 'wx');
      } catch (err) {
        throw ioError(err, 'create temp file', tmp, d);
      }
      const size = await fill(fh, tmp);
      await fh.close().catch((err: unknown) => {
        throw ioError(err, 'close', tmp, d);
      });
      fh = undefined;
      const shard = await this.shard(d);
      await rename(tmp, final).catch((err: unknown) => {
        throw ioError(err, 'rename', final, d);
      });
      renamed = true;
      await this.syncShard(shard);
      return size;
    } finally {
      if (fh) await fh.close().catch(() => undefined);
      if (!renamed) await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /**
   * Moves `file` (on the store's filesystem, hashed to `d` by the caller as it wrote it) into
   * place: check its size → fsync → rename → fsync the directory. False when `file` is on
   * another filesystem (EXDEV) and nothing was moved; the caller then copies it with `write`.
   */
  async adopt(file: string, d: Digest, size: number): Promise<boolean> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(file, 'r+');
      const st = await fh.stat();
      if (st.size !== size) {
        throw new FerryError('SIZE_MISMATCH', `importFile ${d}: ${file} has ${st.size} bytes, not the ${size} expected`, { op: 'importFile', digest: d, file });
      }
      await fh.sync();
    } catch (err) {
      throw ioError(err, 'fsync', file, d);
    } finally {
      await fh?.close().catch(() => undefined);
    }
    const shard = await this.shard(d);
    try {
      await rename(file, this.path(d));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') return false;
      throw ioError(err, 'rename', this.path(d), d);
    }
    await this.syncShard(shard);
    return true;
  }

  /**
   * fsyncs a shard directory so a rename into it survives a power cut. Its descriptor is kept
   * open (at most 256 shards) so that each sync is one call, not open, fsync and close.
   * Skipped where directories cannot be opened or fsynced (Windows, some network filesystems).
   */
  private async syncShard(shard: string): Promise<void> {
    let fd = this.dirFds.get(shard);
    if (fd === undefined) {
      try {
        fd = openSync(shard, 'r');
      } catch {
        return;
      }
      this.dirFds.set(shard, fd);
    }
    await fsyncFd(fd).catch(() => undefined);
  }

  /** Closes the directory descriptors kept for fsync. */
  close(): void {
    for (const fd of this.dirFds.values()) {
      try {
        closeSync(fd);
      } catch {
        // Closing at shutdown: nothing to recover.
      }
    }
    this.dirFds.clear();
  }

  /** The shard directory of `d`, created once per process. */
  private async shard(d: Digest): Promise<string> {
    const shard = join(this.root, digestHex(d).slice(0, 2));
    if (!this.shardsMade.has(shard)) {
      await mkdir(shard, { recursive: true }).catch((err: unknown) => {
        throw ioError(err, 'mkdir', shard, d);
      });
      this.shardsMade.add(shard);
    }
    return shard;
  }

  /** A stream of the blob's bytes, hashed as they pass when `verify` (fails at the end on damage). */
  read(d: Digest, size: number, opts: { verify: boolean; signal?: AbortSignal }): Readable {
    const file = this.path(d);
    // Reads of up to 1 MiB, but no bigger than the blob needs: each read takes a buffer of this
    // size (a small file's bytes are then copied out), and an export streaming 6,000 small module
    // files left 1 MiB of garbage per file for the GC (about 30 MB of external memory at its peak).
    const src = createReadStream(file, { highWaterMark: Math.min(1 << 20, Math.max(READ_MIN, size)) });
    // Errors of the file stream reach the reader with a code: a missing file is STORE_CORRUPT.
    const out: Transform = opts.verify ? new VerifyingStream({ digest: d, size, details: { op: 'readBlob', file } }) : new PassThrough();
    src.on('error', (err) => out.destroy(readError(err, d, file)));
    out.on('close', () => src.destroy());
    src.pipe(out);
    const signal = opts.signal;
    if (signal) {
      const onAbort = (): void => void out.destroy(abortError(signal.reason, 'readBlob', d));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        out.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return out;
  }

  /** The whole blob, verified against digest and size. */
  async readBytes(d: Digest, size: number, signal?: AbortSignal): Promise<Buffer> {
    const file = this.path(d);
    const chunks: Buffer[] = [];
    const v = new VerifyingStream({ digest: d, size, details: { op: 'readBlobBytes', file } });
    try {
      await pipeline(
        createReadStream(file),
        v,
        new Writable({
          write(c: Buffer, _e, cb) {
            chunks.push(c);
            cb();
          },
        }),
        signal ? { signal } : {},
      );
    } catch (err) {
      if (isAbort(err) || signal?.aborted) throw abortError(err, 'readBlobBytes', d);
      throw readError(err, d, file);
    }
    return Buffer.concat(chunks);
  }

  /** Re-hashes a blob file: its digest and size, or undefined when the file is absent. */
  async hashFile(d: Digest, signal?: AbortSignal): Promise<{ digest: Digest; size: number } | undefined> {
    const file = this.path(d);
    const h = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        createReadStream(file, { highWaterMark: 1 << 20 }),
        new Writable({
          write(c: Buffer, _e, cb) {
            h.update(c);
            size += c.length;
            cb();
          },
        }),
        signal ? { signal } : {},
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (isAbort(err) || signal?.aborted) throw abortError(err, 'fsck', d);
      throw ioError(err, 'read', file, d);
    }
    return { digest: `sha256:${h.digest('hex')}`, size };
  }

  /** Removes a blob's file (the caller has deleted its index row first); absent is fine. */
  async remove(d: Digest): Promise<void> {
    const file = this.path(d);
    try {
      await rm(file, { force: true });
    } catch (err) {
      throw ioError(err, 'remove', file, d);
    }
  }

  /** Every file under blobs/sha256, with the digest its path names when well-formed. */
  async *walk(): AsyncGenerator<BlobFile> {
    let shards: string[];
    try {
      shards = (await readdir(this.root)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw ioError(err, 'list', this.root);
    }
    for (const shard of shards) {
      const dir = join(this.root, shard);
      const st = await stat(dir).catch(() => undefined);
      if (!st) continue;
      if (!st.isDirectory()) {
        yield { path: dir };
        continue;
      }
      for (const name of (await readdir(dir)).sort()) {
        const d = `sha256:${name}`;
        const ok = isDigest(d) && name.startsWith(shard) && shard.length === 2;
        yield ok ? { path: join(dir, name), digest: d } : { path: join(dir, name) };
      }
    }
  }
}

function readError(err: unknown, d: Digest, file: string): FerryError {
  if (isFerryError(err)) return err;
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new FerryError('STORE_CORRUPT', `blob ${d} is indexed but its file ${file} is missing`, { op: 'readBlob', digest: d, file, cause: err });
  }
  return ioError(err, 'read', file, d);
}

/** fsync(2) of an open descriptor on the thread pool. */
function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}
