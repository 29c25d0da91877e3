/**
 * Writes a bundle: a signed manifest, the import script, an OCI image layout and a Go module
 * tree streamed into one tar, split into parts of at most `splitSize` bytes. Every entry's
 * bytes are verified against the digest the manifest signs while they stream; everything is
 * written under temporary names and renamed into place only when all of it is complete.
 *
 * Tar decisions (public contract): entries carry mtime 0 (1970-01-01T00:00:00Z), uid/gid 0,
 * empty uname/gname, mode 0644 (0755 for import.sh), type "file"; there are no directory
 * entries; names longer than ustar allows use a PAX header. Order: ferry-bundle.json,
 * ferry-bundle.json.sig, then `files` in canonical order (see compareTarPaths).
 */
import { createHash, type Hash, type KeyObject } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Header, type Pack } from 'tar-stream';
import { errorMessage, FerryError, isFerryError, toFerryError } from '../errors/index.js';
import { VerifyingStream } from '../oci/index.js';
import {
  BundleImageCheck,
  bundleImageLine,
  compareTarPaths,
  FORMAT_VERSION,
  IMPORT_SCRIPT_FILE,
  MANIFEST_FILE,
  MAX_PARTS,
  parseBundleManifest,
  partFileName,
  serializeBundleManifest,
  serializeBundleManifestParts,
  serializePartsManifest,
  SIGNATURE_FILE,
  tarPathError,
  type BundleFile,
  type BundleImage,
  type BundleManifest,
  type BundlePart,
  type PartsManifest,
} from './format.js';
import { byteSigner, signBytes } from './sign.js';

/** The fixed mtime of every tar entry: the Unix epoch, so equal inputs give equal bytes. */
export const TAR_MTIME = new Date(0);
/** Smallest split size accepted (one tar block). */
export const MIN_SPLIT_SIZE = 512;

/** One file to put in the bundle; its bytes are opened lazily and verified while streamed. */
export interface BundleEntry {
  /** Path inside the tar: oci-layout, index.json, blobs/sha256/<hex>, or gomod/... */
  readonly path: string;
  readonly size: number;
  /** Lowercase hex sha256 of the content. */
  readonly sha256: string;
  /** Set for blobs that are manifests or indexes: their media type. */
  readonly mediaType?: string;
  /** Opens the content; called once, when the entry is written. */
  open(opts: { readonly signal?: AbortSignal }): Readable | Promise<Readable>;
  /**
   * A file holding the content (a spooled entry): the writer then reads it into two buffers it
   * uses again, each once the bytes read into it are on disk, instead of opening a stream.
   */
  readonly file?: string;
}

/**
 * The manifest fields the caller decides; the writer adds `files` from the entries. `images` may
 * be a one-pass (async) iterable: the writer streams images[] into ferry-bundle.json and never
 * holds the list.
 */
export type BundleManifestInput = Omit<BundleManifest, 'files' | 'formatVersion' | 'images'> & {
  readonly images: Iterable<BundleImage> | AsyncIterable<BundleImage>;
};

/** Progress of a bundle write, reported after each entry. */
export interface WriteProgress {
  readonly path: string;
  /** Content bytes of entries written so far. */
  readonly done: number;
  /** Content bytes of all entries. */
  readonly total: number;
}

/** Options for writeBundle. */
export interface WriteBundleOptions {
  /** Directory the bundle files are written to; must exist. */
  readonly outDir: string;
  /** Bundle name (`ferry-YYYYMMDD-NNNN`); files are NAME.tar[.NNN], NAME.parts.json[.sig]. */
  readonly name: string;
  readonly manifest: BundleManifestInput;
  /** Every file after import.sh; any order (the writer sorts them canonically). */
  readonly entries: AsyncIterable<BundleEntry> | Iterable<BundleEntry>;
  readonly privateKey: KeyObject;
  /** Maximum bytes per part; without it the bundle is one NAME.tar. */
  readonly splitSize?: number;
  /** Text of import.sh: stored in the tar and written beside the bundle. */
  readonly importScript: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: WriteProgress) => void;
}

/** What writeBundle produced. */
export interface WriteBundleResult {
  /** Final paths: the parts in order, NAME.parts.json, NAME.parts.json.sig, import.sh. */
  readonly files: readonly string[];
  /** Size of the whole tar. */
  readonly totalSize: number;
  /** Lowercase hex sha256 of the whole tar. */
  readonly sha256: string;
  /** What ferry-bundle.json says, but for images[] (streamed, never held). */
  readonly manifest: Omit<BundleManifest, 'images'>;
  /** How many images[] lists. */
  readonly images: number;
  /** Lowercase hex sha256 of the exact signed bytes of ferry-bundle.json. */
  readonly manifestSha256: string;
  readonly parts: PartsManifest;
}

/** An entry whose content is a buffer already in memory (index.json, list and info files). */
export function bufferEntry(path: string, bytes: Uint8Array, mediaType?: string): BundleEntry {
  const buf = Buffer.from(bytes);
  return {
    path,
    size: buf.length,
    sha256: createHash('sha256').update(buf).digest('hex'),
    ...(mediaType !== undefined ? { mediaType } : {}),
    open: () => Readable.from([buf]),
  };
}

/**
 * An entry made as text too long to hold (index.json, the image plan of many tags): written to
 * a temporary file piece by piece, hashed as it goes, and read back from there (and verified
 * again) when its turn in the tar comes. The caller removes the file afterwards.
 */
export class SpooledEntry {
  private readonly hash = createHash('sha256');
  private pending: string[] = [];
  private pendingLength = 0;
  private size = 0;

  private constructor(
    private readonly path: string,
    private readonly file: string,
    private fh: FileHandle | undefined,
  ) {}

  /** Starts entry `path` in the new file `file`. */
  static async create(path: string, file: string): Promise<SpooledEntry> {
    try {
      return new SpooledEntry(path, file, await open(file, 'wx', 0o600));
    } catch (err) {
      throw ioError(err, 'write', path, file);
    }
  }

  /** Appends text (UTF-8). */
  async write(text: string): Promise<void> {
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= SPOOL_CHUNK) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingLength === 0) return;
    const buf = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingLength = 0;
    this.hash.update(buf);
    this.size += buf.length;
    try {
      let off = 0;
      while (off < buf.length) off += (await this.fh!.write(buf, off, buf.length - off)).bytesWritten;
    } catch (err) {
      throw ioError(err, 'write', this.path, this.file);
    }
  }

  /** Ends the file: the entry, opened from it. */
  async done(): Promise<BundleEntry> {
    await this.flush();
    try {
      await this.fh!.close();
    } catch (err) {
      throw ioError(err, 'write', this.path, this.file);
    }
    this.fh = undefined;
    const file = this.file;
    return { path: this.path, size: this.size, sha256: this.hash.digest('hex'), file, open: () => createReadStream(file) };
  }

  /** Gives up: closes and removes the file. */
  async abandon(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    await unlink(this.file).catch(() => undefined);
  }
}

/** Bytes of text gathered before each write of a spooled entry. */
const SPOOL_CHUNK = 256 * 1024;

/**
 * A file-system failure while writing bundle file `file` (`tmp` is its temporary name, when
 * it has one): names the file, the reason in words and the errno code, e.g. a full disk.
 */
function ioError(err: unknown, op: string, file: string, tmp?: string): FerryError {
  if (isFerryError(err)) return err;
  const e = err as NodeJS.ErrnoException;
  // Node's message is "ENOSPC: no space left on device, write": keep the words, name the code once.
  const words = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message ?? '')?.[1] ?? errorMessage(err);
  const why = e.code !== undefined ? `${words} (${e.code})` : words;
  return new FerryError('BUNDLE_IO', `cannot ${op} bundle file ${file}${tmp !== undefined ? ` (written as ${tmp})` : ''}: ${why}`, {
    op,
    file,
    cause: err,
  });
}

interface PartRecord {
  readonly tmp: string;
  readonly final: string;
  readonly file: string;
  size: number;
  readonly hash: Hash;
  sha256?: string;
}

/** A sink that writes the tar into part files, rolling over at `splitSize`, hashing each part and the whole. */
class PartSink extends Writable {
  readonly parts: PartRecord[] = [];
  total = 0;
  private readonly whole = createHash('sha256');
  private wholeHex: string | undefined;
  private fh: FileHandle | undefined;
  private current: PartRecord | undefined;
  /** The first file-system failure, named: it is what the caller reports, not the tar stream's premature close. */
  failure: FerryError | undefined;
  /** The write under way: a destroyed stream does not wait for it, its cleanup must. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly outDir: string,
    private readonly name: string,
    private readonly splitSize: number | undefined,
  ) {
    super();
  }

  /** Chunks (the very objects) a writer waits to see on disk before it reads into their memory again. */
  private readonly watched = new Map<Buffer, () => void>();

  /**
   * Resolves once `chunk`, handed on unchanged by tar-stream, has been written to disk, or the
   * sink is destroyed: then nothing reads its memory any more.
   */
  whenWritten(chunk: Buffer): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.watched.set(chunk, resolve));
  }

  private release(bufs: readonly Buffer[]): void {
    if (this.watched.size === 0) return;
    for (const b of bufs) {
      const done = this.watched.get(b);
      if (done === undefined) continue;
      this.watched.delete(b);
      done();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.track(this.writeChunk(chunk), [chunk], cb);
  }

  // Chunks that queued while the previous write was in flight go to disk in one writev:
  // tar-stream emits many small pieces (headers, padding) between the blob chunks.
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const bufs = chunks.map((c) => c.chunk);
    this.track(this.writeChunk(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs)), bufs, cb);
  }

  private track(w: Promise<void>, bufs: readonly Buffer[], cb: (err?: Error | null) => void): void {
    this.writing = w.then(
      () => {
        this.release(bufs);
        cb();
      },
      (err: unknown) => {
        this.release(bufs);
        cb(this.fail(err));
      },
    );
  }

  /** Resolves once no write is under way (an aborted pipeline leaves the last one running). */
  async settled(): Promise<void> {
    await this.writing;
  }

  private fail(err: unknown): FerryError {
    const rec = this.current ?? this.parts[this.parts.length - 1];
    const e = rec ? ioError(err, 'write', rec.final, rec.tmp) : toFerryError(err, 'BUNDLE_IO', { op: 'write' });
    this.failure ??= e;
    return e;
  }

  /** Lowercase hex sha256 of everything written (call once all bytes are in). */
  wholeSha256(): string {
    this.wholeHex ??= this.whole.digest('hex');
    return this.wholeHex;
  }

  /** Without splitting the only part is the whole tar: hash it once, not twice. */
  private get single(): boolean {
    return this.splitSize === undefined;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.closePart().then(() => cb(), (err: unknown) => cb(this.fail(err)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.release([...this.watched.keys()]);
    const fh = this.fh;
    this.fh = undefined;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }

  private async openPart(): Promise<void> {
    // An aborted or failed pipeline destroys this sink while a write may still be running: no new part after that.
    if (this.destroyed) throw new FerryError('ABORTED', `bundle ${this.name}: write stopped`);
    const n = this.parts.length + 1;
    if (this.splitSize !== undefined && n > MAX_PARTS) {
      throw new FerryError('USAGE', `bundle ${this.name} needs more than ${MAX_PARTS} parts; use a larger split size`);
    }
    const file = this.splitSize === undefined ? `${this.name}.tar` : partFileName(this.name, n);
    const rec: PartRecord = { file, tmp: join(this.outDir, `.${file}.partial`), final: join(this.outDir, file), size: 0, hash: createHash('sha256') };
    this.parts.push(rec);
    this.current = rec;
    const fh = await open(rec.tmp, 'w', 0o644);
    if (this.destroyed) {
      await fh.close();
      throw new FerryError('ABORTED', `bundle ${this.name}: write stopped`);
    }
    this.fh = fh;
  }

  private async closePart(): Promise<void> {
    const fh = this.fh;
    const rec = this.current;
    if (!fh || !rec) return;
    this.fh = undefined;
    this.current = undefined;
    await fh.sync();
    await fh.close();
    rec.sha256 = this.single ? this.wholeSha256() : rec.hash.digest('hex');
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      if (!this.fh) await this.openPart();
      const rec = this.current!;
      const room = this.splitSize === undefined ? rest.length : this.splitSize - rec.size;
      const piece = rest.subarray(0, room);
      rest = rest.subarray(piece.length);
      let off = 0;
      while (off < piece.length) {
        const { bytesWritten } = await this.fh!.write(piece, off, piece.length - off);
        off += bytesWritten;
      }
      rec.size += piece.length;
      if (!this.single) rec.hash.update(piece);
      this.whole.update(piece);
      this.total += piece.length;
      // Close a full part at once, but open the next only when bytes arrive: no empty last part.
      if (this.splitSize !== undefined && rec.size >= this.splitSize) await this.closePart();
    }
  }
}


async function writeFileSynced(path: string, final: string, bytes: Uint8Array | string, mode: number): Promise<void> {
  try {
    const fh = await open(path, 'w', mode);
    try {
      await fh.writeFile(bytes);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw ioError(err, 'write', final, path);
  }
}

async function renameInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    throw ioError(err, 'rename', to, from);
  }
}

async function collectEntries(entries: AsyncIterable<BundleEntry> | Iterable<BundleEntry>): Promise<BundleEntry[]> {
  const out: BundleEntry[] = [];
  for await (const e of entries) out.push(e);
  const seen = new Set<string>();
  for (const e of out) {
    const why = tarPathError(e.path);
    if (why !== undefined) throw new FerryError('BUNDLE_INVALID', `bundle entry "${e.path}": path ${why}`, { file: e.path });
    if (e.path === IMPORT_SCRIPT_FILE) throw new FerryError('BUNDLE_INVALID', 'import.sh is added by the writer from importScript; do not pass it as an entry', { file: e.path });
    if (seen.has(e.path)) throw new FerryError('BUNDLE_INVALID', `bundle entry "${e.path}" is given twice`, { file: e.path });
    seen.add(e.path);
    if (!Number.isSafeInteger(e.size) || e.size < 0) throw new FerryError('BUNDLE_INVALID', `bundle entry "${e.path}": bad size ${e.size}`, { file: e.path });
    if (!/^[a-f0-9]{64}$/.test(e.sha256)) throw new FerryError('BUNDLE_INVALID', `bundle entry "${e.path}": sha256 must be 64 lowercase hex`, { file: e.path });
  }
  return out.sort((a, b) => compareTarPaths(a.path, b.path));
}

function header(path: string, size: number, mode: number): Partial<Header> & Pick<Header, 'name'> {
  return { name: path, size, mode, mtime: TAR_MTIME, uid: 0, gid: 0, uname: '', gname: '', type: 'file' };
}

async function writeEntry(pack: Pack, parts: PartSink, e: BundleEntry, mode: number, signal: AbortSignal | undefined): Promise<void> {
  const verifier = new VerifyingStream({ digest: `sha256:${e.sha256}`, size: e.size, details: { file: e.path } });
  const sink = pack.entry(header(e.path, e.size, mode));
  try {
    if (e.file !== undefined) await pipeline(fileChunks(e.file, parts, signal), verifier, sink, signal ? { signal } : {});
    else await pipeline(await e.open(signal ? { signal } : {}), verifier, sink, signal ? { signal } : {});
  } catch (err) {
    if (isFerryError(err, 'DIGEST_MISMATCH') || isFerryError(err, 'SIZE_MISMATCH')) {
      // Both mean the source does not hold what the manifest will sign: report them as one code.
      throw new FerryError('DIGEST_MISMATCH', `bundle entry ${e.path}: ${err.message}`, { ...err.details, file: e.path, cause: err });
    }
    throw err;
  }
}

/** Bytes of each read of a spooled file. */
const FILE_CHUNK = 64 * 1024;

/**
 * A file's bytes read into two buffers used in turn, each read into again only once the part
 * files hold what was read into it before (the tar passes chunks on unchanged, hashed as they
 * go): megabytes of index.json, plan and ferry-bundle.json no longer leave a fresh buffer per
 * read waiting for a garbage collection (they did, some 20 MB outside the heap at 50,000 tags).
 */
async function* fileChunks(file: string, parts: PartSink, signal: AbortSignal | undefined): AsyncGenerator<Buffer, void, undefined> {
  const fh = await open(file, 'r');
  try {
    const bufs = [Buffer.allocUnsafeSlow(FILE_CHUNK), Buffer.allocUnsafeSlow(FILE_CHUNK)] as const;
    const written: Array<Promise<void> | undefined> = [undefined, undefined];
    for (let i = 0; ; i ^= 1) {
      await written[i];
      signal?.throwIfAborted();
      const buf = bufs[i]!;
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      const chunk = buf.subarray(0, bytesRead);
      written[i] = parts.whenWritten(chunk);
      yield chunk;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Writes a complete bundle into `outDir`. On any failure (including a digest mismatch or an
 * abort) every temporary file is removed and no final file is created.
 */
export async function writeBundle(opts: WriteBundleOptions): Promise<WriteBundleResult> {
  const { outDir, name, signal } = opts;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new FerryError('USAGE', `bad bundle name "${name}"`);
  if (opts.splitSize !== undefined && (!Number.isSafeInteger(opts.splitSize) || opts.splitSize < MIN_SPLIT_SIZE)) {
    throw new FerryError('USAGE', `split size must be an integer of at least ${MIN_SPLIT_SIZE} bytes, got ${opts.splitSize}`);
  }
  signal?.throwIfAborted();
  const partsName = `${name}.parts.json`;
  for (const f of [`${name}.tar`, partFileName(name, 1), partsName]) {
    if (existsSync(join(outDir, f))) throw new FerryError('USAGE', `${join(outDir, f)} already exists; refusing to overwrite a bundle`, { file: f });
  }

  const entries = await collectEntries(opts.entries);
  const script = bufferEntry(IMPORT_SCRIPT_FILE, Buffer.from(opts.importScript, 'utf8'));
  const all = [script, ...entries];
  const files: BundleFile[] = all.map((e) =>
    e.mediaType === undefined ? { path: e.path, size: e.size, sha256: e.sha256 } : { path: e.path, size: e.size, sha256: e.sha256, mediaType: e.mediaType },
  );
  const { images, ...fields } = opts.manifest;
  const manifest: Omit<BundleManifest, 'images'> = { ...fields, formatVersion: FORMAT_VERSION, files };
  // Never sign what a reader would refuse: the reader's parser checks all of it but images[]
  // here, and images[] element by element, with the same rules, as it streams into the file.
  parseBundleManifest(serializeBundleManifest({ ...manifest, images: [] }));

  const total = all.reduce((n, e) => n + e.size, 0);
  if (opts.splitSize !== undefined && Math.ceil(total / opts.splitSize) > MAX_PARTS) {
    throw new FerryError('USAGE', `bundle ${name} (${total} bytes) would need more than ${MAX_PARTS} parts of ${opts.splitSize} bytes`);
  }

  const sink = new PartSink(outDir, name, opts.splitSize);
  const pack = tarPack();
  const extra = {
    manifest: join(outDir, `.${name}.${MANIFEST_FILE}.partial`),
    parts: join(outDir, `.${partsName}.partial`),
    sig: join(outDir, `.${partsName}.sig.partial`),
    script: join(outDir, `.${IMPORT_SCRIPT_FILE}.${name}.partial`),
  };
  const temps: string[] = [extra.manifest];
  try {
    const signed = await writeManifestFile(extra.manifest, manifest, images, opts.privateKey);
    const sigBytes = Buffer.from(`${signed.signature}\n`, 'utf8');
    const drained = pipeline(pack, sink, signal ? { signal } : {});
    drained.catch(() => undefined); // observed below; avoid an unhandled rejection while entries stream
    try {
      await writeEntry(pack, sink, { path: MANIFEST_FILE, size: signed.size, sha256: signed.sha256, file: extra.manifest, open: () => createReadStream(extra.manifest) }, 0o644, signal);
      await writeEntry(pack, sink, bufferEntry(SIGNATURE_FILE, sigBytes), 0o644, signal);
      let done = 0;
      for (const e of all) {
        await writeEntry(pack, sink, e, e === script ? 0o755 : 0o644, signal);
        done += e.size;
        opts.onProgress?.({ path: e.path, done, total });
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
      sink.destroy(err as Error);
      await drained.catch(() => undefined);
      throw sink.failure ?? err;
    }
    await drained.catch((err: unknown) => {
      throw sink.failure ?? err;
    });

    const parts: BundlePart[] = sink.parts.map((p) => ({ file: p.file, size: p.size, sha256: p.sha256! }));
    await unlink(extra.manifest).catch(() => undefined);
    const partsManifest: PartsManifest = {
      formatVersion: FORMAT_VERSION,
      bundleId: manifest.id,
      name,
      totalSize: sink.total,
      sha256: sink.wholeSha256(),
      parts,
    };
    const partsBytes = serializePartsManifest(partsManifest);
    temps.push(extra.parts, extra.sig, extra.script);
    await writeFileSynced(extra.parts, join(outDir, partsName), partsBytes, 0o644);
    await writeFileSynced(extra.sig, join(outDir, `${partsName}.sig`), `${signBytes(partsBytes, opts.privateKey)}\n`, 0o644);
    await writeFileSynced(extra.script, join(outDir, IMPORT_SCRIPT_FILE), opts.importScript, 0o755);
    signal?.throwIfAborted();

    // Rename order: parts, import.sh, signature, and parts.json last — its presence marks a complete bundle.
    const final: string[] = [];
    for (const p of sink.parts) {
      await renameInto(p.tmp, p.final);
      final.push(p.final);
    }
    const scriptPath = join(outDir, IMPORT_SCRIPT_FILE);
    await renameInto(extra.script, scriptPath);
    await renameInto(extra.sig, join(outDir, `${partsName}.sig`));
    await renameInto(extra.parts, join(outDir, partsName));
    final.push(join(outDir, partsName), join(outDir, `${partsName}.sig`), scriptPath);
    await syncDir(outDir);
    return { files: final, totalSize: sink.total, sha256: partsManifest.sha256, manifest, images: signed.images, manifestSha256: signed.sha256, parts: partsManifest };
  } catch (err) {
    await sink.settled();
    for (const p of sink.parts) await unlink(p.tmp).catch(() => undefined);
    for (const t of temps) await unlink(t).catch(() => undefined);
    if (signal?.aborted) throw new FerryError('ABORTED', `bundle ${name}: write aborted`, { cause: err });
    throw toFerryError(err, 'INTERNAL', { op: 'writeBundle' });
  }
}

/** Bytes gathered before each write of ferry-bundle.json's temporary file. */
const MANIFEST_CHUNK = 256 * 1024;

/**
 * Writes ferry-bundle.json to `tmp`: the canonical bytes of `manifest` with `images` streamed
 * into its images[] block, each checked as the reader would check it, hashed and signed as they
 * are written, so neither the list nor the whole text is ever held.
 */
async function writeManifestFile(
  tmp: string,
  manifest: Omit<BundleManifest, 'images'>,
  images: Iterable<BundleImage> | AsyncIterable<BundleImage>,
  privateKey: KeyObject,
): Promise<{ size: number; sha256: string; signature: string; images: number }> {
  const { head, tail } = serializeBundleManifestParts(manifest);
  const check = new BundleImageCheck(manifest);
  const hash = createHash('sha256');
  const signer = byteSigner(privateKey);
  let size = 0;
  let count = 0;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'w', 0o644);
    let pending: string[] = [];
    let pendingLength = 0;
    const flush = async (): Promise<void> => {
      if (pendingLength === 0) return;
      const buf = Buffer.from(pending.join(''), 'utf8');
      pending = [];
      pendingLength = 0;
      hash.update(buf);
      signer.update(buf);
      size += buf.length;
      let off = 0;
      while (off < buf.length) off += (await fh!.write(buf, off, buf.length - off)).bytesWritten;
    };
    const put = async (text: string): Promise<void> => {
      pending.push(text);
      pendingLength += text.length;
      if (pendingLength >= MANIFEST_CHUNK) await flush();
    };
    await put(head);
    for await (const im of images) {
      check.add(im);
      await put(`${count++ === 0 ? '[\n' : ',\n'}    ${bundleImageLine(im)}`);
    }
    await put(count === 0 ? '[]' : '\n  ]');
    await put(tail);
    await flush();
    await fh.close();
    fh = undefined;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    throw ioError(err, 'write', MANIFEST_FILE, tmp);
  }
  return { size, sha256: hash.digest('hex'), signature: signer.sign(), images: count };
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Directory fsync is not supported everywhere; the files themselves are already synced.
  }
}
