/**
 * Minimal streaming access to a zip file on disk through yauzl, with raw (undecoded) entry
 * names: Go's archive/zip treats names as bytes, and h1 hashes and module zip rules are
 * defined over those bytes.
 */
import { createHash } from 'node:crypto';
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
  /** The whole file, when it is small enough to be read at once (see IN_MEMORY_ZIP). */
  readonly data?: Buffer | undefined;
  close(): void;
}

/**
 * Zips up to this size are read with one read and their small entries inflated in one call:
 * module zips are mostly a few KiB, and yauzl's per-entry file reads and zlib streams cost
 * several times the inflate and hash themselves.
 */
export const IN_MEMORY_ZIP = 8 * 1024 * 1024;
/** Largest declared uncompressed entry inflated in one call from an in-memory zip. */
const IN_MEMORY_ENTRY = 1024 * 1024;

function abortError(signal: AbortSignal, details: { file?: string }): FerryError {
  return new FerryError('ABORTED', 'operation aborted', { ...details, cause: signal.reason });
}

/**
 * Opens `file` and reads its whole central directory (metadata only, no file data unless the
 * file is at most `inMemoryMax` bytes, then read whole). `held` is the file's content when the
 * caller already has it in memory: nothing is read from disk then.
 */
export async function openZip(file: string, signal?: AbortSignal, inMemoryMax = IN_MEMORY_ZIP, held?: Buffer): Promise<OpenZip> {
  if (signal?.aborted) throw abortError(signal, { file });
  const yopts = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true };
  let data: Buffer | undefined = held;
  try {
    if (data === undefined && (await stat(file)).size <= inMemoryMax) data = await readFile(file, signal ? { signal } : {});
  } catch (err) {
    if (signal?.aborted) throw abortError(signal, { file });
    // As yauzl.open would report it: the same code and message whichever path read the file.
    throw new FerryError('ZIP_INVALID', `${file}: not a readable zip: ${(err as Error).message}`, { file, cause: err });
  }
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
 * sha256 of one entry's uncompressed content, streamed. yauzl fails the stream when the data
 * is longer or shorter than the declared size, which is what stops zip bombs here.
 */
export async function hashEntry(z: OpenZip, e: RawZipEntry, file: string, signal?: AbortSignal): Promise<Buffer> {
  if (signal?.aborted) throw abortError(signal, { file });
  const h = createHash('sha256');
  if (e.name.length > 0 && e.name[e.name.length - 1] === 0x2f) {
    // archive/zip opens a directory entry as empty, and refuses one that declares data.
    if (e.uncompressedSize !== 0) {
      throw new FerryError('ZIP_INVALID', `${file}: directory entry ${JSON.stringify(e.name.toString('utf8'))} has data`, { file });
    }
    return h.digest();
  }
  if (z.data && e.uncompressedSize <= IN_MEMORY_ENTRY) return h.update(entryBytes(z.data, e, file)).digest();
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

/**
 * One entry's content from an in-memory zip, with the checks (and messages) of yauzl's
 * openReadStream with validateEntrySizes: encryption, method, local header, bounds, and the
 * inflated length against the declared size (output is capped one byte past it: no zip bomb).
 */
function entryBytes(data: Buffer, e: RawZipEntry, file: string): Buffer {
  const fail = (msg: string, cause?: unknown): FerryError =>
    new FerryError('ZIP_INVALID', `${file}: entry ${JSON.stringify(e.name.toString('utf8'))}: ${msg}`, cause === undefined ? { file } : { file, cause });
  const en = e.entry;
  if (en.isEncrypted()) throw fail('entry is encrypted, and options.decodeFileData !== false');
  if (en.compressionMethod !== 0 && en.compressionMethod !== 8) throw fail(`unsupported compression method: ${en.compressionMethod}`);
  const at = en.relativeOffsetOfLocalHeader;
  if (at + 30 > data.length) throw fail('unexpected EOF');
  const signature = data.readUInt32LE(at);
  if (signature !== 0x04034b50) throw fail(`invalid local file header signature: 0x${signature.toString(16)}`);
  const start = at + 30 + data.readUInt16LE(at + 26) + data.readUInt16LE(at + 28);
  if (start + e.compressedSize > data.length) throw fail(`file data overflows file bounds: ${start} + ${e.compressedSize} > ${data.length}`);
  const raw = data.subarray(start, start + e.compressedSize);
  // Stored: the central directory already matched both sizes (validateEntrySizes).
  if (en.compressionMethod === 0) return raw;
  const want = e.uncompressedSize;
  let out: Buffer;
  try {
    out = inflateRawSync(raw, { maxOutputLength: want + 1 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw fail(`too many bytes in the stream. expected ${want}. got at least ${want + 1}`, err);
    throw fail((err as Error).message, err);
  }
  if (out.length > want) throw fail(`too many bytes in the stream. expected ${want}. got at least ${out.length}`);
  if (out.length < want) throw fail(`not enough bytes in the stream. expected ${want}. got only ${out.length}`);
  return out;
}
