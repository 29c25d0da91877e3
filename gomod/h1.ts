/**
 * The "h1:" hashes of go.sum (golang.org/x/mod/sumdb/dirhash Hash1):
 * sha256 over "hex(sha256(file))  name\n" lines sorted by name bytes, base64-encoded.
 */
import { hash } from 'node:crypto';
import { FerryError } from '../errors/index.js';
import { openZipSource } from './zipread.js';

const NEWLINE = Buffer.from('\n');

/** A file name and the sha256 of its content, the input of one summary line. */
export interface HashedFile {
  readonly name: Buffer;
  readonly sha256: Buffer;
}

/**
 * dirhash.Hash1 over already-hashed files. Names are sorted bytewise (Go's sort.Strings), not
 * by JS UTF-16 order; a name containing a newline is refused.
 */
export function hash1(files: readonly HashedFile[]): string {
  const sorted = [...files].sort((a, b) => Buffer.compare(a.name, b.name));
  const parts: Buffer[] = [];
  for (const f of sorted) {
    if (f.name.includes(0x0a)) throw new FerryError('ZIP_INVALID', 'dirhash: filenames with newlines are not supported');
    parts.push(Buffer.from(`${f.sha256.toString('hex')}  `, 'latin1'), f.name, NEWLINE);
  }
  return 'h1:' + hash('sha256', Buffer.concat(parts), 'base64');
}

/** The go.sum hash of a .mod file: Hash1 over the single name "go.mod". */
export function hashGoMod(bytes: Uint8Array): string {
  return hash1([{ name: Buffer.from('go.mod'), sha256: hash('sha256', bytes, 'buffer') }]);
}

/** Options for hashZip. */
export interface HashZipOptions {
  readonly signal?: AbortSignal;
}

/**
 * dirhash.HashZip: Hash1 over every entry of the zip, named exactly as stored (including the
 * "module@version/" prefix). As in Go, when a name appears twice both lines use the content of
 * the last entry with that name. Zips up to IN_MEMORY_ZIP are read from memory, bigger ones
 * from the file.
 */
export async function hashZip(zipFile: string, opts: HashZipOptions = {}): Promise<string> {
  const z = await openZipSource(zipFile, { signal: opts.signal });
  try {
    const files: HashedFile[] = [];
    for (let i = 0; i < z.entries.length; i++) files.push({ name: z.entries[i]!.name, sha256: await z.sha256(i) });
    const last = new Map<string, Buffer>();
    for (const f of files) last.set(f.name.toString('latin1'), f.sha256);
    return hash1(files.map((f) => ({ name: f.name, sha256: last.get(f.name.toString('latin1'))! })));
  } finally {
    z.close();
  }
}
