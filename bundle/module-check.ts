/**
 * The Go module checks of one bundle, shared by `ferry verify` and `ferry import` so that both
 * refuse exactly the same bundles. Fed the bundle's `gomod/` files in tar order (each one already
 * matched its sha256 in the signed file list), it checks every version's .info, .mod and zip with
 * gomod's checkModFiles and checkModuleVersion, the checks `ferry sync` ran upstream (module
 * zip rules; .info, .mod and zip agreeing), and against the signed module list (the h1 of the
 * .mod and of the zip). The canonical tar order puts a version's .info before its .mod before
 * its .zip.
 */
import { readFile, stat } from 'node:fs/promises';
import { errorMessage, FerryError } from '../errors/index.js';
import {
  checkModFiles,
  checkModuleVersion,
  MAX_GO_MOD,
  MAX_METADATA_BYTES,
  proxyPath,
  unescapePath,
  unescapeVersion,
  type CheckedModFiles,
} from '../gomod/index.js';
import { GOMOD_DIR, type BundleManifest, type BundleModule } from './format.js';

/** A module file's place in the tree: module, version and which of the three files. */
export interface ModuleFilePath {
  readonly module: string;
  readonly version: string;
  readonly ext: 'info' | 'mod' | 'zip';
}

const MODULE_FILE = /^(.+)\/@v\/([^/]+)\.(info|mod|zip)$/;

/**
 * Splits `gomod/<escaped module>/@v/<escaped version>.<info|mod|zip>`; undefined for every other
 * path (lists, `@latest`, the checksum database). Throws BUNDLE_INVALID for a module file whose
 * escaped path or version is malformed.
 */
export function moduleFilePath(path: string): ModuleFilePath | undefined {
  if (!path.startsWith(`${GOMOD_DIR}/`)) return undefined;
  const rel = path.slice(GOMOD_DIR.length + 1);
  if (rel.startsWith('sumdb/')) return undefined;
  const m = MODULE_FILE.exec(rel);
  if (!m) return undefined;
  try {
    return { module: unescapePath(m[1]!), version: unescapeVersion(m[2]!), ext: m[3] as ModuleFilePath['ext'] };
  } catch (err) {
    throw new FerryError('BUNDLE_INVALID', `${path}: not a valid module file path: ${errorMessage(err)}`, { file: path });
  }
}

/** Where a module file's content is: a file on disk (staged, spooled or in a store). */
export interface ModuleFileSource {
  readonly file: string;
}

/** One listed version on its way through the checks. */
interface Pending {
  info?: Buffer;
  files?: CheckedModFiles;
}

/** Largest .info and .mod read. */
const LIMITS: Record<'info' | 'mod', { bytes: number; code: 'MODULE_INVALID' | 'GOMOD_INVALID' }> = {
  info: { bytes: MAX_METADATA_BYTES, code: 'MODULE_INVALID' },
  mod: { bytes: MAX_GO_MOD, code: 'GOMOD_INVALID' },
};

/** The module checks of one bundle (one instance per bundle and reader). */
export class BundleModuleChecks {
  private readonly listed: ReadonlyMap<string, BundleModule>;
  private readonly pending = new Map<string, Pending>();
  private readonly checked = new Set<string>();

  /** Throws BUNDLE_INVALID when the signed file list lacks a listed version's .info or .mod, or its .zip while the list gives it an h1. */
  constructor(manifest: BundleManifest) {
    this.listed = new Map(manifest.modules.map((x) => [`${x.path}@${x.version}`, x]));
    const files = new Set(manifest.files.map((f) => f.path));
    for (const x of manifest.modules) {
      for (const ext of x.h1 === null ? (['info', 'mod'] as const) : (['info', 'mod', 'zip'] as const)) {
        const file = `${GOMOD_DIR}/${proxyPath(x.path, ext, x.version)}`;
        if (!files.has(file)) throw missing(file, x, ext);
      }
    }
  }

  /**
   * Checks one `gomod/` file; other files pass untouched. Throws a FerryError whose message
   * starts with the bundle path and whose details name it, module and version: BUNDLE_INVALID
   * (not listed, out of order, a zip the list gives no h1), DIGEST_MISMATCH (an h1 differs from
   * the signed list) or the code of the failed module check (ZIP_INVALID, MODULE_INVALID,
   * GOMOD_INVALID, VERSION_INVALID).
   */
  async check(path: string, src: ModuleFileSource, signal?: AbortSignal): Promise<void> {
    const mf = moduleFilePath(path);
    if (!mf) return;
    const key = `${mf.module}@${mf.version}`;
    const ids = { file: path, module: mf.module, version: mf.version };
    const bad = (why: string): FerryError => new FerryError('BUNDLE_INVALID', `${path}: ${why}`, ids);
    const entry = this.listed.get(key);
    if (!entry) throw bad(`${key} is not listed in the bundle's modules`);
    const state = this.pending.get(key) ?? {};
    this.pending.set(key, state);
    try {
      if (mf.ext === 'info') {
        state.info = await readLimited(src.file, path, mf.ext, ids);
        return;
      }
      if (mf.ext === 'mod') {
        if (!state.info) throw bad(`comes before ${key}'s .info`);
        const files = checkModFiles(mf.module, mf.version, state.info, await readLimited(src.file, path, mf.ext, ids));
        if (files.h1Mod !== entry.goModH1) throw new FerryError('DIGEST_MISMATCH', `${path}: go.mod hash is ${files.h1Mod}, the signed module list says ${entry.goModH1}`, ids);
        state.info = undefined;
        if (entry.h1 === null) {
          // Carried without its zip: .info and .mod are all there is to check.
          await checkModuleVersion(files, undefined);
          this.done(key);
        } else {
          state.files = files;
        }
        return;
      }
      if (entry.h1 === null) throw bad(`a zip is carried but the signed module list gives ${key} no h1`);
      if (!state.files) throw bad(`comes before ${key}'s .mod`);
      const v = await checkModuleVersion(state.files, { file: src.file }, signal ? { signal } : {});
      if (v.zip?.h1 !== entry.h1) throw new FerryError('DIGEST_MISMATCH', `${path}: zip hash is ${v.zip?.h1}, the signed module list says ${entry.h1}`, ids);
      this.done(key);
    } catch (err) {
      if (!(err instanceof FerryError) || err.details.file === path) throw err;
      // A check names module@version and the rule; the bundle path goes in front.
      throw new FerryError(err.code, `${path}: ${err.message}`, { ...err.details, ...ids, cause: err });
    }
  }

  private done(key: string): void {
    this.pending.delete(key);
    this.checked.add(key);
  }

  /** Throws BUNDLE_INVALID naming the first missing file unless every listed version was checked whole. */
  finish(): void {
    for (const [key, x] of this.listed) {
      if (this.checked.has(key)) continue;
      const state = this.pending.get(key);
      const ext = !state || (!state.info && !state.files) ? 'info' : state.info ? 'mod' : 'zip';
      throw missing(`${GOMOD_DIR}/${proxyPath(x.path, ext, x.version)}`, x, ext);
    }
  }
}

function missing(file: string, x: BundleModule, ext: ModuleFilePath['ext']): FerryError {
  return new FerryError('BUNDLE_INVALID', `${file}: is missing for ${x.path}@${x.version}${ext === 'zip' ? ' (modules gives an h1)' : ''}`, { file, module: x.path, version: x.version });
}

/** Reads a small module file whole, refusing one past its limit before reading it. */
async function readLimited(file: string, path: string, ext: 'info' | 'mod', ids: { file: string; module: string; version: string }): Promise<Buffer> {
  const limit = LIMITS[ext];
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    throw new FerryError('STORE_IO', `${path}: cannot read ${file}: ${errorMessage(err)}`, { ...ids, cause: err });
  }
  if (size > limit.bytes) throw new FerryError(limit.code, `${path}: the .${ext} is ${size} bytes, more than ${limit.bytes}`, ids);
  try {
    return await readFile(file);
  } catch (err) {
    throw new FerryError('STORE_IO', `${path}: cannot read ${file}: ${errorMessage(err)}`, { ...ids, cause: err });
  }
}
