/**
 * Hashing of small zips on helper threads. A module sync checks hundreds of zips of a few KiB;
 * reading the central directory, inflating every entry and hashing it cost the event loop
 * about half a millisecond per zip, as much as the three HTTP exchanges that fetched it. Here
 * a zip's bytes go to a hasher thread in one message and its entries come back in one: names,
 * declared sizes and content hashes, with the module zip rules still applied by the caller
 * (zipcheck.ts) on this thread. Zips bigger than IN_MEMORY_ZIP stay on the streamed path
 * (zipread.ts), whose checks and messages this path matches (test/gomod/zipread.test.ts).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FerryError } from '../errors/index.js';

/** One central-directory entry as the hasher read it. */
export interface HashedZipEntry {
  /** The name's raw bytes (Go's archive/zip treats names as bytes). */
  readonly name: Buffer;
  readonly uncompressedSize: number;
  /** sha256 of the content; undefined when the content was not read (see ZipHashes). */
  readonly sha256?: Buffer | undefined;
  /** Why the content could not be read, worded as the streamed path words it (after the file name). */
  readonly error?: string | undefined;
}

/** What the hasher found in one zip. */
export interface ZipHashes {
  /** Every entry, in central-directory order. */
  readonly entries: readonly HashedZipEntry[];
  /**
   * False when no content was read because the files' declared sizes add up to more than the
   * limit asked for: the zip rules refuse it on its directory alone. Otherwise every entry has
   * a sha256 up to the first one with an error, and none after it.
   */
  readonly hashed: boolean;
  /** sha256 (hex) of the whole zip file. */
  readonly digest: string;
}

/** What a hasher thread is sent: a copy of the zip, moved to it. */
interface Job {
  readonly id: number;
  readonly data: ArrayBuffer;
  readonly maxTotal: number;
}

/** Entries as they come back: names as spans of the zip, which the caller still holds. */
interface Reply {
  readonly id: number;
  /** The directory could not be read: `open` failures are worded "not a readable zip". */
  readonly failed?: { readonly stage: 'open' | 'entry'; readonly message: string };
  readonly entries?: ReadonlyArray<{ readonly at: number; readonly length: number; readonly size: number; readonly sha256?: Uint8Array; readonly error?: string }>;
  readonly hashed?: boolean;
  readonly digest?: string;
}

/** Entries of at most this declared size are inflated in one call; bigger ones are streamed. */
const ONE_CALL_ENTRY = 1024 * 1024;

/**
 * The hasher's whole program. It runs from its source text (`eval`), so it needs no compiled
 * file of its own and runs the same from the sources under test: it may use only what it is
 * handed, never this module's imports. Its checks and messages are those of yauzl (open with
 * validateEntrySizes, then openReadStream per entry), which reads the bigger zips.
 */
function hasherMain(req: NodeJS.Require, oneCallEntry: number): void {
  const zlib = req('node:zlib') as typeof import('node:zlib'); // eslint-disable-line @typescript-eslint/consistent-type-imports
  const crypto = req('node:crypto') as typeof import('node:crypto'); // eslint-disable-line @typescript-eslint/consistent-type-imports
  const { parentPort } = req('node:worker_threads') as typeof import('node:worker_threads'); // eslint-disable-line @typescript-eslint/consistent-type-imports
  const FS = req('node:fs') as typeof import('node:fs'); // eslint-disable-line @typescript-eslint/consistent-type-imports
  // This thread yields to the event loop, which drives the network: at nice 10 (Linux sets it
  // per thread), waking it no longer takes the CPU from the main thread. Measured on 2 cores:
  // a module sync 8% faster. Elsewhere, or if refused, it keeps the default priority.
  try {
    const os = req('node:os') as typeof import('node:os'); // eslint-disable-line @typescript-eslint/consistent-type-imports
    os.setPriority(Number(FS.readlinkSync('/proc/thread-self').split('/').pop()), 10);
  } catch {
    // See above.
  }

  class Stage extends Error {
    constructor(
      readonly stage: 'open' | 'entry',
      message: string,
    ) {
      super(message);
    }
  }
  interface Entry {
    at: number;
    length: number;
    flags: number;
    method: number;
    compressedSize: number;
    size: number;
    offset: number;
    sha256?: Uint8Array;
    error?: string;
  }
  const u16 = (b: Buffer, i: number): number => b.readUInt16LE(i);
  const u32 = (b: Buffer, i: number): number => b.readUInt32LE(i);
  const u64 = (b: Buffer, i: number): number => b.readUInt32LE(i + 4) * 0x100000000 + b.readUInt32LE(i);
  const need = (b: Buffer, at: number, n: number, stage: 'open' | 'entry'): void => {
    if (at + n > b.length) throw new Stage(stage, 'unexpected EOF');
  };
  const isDir = (b: Buffer, e: Entry): boolean => e.length > 0 && b[e.at + e.length - 1] === 0x2f;
  const shown = (b: Buffer, e: Entry): string => JSON.stringify(b.toString('utf8', e.at, e.at + e.length));

  /** The central directory, as yauzl's fromBuffer and readEntry read it. */
  const directory = (b: Buffer): Entry[] => {
    const tail = Math.min(20 + 22 + 0xffff, b.length);
    const start = b.length - tail;
    let i = tail - 22;
    for (; i >= 0; i--) if (u32(b, start + i) === 0x06054b50) break;
    if (i < 0) throw new Stage('open', 'End of central directory record signature not found. Either not a zip file, or file is truncated.');
    const eocd = start + i;
    let disk = u16(b, eocd + 4);
    let count = u16(b, eocd + 10);
    let cursor = u32(b, eocd + 16);
    const commentLength = u16(b, eocd + 20);
    const expected = b.length - eocd - 22;
    if (commentLength !== expected) {
      throw new Stage('open', `Invalid comment length. Expected: ${expected}. Found: ${commentLength}. Are there extra bytes at the end of the file? Or is the end of central dir signature \`PK☺☻\` in the comment?`);
    }
    if (i - 20 >= 0 && u32(b, eocd - 20) === 0x07064b50) {
      const at = u64(b, eocd - 20 + 8);
      need(b, at, 56, 'open');
      if (u32(b, at) !== 0x06064b50) throw new Stage('open', 'invalid zip64 end of central directory record signature');
      disk = u32(b, at + 16);
      count = u64(b, at + 32);
      cursor = u64(b, at + 48);
    }
    if (disk !== 0) throw new Stage('open', `multi-disk zip files are not supported: found disk number: ${disk}`);
    const entries: Entry[] = [];
    while (entries.length < count) {
      need(b, cursor, 46, 'entry');
      const sig = u32(b, cursor);
      if (sig !== 0x02014b50) throw new Stage('entry', `invalid central directory file header signature: 0x${sig.toString(16)}`);
      const e: Entry = {
        at: cursor + 46,
        length: u16(b, cursor + 28),
        flags: u16(b, cursor + 8),
        method: u16(b, cursor + 10),
        compressedSize: u32(b, cursor + 20),
        size: u32(b, cursor + 24),
        offset: u32(b, cursor + 42),
      };
      const extraLength = u16(b, cursor + 30);
      const commentLen = u16(b, cursor + 32);
      if (e.flags & 0x40) throw new Stage('entry', 'strong encryption is not supported');
      need(b, cursor + 46, e.length + extraLength + commentLen, 'entry');
      const extraEnd = e.at + e.length + extraLength;
      let zip64Read = false;
      for (let x = e.at + e.length; x < extraEnd - 3; ) {
        const id = u16(b, x);
        const dataStart = x + 4;
        const dataEnd = dataStart + u16(b, x + 2);
        if (dataEnd > extraEnd) throw new Stage('entry', 'extra field length exceeds extra field buffer size');
        if (id === 0x0001 && !zip64Read) {
          // Zip64 extended information: the 8-byte values of the fields that overflowed, in order.
          zip64Read = true;
          let k = dataStart;
          const take = (what: string): number => {
            if (k + 8 > dataEnd) throw new Stage('entry', `zip64 extended information extra field does not include ${what}`);
            const v = u64(b, k);
            k += 8;
            return v;
          };
          if (e.size === 0xffffffff) e.size = take('uncompressed size');
          if (e.compressedSize === 0xffffffff) e.compressedSize = take('compressed size');
          if (e.offset === 0xffffffff) e.offset = take('relative header offset');
        }
        x = dataEnd;
      }
      if (e.method === 0) {
        const want = e.flags & 0x1 ? e.size + 12 : e.size;
        if (e.compressedSize !== want) throw new Stage('entry', `compressed/uncompressed size mismatch for stored file: ${e.compressedSize} != ${e.size}`);
      }
      cursor = extraEnd + commentLen;
      entries.push(e);
    }
    return entries;
  };

  /**
   * sha256 of one entry's content, with yauzl openReadStream's checks; inflating stops one byte
   * past the declared size, so a zip bomb costs no more than what it declares.
   */
  const contentHash = async (b: Buffer, e: Entry): Promise<Uint8Array> => {
    if (e.flags & 0x1) throw new Error('entry is encrypted, and options.decodeFileData !== false');
    if (e.method !== 0 && e.method !== 8) throw new Error(`unsupported compression method: ${e.method}`);
    if (e.offset + 30 > b.length) throw new Error('unexpected EOF');
    const sig = u32(b, e.offset);
    if (sig !== 0x04034b50) throw new Error(`invalid local file header signature: 0x${sig.toString(16)}`);
    const start = e.offset + 30 + u16(b, e.offset + 26) + u16(b, e.offset + 28);
    if (start + e.compressedSize > b.length) throw new Error(`file data overflows file bounds: ${start} + ${e.compressedSize} > ${b.length}`);
    const raw = b.subarray(start, start + e.compressedSize);
    // Stored: the directory already matched both sizes.
    if (e.method === 0) return crypto.hash('sha256', raw, 'buffer');
    const want = e.size;
    const tooMany = (got: number): Error => new Error(`too many bytes in the stream. expected ${want}. got at least ${got}`);
    const tooFew = (got: number): Error => new Error(`not enough bytes in the stream. expected ${want}. got only ${got}`);
    if (want <= oneCallEntry) {
      let out: Buffer;
      try {
        out = zlib.inflateRawSync(raw, { maxOutputLength: want + 1 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooMany(want + 1);
        throw err;
      }
      if (out.length > want) throw tooMany(out.length);
      if (out.length < want) throw tooFew(out.length);
      return crypto.hash('sha256', out, 'buffer');
    }
    // Large entries inflate in chunks into the hash: memory stays bounded.
    const h = crypto.createHash('sha256');
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      const inflate = zlib.createInflateRaw();
      inflate.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got > want) inflate.destroy(tooMany(got));
        else h.update(chunk);
      });
      inflate.on('error', reject);
      inflate.on('end', resolve);
      inflate.end(raw);
    });
    if (got < want) throw tooFew(got);
    return h.digest();
  };

  const run = async (job: Job): Promise<Reply> => {
    const b = Buffer.from(job.data);
    const digest = crypto.hash('sha256', b, 'hex');
    let entries: Entry[];
    try {
      entries = directory(b);
    } catch (err) {
      return { id: job.id, failed: { stage: err instanceof Stage ? err.stage : 'open', message: (err as Error).message } };
    }
    // The zip rules refuse files declaring more than the limit in all: nothing is inflated then.
    let declared = 0;
    for (const e of entries) if (!isDir(b, e)) declared += e.size;
    const hashed = declared <= job.maxTotal;
    if (hashed) {
      for (const e of entries) {
        if (isDir(b, e)) {
          // archive/zip opens a directory entry as empty, and refuses one that declares data.
          if (e.size === 0) e.sha256 = crypto.hash('sha256', '', 'buffer');
          else e.error = `directory entry ${shown(b, e)} has data`;
        } else {
          try {
            e.sha256 = await contentHash(b, e);
          } catch (err) {
            e.error = `entry ${shown(b, e)}: ${(err as Error).message}`;
          }
        }
        if (e.error !== undefined) break;
      }
    }
    const out = entries.map((e) => ({ at: e.at, length: e.length, size: e.size, ...(e.sha256 ? { sha256: e.sha256 } : {}), ...(e.error !== undefined ? { error: e.error } : {}) }));
    return { id: job.id, entries: out, hashed, digest };
  };

  parentPort!.on('message', (job: Job) => {
    void run(job).then(
      (reply) => parentPort!.postMessage(reply),
      (err: unknown) => parentPort!.postMessage({ id: job.id, failed: { stage: 'open', message: (err as Error).message } }),
    );
  });
}

interface Hasher {
  readonly worker: Worker;
  readonly pending: Map<number, { data: Buffer; resolve: (r: ZipHashes | Reply['failed']) => void; reject: (err: Error) => void }>;
}

/** A few hasher threads, started on first use; idle ones do not keep the process alive. */
export class ZipHasherPool {
  private readonly hashers: Array<Hasher | undefined> = [];
  private nextId = 1;

  /** @param size hasher threads. @default one per core beyond the first, at most 4 (at least 1) */
  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism() - 1))) {
    if (!Number.isInteger(size) || size < 1) throw new TypeError(`ZipHasherPool: size must be a positive integer, got ${String(size)}`);
  }

  /**
   * Reads `data` (a whole zip) on a hasher thread: its entries and, unless their declared sizes
   * add up to more than `maxTotal`, their content hashes. Rejects with ZIP_INVALID naming `file`
   * when the central directory cannot be read.
   */
  async hash(data: Buffer, file: string, maxTotal: number): Promise<ZipHashes> {
    const h = this.pick();
    const id = this.nextId++;
    // A copy of our own, moved to the thread: the caller keeps `data`, and posting a view would
    // copy its whole backing store.
    const copy = new Uint8Array(data.length);
    copy.set(data);
    const got = await new Promise<ZipHashes | Reply['failed']>((resolve, reject) => {
      h.pending.set(id, { data, resolve, reject });
      if (h.pending.size === 1) h.worker.ref();
      const job: Job = { id, data: copy.buffer, maxTotal };
      h.worker.postMessage(job, [copy.buffer]);
    });
    if (!got || !('entries' in got)) {
      const f = got ?? { stage: 'open', message: 'unknown error' };
      throw new FerryError('ZIP_INVALID', f.stage === 'open' ? `${file}: not a readable zip: ${f.message}` : `${file}: ${f.message}`, { file });
    }
    return got;
  }

  private pick(): Hasher {
    let best: Hasher | undefined;
    for (let i = 0; i < this.size; i++) {
      const h = this.hashers[i] ?? this.start(i);
      if (!best || h.pending.size < best.pending.size) best = h;
      if (h.pending.size === 0) break;
    }
    return best!;
  }

  private start(i: number): Hasher {
    const worker = new Worker(`(${hasherMain.toString()})(require, ${ONE_CALL_ENTRY})`, { eval: true });
    const h: Hasher = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const p = h.pending.get(reply.id);
      if (!p) return;
      h.pending.delete(reply.id);
      if (h.pending.size === 0) worker.unref();
      if (reply.failed || !reply.entries) {
        p.resolve(reply.failed);
        return;
      }
      p.resolve({
        entries: reply.entries.map((e) => ({
          name: p.data.subarray(e.at, e.at + e.length),
          uncompressedSize: e.size,
          sha256: e.sha256 ? Buffer.from(e.sha256.buffer, e.sha256.byteOffset, e.sha256.byteLength) : undefined,
          error: e.error,
        })),
        hashed: reply.hashed ?? false,
        digest: reply.digest ?? '',
      });
    });
    const fail = (err: Error): void => {
      if (this.hashers[i] === h) this.hashers[i] = undefined;
      for (const p of h.pending.values()) p.reject(err);
      h.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`a zip hasher thread exited (code ${code})`)));
    this.hashers[i] = h;
    return h;
  }
}

let shared: ZipHasherPool | undefined;

/** The process-wide hasher pool, created on first use. */
export function zipHasher(): ZipHasherPool {
  shared ??= new ZipHasherPool();
  return shared;
}
