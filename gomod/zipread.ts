/**
 * Streaming access to a zip through yauzl (the one zip reader), with raw (undecoded) entry
 * names: Go's archive/zip treats names as bytes, and h1 hashes and module zip rules are
 * defined over those bytes. A zip up to IN_MEMORY_ZIP is read from memory, a bigger one from
 * its file.
 */
import { createHash, hash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import { FerryError } from '../errors/index.js';

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
  /** The zip's content, when it was opened from memory. */
  readonly data?: Buffer | undefined;
  close(): void;
}

/**
 * Zips up to this size are fetched whole and read from memory (module zips are mostly a few
 * KiB: one read instead of one per entry); bigger ones are streamed from a file.
 */
export const IN_MEMORY_ZIP = 8 * 1024 * 1024;

function abortError(signal: AbortSignal, details: { file?: string }): FerryError {
  return new FerryError('ABORTED', 'operation aborted', { ...details, cause: signal.reason });
}

/**
 * Opens `file` (or `data`, its content held in memory: `file` then only names it) and reads its
 * whole central directory (metadata only, no file data).
 */
export async function openZip(file: string, signal?: AbortSignal, data?: Buffer): Promise<OpenZip> {
  if (signal?.aborted) throw abortError(signal, { file });
  const yopts = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true };
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
    const done = (err: Error | null, zf?: yauzl.ZipFile): void => {
      if (err || !zf) reject(new FerryError('ZIP_INVALID', `${file}: not a readable zip: ${err?.message ?? 'unknown error'}`, { file, cause: err }));
      else resolve(zf);
    };
    if (data) yauzl.fromBuffer(data, yopts, done);
    else yauzl.open(file, yopts, done);
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
  return { zip, entries, data, close: () => zip.close() };
}

/**
 * Entries of a zip in memory up to this size are inflated in one call rather than through a
 * zlib stream: a module zip holds mostly small files, and a stream per entry cost several times
 * the inflate itself (2,500 entries of a few KiB: about 0.6 s of CPU).
 */
const ONE_CALL = 1024 * 1024;

/**
 * One entry's content from a zip in memory: yauzl reads the local header and bounds the data
 * (as for a stream), zlib inflates it in one call; sizes are checked as yauzl's streams check
 * them (validateEntrySizes), with the same messages.
 */
async function entryContent(zip: yauzl.ZipFile, data: Buffer, e: RawZipEntry, file: string): Promise<Buffer> {
  const fail = (message: string, cause?: unknown): FerryError =>
    new FerryError('ZIP_INVALID', `${file}: entry ${JSON.stringify(e.name.toString('utf8'))}: ${message}`, { file, ...(cause === undefined ? {} : { cause }) });
  let start: number;
  try {
    ({ fileDataStart: start } = await zip.readLocalFileHeaderPromise(e.entry, { minimal: true }));
  } catch (err) {
    throw fail((err as Error).message, err);
  }
  const raw = data.subarray(start, start + e.compressedSize);
  // Stored: yauzl has checked that the two declared sizes agree.
  if (e.entry.compressionMethod === 0) return raw;
  const expected = e.uncompressedSize;
  let out: Buffer;
  try {
    out = inflateRawSync(raw, { maxOutputLength: expected + 1 });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw fail(`too many bytes in the stream. expected ${expected}. got at least ${expected + 1}`, err);
    throw fail((err as Error).message, err);
  }
  if (out.length > expected) throw fail(`too many bytes in the stream. expected ${expected}. got at least ${out.length}`);
  if (out.length < expected) throw fail(`not enough bytes in the stream. expected ${expected}. got only ${out.length}`);
  return out;
}

/**
 * sha256 of one entry's uncompressed content, streamed (or inflated in one call, for a small
 * entry of a zip in memory). yauzl fails the stream when the data
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
  if (z.data && !e.entry.isEncrypted() && (e.entry.compressionMethod === 0 || e.entry.compressionMethod === 8) && e.uncompressedSize <= ONE_CALL) {
    return hash('sha256', await entryContent(z.zip, z.data, e, file), 'buffer');
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

/** A zip's entries, and each one's content hash. */
export interface ZipSource {
  readonly entries: ReadonlyArray<{ readonly name: Buffer; readonly uncompressedSize: number }>;
  /** sha256 of entry i's content; rejects with ZIP_INVALID when it cannot be read. */
  sha256(i: number): Promise<Buffer>;
  close(): void;
}

/** Options for openZipSource. */
export interface ZipSourceOptions {
  /** The file's size, when the caller already has it. */
  readonly size?: number | undefined;
  /** The zip's whole content, when the caller already holds it: `file` then only names it. */
  readonly data?: Buffer | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Opens a zip for hashing its entries: from memory when given or at most IN_MEMORY_ZIP, else
 * streamed from the file entry by entry.
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
  const z = await openZip(file, signal, data);
  return { entries: z.entries, sha256: (i) => hashEntry(z, z.entries[i]!, file, signal), close: () => z.close() };
}
