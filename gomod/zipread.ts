/**
 * Minimal streaming access to a zip file on disk through yauzl, with raw (undecoded) entry
 * names: Go's archive/zip treats names as bytes, and h1 hashes and module zip rules are
 * defined over those bytes. openZipSource reads zips up to IN_MEMORY_ZIP whole on a hasher
 * thread instead (zip-hasher.ts), with the same checks and messages.
 */
import { createHash, hash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { FerryError } from '../errors/index.js';
import { zipHasher } from './zip-hasher.js';

/** One central-directory entry with its raw name bytes. */
export interface RawZipEntry {
  readonly name: Buffer;
  readonly uncompressedSize: number;
  readonly compressedSize: number;
  readonly entry: yauzl.Entry;
}

/** An open zip file and its entries in central-directory order. */
export interface OpenZip {
  readonly zip: yauzl.ZipFile;
  readonly entries: RawZipEntry[];
  close(): void;
}

/**
 * Zips up to this size are read whole and checked from memory, on a hasher thread: module zips
 * are mostly a few KiB, and yauzl's per-entry reads and zlib streams cost several times the
 * inflate and hash themselves. Bigger ones are streamed.
 */
export const IN_MEMORY_ZIP = 8 * 1024 * 1024;

function abortError(signal: AbortSignal, details: { file?: string }): FerryError {
  return new FerryError('ABORTED', 'operation aborted', { ...details, cause: signal.reason });
}

/** Opens `file` and reads its whole central directory (metadata only, no file data). */
export async function openZip(file: string, signal?: AbortSignal): Promise<OpenZip> {
  if (signal?.aborted) throw abortError(signal, { file });
  const yopts = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true };
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
    yauzl.open(file, yopts, (err: Error | null, zf?: yauzl.ZipFile) => {
      if (err || !zf) reject(new FerryError('ZIP_INVALID', `${file}: not a readable zip: ${err?.message ?? 'unknown error'}`, { file, cause: err }));
      else resolve(zf);
    });
  });
  const entries: RawZipEntry[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(abortError(signal!, { file }));
      signal?.addEventListener('abort', onAbort, { once: true });
      zip.on('entry', (entry: yauzl.Entry) => {
        // decodeStrings: false makes fileName the raw bytes.
        const name = entry.fileName as unknown as Buffer;
        entries.push({ name: Buffer.from(name), uncompressedSize: entry.uncompressedSize, compressedSize: entry.compressedSize, entry });
        zip.readEntry();
      });
      zip.once('end', () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      zip.once('error', (err: Error) => {
        signal?.removeEventListener('abort', onAbort);
        reject(new FerryError('ZIP_INVALID', `${file}: ${err.message}`, { file, cause: err }));
      });
      zip.readEntry();
    });
  } catch (err) {
    zip.close();
    throw err;
  }
  return { zip, entries, close: () => zip.close() };
}

/**
 * sha256 of one entry's uncompressed content, streamed. yauzl fails the stream when the data
 * is longer or shorter than the declared size, which is what stops zip bombs here.
 */
export async function hashEntry(z: OpenZip, e: RawZipEntry, file: string, signal?: AbortSignal): Promise<Buffer> {
  if (signal?.aborted) throw abortError(signal, { file });
  if (e.name.length > 0 && e.name[e.name.length - 1] === 0x2f) {
    // archive/zip opens a directory entry as empty, and refuses one that declares data.
    if (e.uncompressedSize !== 0) {
      throw new FerryError('ZIP_INVALID', `${file}: directory entry ${JSON.stringify(e.name.toString('utf8'))} has data`, { file });
    }
    return hash('sha256', '', 'buffer');
  }
  const h = createHash('sha256');
  const stream = await new Promise<Readable>((resolve, reject) => {
    z.zip.openReadStream(e.entry, (err, s) => {
      if (err || !s) reject(new FerryError('ZIP_INVALID', `${file}: entry ${JSON.stringify(e.name.toString('utf8'))}: ${err?.message ?? 'cannot open'}`, { file, cause: err }));
      else resolve(s);
    });
  });
  const onAbort = (): void => {
    stream.destroy(abortError(signal!, { file }));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) h.update(chunk as Buffer);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('ZIP_INVALID', `${file}: entry ${JSON.stringify(e.name.toString('utf8'))}: ${(err as Error).message}`, { file, cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return h.digest();
}

/** A zip's entries, and each one's content hash: from a hasher thread, or streamed by yauzl. */
export interface ZipSource {
  readonly entries: ReadonlyArray<{ readonly name: Buffer; readonly uncompressedSize: number }>;
  /** sha256 of entry i's content; rejects with ZIP_INVALID when it cannot be read. */
  sha256(i: number): Promise<Buffer>;
  /** The zip's own sha256 (hex), when it was read whole. */
  readonly digest?: string | undefined;
  close(): void;
}

/** Options for openZipSource. */
export interface ZipSourceOptions {
  /** The file's size, when the caller already has it. */
  readonly size?: number | undefined;
  /** The zip's whole content, when the caller already holds it: `file` then only names it. */
  readonly data?: Buffer | undefined;
  /** No content is read when the entries declare more than this in all (see ZipHashes.hashed). */
  readonly maxTotal: number;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Opens a zip for hashing its entries: read whole (given, or at most IN_MEMORY_ZIP) and hashed on
 * a hasher thread, else streamed entry by entry. Both ways check and word alike.
 */
export async function openZipSource(file: string, opts: ZipSourceOptions): Promise<ZipSource> {
  const { signal } = opts;
  let data = opts.data;
  try {
    if (data === undefined && (opts.size ?? (await stat(file)).size) <= IN_MEMORY_ZIP) data = await readFile(file, signal ? { signal } : {});
  } catch (err) {
    if (signal?.aborted) throw abortError(signal, { file });
    throw new FerryError('ZIP_INVALID', `${file}: not a readable zip: ${(err as Error).message}`, { file, cause: err });
  }
  if (data === undefined) {
    const z = await openZip(file, signal);
    return { entries: z.entries, sha256: (i) => hashEntry(z, z.entries[i]!, file, signal), close: () => z.close() };
  }
  const got = await zipHasher().hash(data, file, opts.maxTotal);
  if (signal?.aborted) throw abortError(signal, { file });
  return {
    entries: got.entries,
    digest: got.digest,
    sha256: (i) => {
      const e = got.entries[i]!;
      if (e.error !== undefined) return Promise.reject(new FerryError('ZIP_INVALID', `${file}: ${e.error}`, { file }));
      // Not hashed only when the declared sizes exceed the limit, which the rules refuse first.
      if (!got.hashed || !e.sha256) return Promise.reject(new FerryError('INTERNAL', `${file}: entry ${i} was not hashed`, { file }));
      return Promise.resolve(e.sha256);
    },
    close: () => undefined,
  };
}
