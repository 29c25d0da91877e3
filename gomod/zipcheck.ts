/**
 * Module zip validation, ported from golang.org/x/mod/zip CheckZip (plus the size enforcement
 * Unzip adds), computing the h1 hash in the same pass. A zip that passes here is one the go
 * command will extract.
 */
import { stat } from 'node:fs/promises';
import { FerryError } from '../errors/index.js';
import { checkVersion, filePathError } from './escape.js';
import { hash1, type HashedFile } from './h1.js';
import { canonicalModuleVersion } from './semver.js';
import { openZipSource, type ZipSource } from './zipread.js';

/** Largest module zip, and largest total uncompressed content (zip.MaxZipFile, 500 MiB). */
export const MAX_ZIP_FILE = 500 * 1024 * 1024;
/** Largest go.mod inside a module zip (zip.MaxGoMod). */
export const MAX_GO_MOD = 16 * 1024 * 1024;
/** Largest LICENSE at a module zip's root (zip.MaxLICENSE). */
export const MAX_LICENSE = 16 * 1024 * 1024;

/** Options for checkModuleZip. */
export interface CheckZipOptions {
  readonly module: string;
  readonly version: string;
  /** Limit for both the zip file size and its total uncompressed size. @default MAX_ZIP_FILE */
  readonly maxZipSize?: number;
  readonly signal?: AbortSignal;
  /**
   * The zip's whole content when the caller already holds it (a small zip just downloaded):
   * checked from memory, `zipFile` then only names it in messages.
   */
  readonly data?: Buffer;
}

/** The result of a successful check. */
export interface CheckedZip {
  /** The go.sum hash of the zip ("h1:…"). */
  readonly h1: string;
  /** Regular files in the module (directory entries not counted). */
  readonly files: number;
  /** Total uncompressed bytes of those files. */
  readonly uncompressed: number;
  /** sha256 of the module's go.mod (the zip's root `go.mod`), or undefined when the zip has none. */
  readonly goModSha256?: Buffer;
}

/** Go's path.Clean for slash-separated paths. */
export function cleanPath(path: string): string {
  if (path === '') return '.';
  const rooted = path[0] === '/';
  const n = path.length;
  let out = rooted ? '/' : '';
  let r = rooted ? 1 : 0;
  let dotdot = rooted ? 1 : 0;
  while (r < n) {
    if (path[r] === '/') {
      r++;
    } else if (path[r] === '.' && (r + 1 === n || path[r + 1] === '/')) {
      r++;
    } else if (path[r] === '.' && path[r + 1] === '.' && (r + 2 === n || path[r + 2] === '/')) {
      r += 2;
      if (out.length > dotdot) {
        let w = out.length - 1;
        while (w > dotdot && out[w] !== '/') w--;
        out = out.slice(0, w);
      } else if (!rooted) {
        if (out.length > 0) out += '/';
        out += '..';
        dotdot = out.length;
      }
    } else {
      if ((rooted && out.length !== 1) || (!rooted && out.length !== 0)) out += '/';
      while (r < n && path[r] !== '/') out += path[r++];
    }
  }
  return out === '' ? '.' : out;
}

/** Go's path.Dir. */
function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return cleanPath(p.slice(0, i + 1));
}

/** Go's path.Base for the non-empty, slash-free-ended names used here. */
function baseOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

const foldCache = new Map<string, string>();

/**
 * The simple case fold of one code point, so that two strings are strings.EqualFold-equal iff
 * their folded forms are equal. JS has no SimpleFold; a /iu regexp uses Unicode simple case
 * folding, so a candidate mapping is accepted only when that regexp agrees (this keeps ı and i,
 * or İ and i, apart as Go does, while K/k/K and ſ/s/S fold together).
 */
function foldRune(c: string): string {
  const cached = foldCache.get(c);
  if (cached !== undefined) return cached;
  const same = new RegExp(`^${c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')}$`, 'iu');
  let out = c;
  const single = (s: string): boolean => Array.from(s).length === 1;
  const up = c.toUpperCase();
  const upLow = single(up) ? up.toLowerCase() : c.toLowerCase();
  if (single(upLow) && same.test(upLow)) out = upLow;
  else if (single(c.toLowerCase()) && same.test(c.toLowerCase())) out = c.toLowerCase();
  foldCache.set(c, out);
  return out;
}

/** zip.strToFold: a key equal for two names iff strings.EqualFold would call them equal. */
export function foldKey(s: string): string {
  let plain = true;
  for (let i = 0; i < s.length && plain; i++) {
    const c = s.charCodeAt(i);
    plain = c < 0x80 && !(c >= 0x41 && c <= 0x5a);
  }
  // Fast path, as in Go: ASCII without upper case is already folded.
  if (plain) return s;
  let out = '';
  for (const c of s) out += c.charCodeAt(0) < 0x80 ? c.toLowerCase() : foldRune(c);
  return out;
}

/** zip.collisionChecker: case-fold collisions, duplicates, and names both file and directory. */
class CollisionChecker {
  private readonly seen = new Map<string, { path: string; isDir: boolean }>();

  check(p: string, isDir: boolean): string | undefined {
    const fold = foldKey(p);
    const other = this.seen.get(fold);
    if (other) {
      if (p !== other.path) return `case-insensitive file name collision: ${JSON.stringify(other.path)} and ${JSON.stringify(p)}`;
      if (isDir !== other.isDir) return `entry ${JSON.stringify(p)} is both a file and a directory`;
      if (!isDir) return `multiple entries for file ${JSON.stringify(p)}`;
    } else {
      this.seen.set(fold, { path: p, isDir });
    }
    const parent = dirOf(p);
    return parent !== '.' ? this.check(parent, true) : undefined;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks a module zip on disk against every CheckZip rule and returns its h1 hash. Throws
 * ZIP_INVALID naming module@version, the entry and the rule; MODULE_INVALID/VERSION_INVALID
 * when the module path or version themselves are bad.
 */
export async function checkModuleZip(zipFile: string, opts: CheckZipOptions): Promise<CheckedZip> {
  const { module, version } = opts;
  const max = opts.maxZipSize ?? MAX_ZIP_FILE;
  const mv = `${module}@${version}`;
  const details = { module, version, file: zipFile };
  const fail = (msg: string, cause?: unknown): FerryError =>
    new FerryError('ZIP_INVALID', `${mv}: ${msg}`, cause === undefined ? details : { ...details, cause });

  const cv = canonicalModuleVersion(version);
  if (cv !== version) {
    throw new FerryError('VERSION_INVALID', `${mv}: version ${JSON.stringify(version)} is not canonical (should be ${JSON.stringify(cv)})`, { module, version });
  }
  checkVersion(module, version);

  const size = opts.data ? opts.data.length : (await stat(zipFile)).size;
  if (size > max) throw fail(`module zip file is too large (${size} bytes; limit is ${max} bytes)`);

  let z: ZipSource;
  try {
    z = await openZipSource(zipFile, { size, data: opts.data, signal: opts.signal });
  } catch (err) {
    if (err instanceof FerryError && err.code === 'ZIP_INVALID') throw fail(err.message, err);
    throw err;
  }
  try {
    const prefix = Buffer.from(`${mv}/`, 'utf8');
    const collisions = new CollisionChecker();
    let total = 0;
    let files = 0;
    let goModAt = -1;
    for (const [at, e] of z.entries.entries()) {
      const shown = JSON.stringify(e.name.toString('utf8'));
      const entryFail = (rule: string): FerryError => fail(`zip entry ${shown}: ${rule}`);
      if (e.name.length < prefix.length || !e.name.subarray(0, prefix.length).equals(prefix)) {
        throw entryFail(`path does not have prefix ${JSON.stringify(`${mv}/`)}`);
      }
      let name: string;
      try {
        name = utf8.decode(e.name.subarray(prefix.length));
      } catch {
        throw entryFail('malformed file path: invalid UTF-8');
      }
      if (name === '') continue;
      const isDir = name.endsWith('/');
      if (isDir) name = name.slice(0, -1);
      if (cleanPath(name) !== name) throw entryFail('file path is not clean');
      const pathErr = filePathError(name);
      if (pathErr !== undefined) throw entryFail(`malformed file path ${JSON.stringify(name)}: ${pathErr}`);
      const collision = collisions.check(name, isDir);
      if (collision !== undefined) throw entryFail(collision);
      if (isDir) continue;
      const base = baseOf(name);
      if (foldKey(base) === 'go.mod') {
        // A go.mod below the root marks another module: CheckZip refuses it rather than omit it.
        if (base !== name) throw entryFail('go.mod file not in module root directory');
        if (name !== 'go.mod') throw entryFail('go.mod files must have lowercase names');
        goModAt = at;
      }
      const sz = e.uncompressedSize;
      if (sz >= 0 && max - total >= sz) total += sz;
      else throw fail(`total uncompressed size of module contents too large (max size is ${max} bytes)`);
      if (name === 'go.mod' && sz > MAX_GO_MOD) throw entryFail(`go.mod file too large (max size is ${MAX_GO_MOD} bytes)`);
      if (name === 'LICENSE' && sz > MAX_LICENSE) throw entryFail(`LICENSE file too large (max size is ${MAX_LICENSE} bytes)`);
      files++;
    }
    // Names are all valid and distinct now; each entry's content is hashed once. An entry whose
    // data is longer than declared fails (the zip bomb case Unzip guards against).
    const hashed: HashedFile[] = [];
    for (let i = 0; i < z.entries.length; i++) {
      const e = z.entries[i]!;
      try {
        hashed.push({ name: e.name, sha256: await z.sha256(i) });
      } catch (err) {
        if (err instanceof FerryError && err.code !== 'ZIP_INVALID') throw err;
        throw fail(`zip entry ${JSON.stringify(e.name.toString('utf8'))}: cannot read (declared uncompressed size ${e.uncompressedSize}): ${(err as Error).message}`, err);
      }
    }
    return {
      h1: hash1(hashed),
      files,
      uncompressed: total,
      ...(goModAt >= 0 ? { goModSha256: hashed[goModAt]!.sha256 } : {}),
    };
  } finally {
    z.close();
  }
}
