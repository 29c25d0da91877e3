/**
 * The "h1:" hashes of go.sum (golang.org/x/mod/sumdb/dirhash Hash1):
 * sha256 over "hex(sha256(file))  name\n" lines sorted by name bytes, base64-encoded.
 */
import { createHash } from 'node:crypto';
import { FerryError } from '../errors/index.js';
import { hashEntry, openZip } from './zipread.js';

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
  const h = createHash('sha256');
  for (const f of sorted) {
    if (f.name.includes(0x0a)) throw new FerryError('ZIP_INVALID', 'dirhash: filenames with newlines are not supported');
    h.update(f.sha256.toString('hex'));
    h.update('  ');
    h.update(f.name);
    h.update('\n');
  }
  return 'h1:' + h.digest('base64');
}

/** The go.sum hash of a .mod file: Hash1 over the single name "go.mod". */
export function hashGoMod(bytes: Uint8Array): string {
  return hash1([{ name: Buffer.from('go.mod'), sha256: createHash('sha256').update(bytes).digest() }]);
}

/** Options for hashZip. */
export interface HashZipOptions {
  readonly signal?: AbortSignal;
}

/**
 * dirhash.HashZip: Hash1 over every entry of the zip, named exactly as stored (including the
 * "module@version/" prefix), entries streamed one at a time. As in Go, when a name appears
 * twice both lines use the content of the last entry with that name.
 */
export async function hashZip(zipFile: string, opts: HashZipOptions = {}): Promise<string> {
  const z = await openZip(zipFile, opts.signal);
  try {
    const last = new Map<string, Buffer>();
    for (const e of z.entries) last.set(e.name.toString('latin1'), await hashEntry(z, e, zipFile, opts.signal));
    return hash1(z.entries.map((e) => ({ name: e.name, sha256: last.get(e.name.toString('latin1'))! })));
  } finally {
    z.close();
  }
}
