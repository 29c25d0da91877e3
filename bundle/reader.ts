/**
 * Reads a bundle: finds its parts, checks them against the signed parts.json, verifies the
 * manifest signature before yielding anything, and streams every later entry through a check
 * against the signed file list (size and sha256), failing on unlisted, duplicate or missing files.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { finished, pipeline } from 'node:stream/promises';
import { extract as tarExtract, type Extract, type Header } from 'tar-stream';
import { FerryError, errorMessage, isFerryError } from '../errors/index.js';
import { VerifyingStream } from '../oci/index.js';
import {
  MANIFEST_FILE,
  parseBundleManifest,
  parsePartsManifest,
  partFileName,
  SIGNATURE_FILE,
  type BundleManifest,
  type PartsManifest,
} from './format.js';
import type { TrustedKey } from './keys.js';
import { byteVerifier, verifySignature } from './sign.js';

/** Largest ferry-bundle.json accepted (it lists every file: about 150 bytes each). */
export const MAX_MANIFEST_FILE_BYTES = 256 * 1024 * 1024;
/** Largest signature file accepted. */
export const MAX_SIGNATURE_BYTES = 4096;
/** Largest parts.json accepted. */
export const MAX_PARTS_FILE_BYTES = 1024 * 1024;

/** The `op` of the error raised when a part's sha256 differs from parts.json (verifyBundle then looks for the culprit entry). */
export const PART_SHA256_OP = 'check part sha256';

/** Options for openBundle. */
export interface OpenBundleOptions {
  /** Public keys trusted to sign bundles; one must verify the signatures. */
  readonly trust: readonly TrustedKey[];
  /** Skip signature checks (inspection only): `signer` is then null. @default false */
  readonly skipSignature?: boolean;
  /** Which bundle, when `pathOrDir` is a directory holding several. */
  readonly name?: string;
  /**
   * Hash every part against parts.json up front (reads the bundle once more, but names a
   * reordered or damaged part precisely before anything else is read). @default true
   */
  readonly verifyParts?: boolean;
  readonly signal?: AbortSignal;
}

/** One part file as found on disk. */
export interface FoundPart {
  /** Absolute or caller-relative path. */
  readonly path: string;
  readonly file: string;
  readonly size: number;
}

/** One entry of the bundle as it streams; `stream` fails at its end unless size and sha256 match. */
export interface BundleReadEntry {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** Media type for manifest blobs, as signed in the file list. */
  readonly mediaType?: string;
  /** Must be consumed (or left alone: the reader drains it before the next entry). */
  readonly stream: Readable;
}

/** An opened bundle. */
export interface OpenedBundle {
  /** Bundle name (file names are NAME.tar, NAME.tar.NNN, NAME.parts.json). */
  readonly name: string;
  readonly dir: string;
  readonly manifest: BundleManifest;
  /**
   * `sha256:` digest of the exact signed bytes of ferry-bundle.json (what the ledger records of
   * the bundle). The bytes themselves are not kept: they list every tag, megabytes at scale.
   */
  readonly manifestDigest: string;
  /** Name of the trusted key that verified the bundle, or null when signatures were skipped. */
  readonly signer: string | null;
  /** The signed parts.json, or null for a bare NAME.tar without one. */
  readonly partsManifest: PartsManifest | null;
  readonly parts: readonly FoundPart[];
  /** Streams the entries after import.sh's predecessors; may be called more than once. */
  entries(opts?: { readonly signal?: AbortSignal }): AsyncGenerator<BundleReadEntry, void, undefined>;
}

function bad(message: string, file?: string): FerryError {
  return new FerryError('BUNDLE_INVALID', message, file === undefined ? {} : { file });
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

async function readCapped(path: string, cap: number, what: string): Promise<Buffer> {
  const st = await statOrNull(path);
  if (!st) throw bad(`${what} ${path} is missing`, basename(path));
  if (st.size > cap) throw bad(`${what} ${path} is larger than ${cap} bytes`, basename(path));
  return readFile(path);
}

/** Works out the directory and bundle name from a .tar, a .tar.NNN part, a .parts.json or a directory. */
async function locate(pathOrDir: string, wanted: string | undefined): Promise<{ dir: string; name: string }> {
  const st = await statOrNull(pathOrDir);
  if (!st) throw new FerryError('USAGE', `bundle ${pathOrDir} does not exist`, { file: pathOrDir });
  if (st.isDirectory()) {
    const names = new Set<string>();
    for (const f of await readdir(pathOrDir)) {
      if (f.startsWith('.')) continue; // temporary files of an unfinished export
      const m = /^(.+)\.(?:parts\.json|tar|tar\.\d{3})$/.exec(f);
      if (m) names.add(m[1]!);
    }
    if (wanted !== undefined) {
      if (!names.has(wanted)) throw new FerryError('USAGE', `no bundle named ${wanted} in ${pathOrDir}`, { file: pathOrDir });
      return { dir: pathOrDir, name: wanted };
    }
    const list = [...names].sort();
    if (list.length === 0) throw new FerryError('USAGE', `no bundle found in ${pathOrDir}`, { file: pathOrDir });
    if (list.length > 1) throw new FerryError('USAGE', `${pathOrDir} holds ${list.length} bundles (${list.join(', ')}); name one`, { file: pathOrDir });
    return { dir: pathOrDir, name: list[0]! };
  }
  const m = /^(.+)\.(?:parts\.json|tar|tar\.\d{3})$/.exec(basename(pathOrDir));
  if (!m) throw new FerryError('USAGE', `${pathOrDir} is not a bundle (expected NAME.tar, NAME.tar.001 or NAME.parts.json)`, { file: pathOrDir });
  return { dir: dirname(pathOrDir), name: m[1]! };
}

/**
 * A file's bytes in chunks read into one buffer used again for each read: a chunk is valid only
 * until the next is asked for, so a consumer copies what it keeps. createReadStream allocates a
 * buffer per read, and a long file leaves tens of megabytes of them waiting for a garbage
 * collection.
 */
export async function* readFileChunks(path: string, signal?: AbortSignal): AsyncGenerator<Buffer, void, undefined> {
  signal?.throwIfAborted();
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(64 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      signal?.throwIfAborted();
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

async function hashFile(path: string, signal: AbortSignal | undefined): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of readFileChunks(path, signal)) h.update(chunk);
  return h.digest('hex');
}

/** Checks every part named in the signed parts.json: present, right size, right sha256, nothing extra. */
async function checkParts(dir: string, pm: PartsManifest, hash: boolean, signal: AbortSignal | undefined): Promise<FoundPart[]> {
  const n = pm.parts.length;
  const found: FoundPart[] = [];
  for (let i = 0; i < n; i++) {
    const part = pm.parts[i]!;
    const path = join(dir, part.file);
    const st = await statOrNull(path);
    if (!st) throw bad(`part ${i + 1} of ${n} (${part.file}) is missing`, part.file);
    if (st.size !== part.size) {
      throw bad(`part ${part.file} has ${st.size} bytes, parts.json says ${part.size} — truncated, reordered or damaged`, part.file);
    }
    found.push({ path, file: part.file, size: st.size });
  }
  if (n > 1 || pm.parts[0]!.file !== `${pm.name}.tar`) {
    const extra = join(dir, partFileName(pm.name, n + 1));
    if (await statOrNull(extra)) throw bad(`unexpected extra part ${basename(extra)}: parts.json lists ${n}`, basename(extra));
  }
  if (hash) {
    for (const [i, part] of pm.parts.entries()) {
      const got = await hashFile(found[i]!.path, signal);
      if (got !== part.sha256) {
        throw new FerryError('BUNDLE_INVALID', `part ${part.file} has the wrong sha256 — reordered or damaged`, { file: part.file, op: PART_SHA256_OP });
      }
    }
  }
  return found;
}

/** One readable over all parts in order: reassembly is plain concatenation. */
function concatParts(parts: readonly FoundPart[], signal: AbortSignal | undefined): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (const p of parts) {
      for await (const chunk of createReadStream(p.path, signal ? { signal } : {})) yield chunk as Buffer;
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

/** Reads a tar entry of the size its header gives (at most `cap`) a chunk at a time, each passed to `each`. */
async function readChunks(stream: Readable, size: number, cap: number, what: string, each: (chunk: Buffer) => void): Promise<void> {
  if (size > cap) throw bad(`${what} is larger than ${cap} bytes`, what);
  let n = 0;
  try {
    for await (const c of stream) {
      const chunk = c as Buffer;
      if (n + chunk.length > size) throw bad(`${what} holds more than the ${size} bytes its tar header gives`, what);
      each(chunk);
      n += chunk.length;
    }
  } catch (err) {
    throw tarError(err, `entry ${what}`);
  }
  if (n !== size) throw tarError(new Error(`unexpected end of entry: ${n} of ${size} bytes`), `entry ${what}`);
}

/** Reads a small tar entry whole into one buffer of the size its header gives. */
async function readAll(stream: Readable, size: number, cap: number, what: string): Promise<Buffer> {
  if (size > cap) throw bad(`${what} is larger than ${cap} bytes`, what);
  const out = Buffer.allocUnsafe(size);
  let n = 0;
  await readChunks(stream, size, cap, what, (chunk) => {
    chunk.copy(out, n);
    n += chunk.length;
  });
  return out;
}

/** Maps a tar-stream error to BUNDLE_INVALID; `where` is "entry X" or "after entry X". */
function tarError(err: unknown, where: string): FerryError {
  if (err instanceof FerryError) return err;
  const msg = errorMessage(err);
  const why = /unexpected end|premature/i.test(msg) ? 'is truncated' : 'is damaged';
  return new FerryError('BUNDLE_INVALID', `bundle tar ${why} (${where}): ${msg}`, { file: where.replace(/^(after )?entry /, ''), cause: err });
}

/** A VerifyingStream whose errors name the tar entry, so consumers reading it see the path. */
class EntryVerifier extends VerifyingStream {
  constructor(
    private readonly path: string,
    opts: ConstructorParameters<typeof VerifyingStream>[0],
  ) {
    super(opts);
  }

  private nameError(err: Error | null | undefined): Error | null | undefined {
    if (!err) return err;
    if (isFerryError(err, 'DIGEST_MISMATCH') || isFerryError(err, 'SIZE_MISMATCH')) {
      return new FerryError('DIGEST_MISMATCH', `tar entry ${this.path}: ${err.message}`, { ...err.details, file: this.path, cause: err });
    }
    return err;
  }

  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    super._transform(chunk, enc, (err, data) => cb(this.nameError(err), data));
  }

  override _flush(cb: TransformCallback): void {
    super._flush((err, data) => cb(this.nameError(err), data));
  }
}

/** A tar reader over the parts with a next() that maps tar errors to BUNDLE_INVALID. */
function openTar(parts: readonly FoundPart[], signal: AbortSignal | undefined): {
  next(after: string): Promise<{ header: Header; stream: Readable } | null>;
  close(): void;
} {
  const src = concatParts(parts, signal);
  const ex: Extract = tarExtract();
  const feeding = pipeline(src, ex);
  let feedError: unknown;
  feeding.catch((err: unknown) => {
    feedError = err;
  });
  const it = ex[Symbol.asyncIterator]();
  return {
    async next(after) {
      try {
        const r = await it.next();
        if (r.done) {
          await feeding.catch(() => undefined);
          if (feedError !== undefined) throw feedError;
          return null;
        }
        return { header: r.value.header, stream: r.value as unknown as Readable };
      } catch (err) {
        if (signal?.aborted) throw new FerryError('ABORTED', 'bundle read aborted', { cause: err });
        throw tarError(feedError ?? err, `after entry ${after}`);
      }
    },
    close() {
      src.destroy();
      ex.destroy();
    },
  };
}

/** ferry-bundle.json as openBundle read it: its text, sha256 and size, and its signature's bytes. */
interface BundleHead {
  readonly text: string;
  readonly digest: string;
  readonly size: number;
  readonly sigBytes: Buffer;
}

/**
 * Reads the head: ferry-bundle.json as it streams (hashed, fed to `each`, decoded to text a
 * chunk at a time), then its signature. The manifest is megabytes at tens of thousands of tags
 * and is never held as one buffer beside its text: a malloc'd buffer that large, once freed,
 * also raises glibc's mmap threshold, so the process keeps more of the memory it frees later.
 */
async function readHead(tar: ReturnType<typeof openTar>, each: (chunk: Buffer) => void): Promise<BundleHead> {
  const first = await tar.next('(start)');
  if (!first || first.header.name !== MANIFEST_FILE || first.header.type !== 'file') {
    throw bad(`the first tar entry must be ${MANIFEST_FILE}, found ${first ? first.header.name : 'nothing'}`, MANIFEST_FILE);
  }
  const size = first.header.size ?? 0;
  const h = createHash('sha256');
  const decoder = new StringDecoder('utf8');
  let text = '';
  await readChunks(first.stream, size, MAX_MANIFEST_FILE_BYTES, MANIFEST_FILE, (chunk) => {
    h.update(chunk);
    each(chunk);
    text += decoder.write(chunk);
  });
  text += decoder.end();
  const second = await tar.next(MANIFEST_FILE);
  if (!second || second.header.name !== SIGNATURE_FILE || second.header.type !== 'file') {
    throw bad(`the second tar entry must be ${SIGNATURE_FILE}, found ${second ? second.header.name : 'nothing'}`, SIGNATURE_FILE);
  }
  const sigBytes = await readAll(second.stream, second.header.size ?? 0, MAX_SIGNATURE_BYTES, SIGNATURE_FILE);
  return { text, digest: `sha256:${h.digest('hex')}`, size, sigBytes };
}

/**
 * Reads the head again and checks, as it streams, that it is what openBundle verified: the
 * manifest by its size and sha256 (its bytes are not kept), the signature byte for byte.
 */
async function checkHeadUnchanged(tar: ReturnType<typeof openTar>, manifest: { readonly digest: string; readonly size: number }, sigBytes: Buffer): Promise<void> {
  const changed = (): FerryError => bad(`${MANIFEST_FILE} changed since the bundle was opened`, MANIFEST_FILE);
  const read = async (e: { header: Header; stream: Readable } | null, name: string, each: (chunk: Buffer) => boolean): Promise<boolean> => {
    if (!e || e.header.name !== name || e.header.type !== 'file') return false;
    try {
      for await (const c of e.stream) if (!each(c as Buffer)) return false;
    } catch (err) {
      throw tarError(err, `entry ${name}`);
    }
    return true;
  };
  const h = createHash('sha256');
  let n = 0;
  const first = await read(await tar.next('(start)'), MANIFEST_FILE, (c) => {
    n += c.length;
    h.update(c);
    return n <= manifest.size;
  });
  if (!first || n !== manifest.size || `sha256:${h.digest('hex')}` !== manifest.digest) throw changed();
  let at = 0;
  const second = await read(await tar.next(MANIFEST_FILE), SIGNATURE_FILE, (c) => {
    const same = at + c.length <= sigBytes.length && sigBytes.subarray(at, at + c.length).equals(c);
    at += c.length;
    return same;
  });
  if (!second || at !== sigBytes.length) throw changed();
}

/**
 * Opens a bundle given its .tar, any .tar.NNN part, its .parts.json, or a directory holding it.
 * Checks the parts and the signatures before returning; entries() then streams the content.
 */
export async function openBundle(pathOrDir: string, opts: OpenBundleOptions): Promise<OpenedBundle> {
  const { signal } = opts;
  signal?.throwIfAborted();
  const { dir, name } = await locate(pathOrDir, opts.name);
  const partsFile = `${name}.parts.json`;
  const partsPath = join(dir, partsFile);
  let partsManifest: PartsManifest | null = null;
  let parts: FoundPart[];
  if (await statOrNull(partsPath)) {
    const bytes = await readCapped(partsPath, MAX_PARTS_FILE_BYTES, 'parts file');
    if (!opts.skipSignature) {
      const sigPath = `${partsPath}.sig`;
      const sig = await statOrNull(sigPath);
      if (!sig) throw new FerryError('SIGNATURE_INVALID', `${partsFile}.sig is missing`, { file: `${partsFile}.sig` });
      const sigText = (await readCapped(sigPath, MAX_SIGNATURE_BYTES, 'signature')).toString('utf8');
      verifySignature(bytes, sigText, opts.trust, partsFile);
    }
    partsManifest = parsePartsManifest(bytes, partsFile);
    if (partsManifest.name !== name) throw bad(`${partsFile} names the bundle "${partsManifest.name}", not "${name}"`, partsFile);
    parts = await checkParts(dir, partsManifest, opts.verifyParts !== false, signal);
  } else {
    const tarPath = join(dir, `${name}.tar`);
    const st = await statOrNull(tarPath);
    if (!st) {
      throw bad(`${partsFile} is missing: a split bundle cannot be checked or reassembled without it`, partsFile);
    }
    parts = [{ path: tarPath, file: `${name}.tar`, size: st.size }];
  }

  const tar = openTar(parts, signal);
  // The signature is checked as the manifest streams by, and its text parsed only once it verified.
  const verifier = opts.skipSignature ? null : byteVerifier(opts.trust);
  let head: BundleHead;
  try {
    head = await readHead(tar, (chunk) => verifier?.update(chunk));
  } finally {
    tar.close();
  }
  const { sigBytes } = head;
  const signer = verifier === null ? null : verifier.verify(sigBytes.toString('utf8'), MANIFEST_FILE).name;
  const manifest = parseBundleManifest(head.text);
  // Only its digest is kept (entries() checks a second read against it), not the bytes or the text.
  const signed = { digest: head.digest, size: head.size };

  if (partsManifest && partsManifest.bundleId !== manifest.id) {
    throw bad(`${partsFile} belongs to bundle ${partsManifest.bundleId}, but the tar holds bundle ${manifest.id}`, partsFile);
  }

  async function* entries(eopts: { readonly signal?: AbortSignal } = {}): AsyncGenerator<BundleReadEntry, void, undefined> {
    const sig = eopts.signal ?? signal;
    const t = openTar(parts, sig);
    try {
      // The files may have changed since openBundle verified them: only the verified bytes are trusted.
      await checkHeadUnchanged(t, signed, sigBytes);
      const byPath = new Map(manifest.files.map((f) => [f.path, f]));
      const seen = new Set<string>();
      let after = SIGNATURE_FILE;
      for (;;) {
        const e = await t.next(after);
        if (!e) break;
        const h = e.header;
        if (h.type !== 'file') throw bad(`tar entry ${h.name} is a ${h.type}; bundles hold only regular files`, h.name);
        const f = byPath.get(h.name);
        if (!f) throw bad(`tar entry ${h.name} is not listed in ${MANIFEST_FILE}`, h.name);
        if (seen.has(h.name)) throw bad(`tar entry ${h.name} appears twice`, h.name);
        seen.add(h.name);
        if (h.size !== f.size) {
          throw new FerryError('DIGEST_MISMATCH', `tar entry ${h.name} has ${h.size} bytes, ${MANIFEST_FILE} says ${f.size}`, { file: h.name });
        }
        const verifier = new EntryVerifier(f.path, { digest: `sha256:${f.sha256}`, size: f.size, details: { file: f.path } });
        e.stream.on('error', (err: unknown) => verifier.destroy(tarError(err, `entry ${f.path}`)));
        e.stream.pipe(verifier);
        const flowing = finished(verifier);
        let failure: unknown;
        flowing.catch((err: unknown) => {
          failure = err;
        });
        yield { path: f.path, size: f.size, sha256: f.sha256, ...(f.mediaType !== undefined ? { mediaType: f.mediaType } : {}), stream: verifier };
        // The consumer may have skipped the entry: drain it so the tar moves on, and still check it.
        if (!verifier.readableEnded && !verifier.destroyed) verifier.resume();
        await flowing.catch(() => undefined);
        if (failure !== undefined) throw failure instanceof FerryError ? failure : tarError(failure, `entry ${f.path}`);
        after = f.path;
      }
      const missing = manifest.files.filter((f) => !seen.has(f.path)).map((f) => f.path);
      if (missing.length > 0) {
        const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
        throw bad(`${missing[0]} is listed in ${MANIFEST_FILE} but absent from the tar${more}`, missing[0]);
      }
    } finally {
      t.close();
    }
  }

  return { name, dir, manifest, manifestDigest: signed.digest, signer, partsManifest, parts, entries };
}
