/**
 * The checks a module version's proxy files pass before Ferry stores them (`ferry sync`), calls a
 * bundle good (`ferry verify`) or installs them (`ferry import`): one implementation for all
 * three. checkModFiles checks the .info and the .mod on their own; checkModuleVersion, which
 * takes only what checkModFiles returned, adds the zip (every module zip rule, its h1) and the
 * agreement of the three files:
 *
 * - the .info names the version asked for (cmd/go modfetch proxy.go: "proxy returned info for
 *   version X instead of requested version");
 * - the .mod declares the module path asked for (cmd/go modload: "module declares its path as: X
 *   but was required as: Y");
 * - the zip's go.mod is byte for byte the .mod, or, for a zip without one (a module from before
 *   modules, a `+incompatible` version), the .mod is what go synthesizes for it, a `module`
 *   directive and nothing else (modfetch coderepo.go: GoMod and Zip read the same directory;
 *   LegacyGoMod is "module PATH\n").
 */
import { createHash } from 'node:crypto';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { checkVersion } from './escape.js';
import { parseGoMod, type GoMod } from './modfile.js';
import { hash1, hashGoMod } from './h1.js';
import { canonicalModuleVersion, isValid } from './semver.js';
import { checkModuleZip, MAX_GO_MOD, type CheckedZip } from './zipcheck.js';

/** A .info or @latest document: the fields Ferry reads. */
export interface InfoDocument {
  readonly Version: string;
  readonly Time?: string;
}

/**
 * Parses a .info or @latest body: JSON with a valid semver `Version` and, when present, a string
 * `Time`. Throws MODULE_INVALID naming `what` (e.g. "goproxyInfo example.com/m@v1.0.0").
 */
export function parseInfoDocument(raw: Buffer, what: string, details: ErrorDetails): InfoDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new FerryError('MODULE_INVALID', `${what}: invalid JSON: ${(err as Error).message}`, { ...details, cause: err });
  }
  const d = doc as { Version?: unknown; Time?: unknown } | null;
  if (typeof d !== 'object' || d === null || typeof d.Version !== 'string' || !isValid(d.Version)) {
    throw new FerryError('MODULE_INVALID', `${what}: response has no valid "Version"`, details);
  }
  if (d.Time !== undefined && typeof d.Time !== 'string') throw new FerryError('MODULE_INVALID', `${what}: "Time" is not a string`, details);
  return { Version: d.Version, ...(typeof d.Time === 'string' ? { Time: d.Time } : {}) };
}

/** A version's .info and .mod, checked by checkModFiles (the only maker of one). */
export interface CheckedModFiles {
  readonly module: string;
  readonly version: string;
  readonly info: InfoDocument;
  /** The .mod parsed as go parses a dependency's go.mod. */
  readonly gomod: GoMod;
  /** sha256 of the .mod bytes. */
  readonly modSha256: Buffer;
  /** The go.sum hash of the .mod ("h1:…"). */
  readonly h1Mod: string;
}

/** A version whose files all passed: the .info and .mod, and the zip when there is one. */
export interface CheckedModuleVersion extends CheckedModFiles {
  /** Undefined for a version carried without its zip (only .info and .mod). */
  readonly zip?: CheckedZip;
}

/** Where a zip is: a file, and its bytes when the caller already holds them. */
export interface ModuleZipInput {
  /** The zip file; with `data`, it only names the zip in messages. */
  readonly file: string;
  readonly data?: Buffer;
}

/** Options for checkModuleVersion. */
export interface CheckModuleVersionOptions {
  readonly signal?: AbortSignal;
  /** Limit for the zip and its content. @default MAX_ZIP_FILE */
  readonly maxZipSize?: number;
}

/**
 * Checks a version's .info and .mod: a canonical, valid version; an .info for that version; a
 * .mod within MAX_GO_MOD that parses and declares `module`. Throws VERSION_INVALID,
 * MODULE_INVALID or GOMOD_INVALID naming module@version.
 */
export function checkModFiles(module: string, version: string, info: Buffer, mod: Buffer): CheckedModFiles {
  const mv = `${module}@${version}`;
  const ids = { module, version };
  const cv = canonicalModuleVersion(version);
  if (cv !== version) throw new FerryError('VERSION_INVALID', `${mv}: version ${JSON.stringify(version)} is not canonical (should be ${JSON.stringify(cv)})`, ids);
  checkVersion(module, version);
  const doc = parseInfoDocument(info, `${mv}: .info`, ids);
  if (doc.Version !== version) {
    throw new FerryError('VERSION_INVALID', `${mv}: the .info is for version ${doc.Version}, not the requested ${version}`, ids);
  }
  if (mod.length > MAX_GO_MOD) throw new FerryError('GOMOD_INVALID', `${mv}: the .mod is ${mod.length} bytes, more than ${MAX_GO_MOD}`, ids);
  let gomod: GoMod;
  try {
    gomod = parseGoMod(mod, { file: `${mv}/go.mod`, lax: true });
  } catch (err) {
    if (err instanceof FerryError) throw new FerryError(err.code, err.message, { ...err.details, ...ids, cause: err });
    throw err;
  }
  if (gomod.module !== module) {
    throw new FerryError('GOMOD_INVALID', `${mv}: the .mod declares its path as "${gomod.module}" but was required as "${module}"`, ids);
  }
  return { module, version, info: doc, gomod, modSha256: createHash('sha256').update(mod).digest(), h1Mod: hashGoMod(mod) };
}

/**
 * True when a .mod says no more than go's synthesized go.mod for a zip without one: its module
 * directive (comments aside). Directives go ignores in a dependency (replace, exclude, toolchain,
 * godebug, tool) are not parsed from a .mod at all.
 */
function onlyDeclaresModule(gm: GoMod): boolean {
  return gm.go === undefined && gm.require.length === 0 && gm.retract.length === 0;
}

/**
 * Runs the zip's checks on a version whose .info and .mod passed checkModFiles: every module zip
 * rule (ZIP_INVALID), then the agreement of the zip with the .mod (MODULE_INVALID). Without a zip
 * (a version carried with only .info and .mod) there is nothing more to check.
 */
export async function checkModuleVersion(files: CheckedModFiles, zip: ModuleZipInput | undefined, opts: CheckModuleVersionOptions = {}): Promise<CheckedModuleVersion> {
  if (!zip) return files;
  const { module, version } = files;
  const mv = `${module}@${version}`;
  const checked = await checkModuleZip(zip.file, {
    module,
    version,
    ...(zip.data ? { data: zip.data } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.maxZipSize !== undefined ? { maxZipSize: opts.maxZipSize } : {}),
  });
  const ids = { module, version, file: zip.file };
  if (checked.goModSha256) {
    if (!checked.goModSha256.equals(files.modSha256)) {
      const inZip = hash1([{ name: Buffer.from('go.mod'), sha256: checked.goModSha256 }]);
      throw new FerryError('MODULE_INVALID', `${mv}: the zip's go.mod (${inZip}) differs from the .mod (${files.h1Mod}); go reads one and builds the other`, ids);
    }
  } else if (!onlyDeclaresModule(files.gomod)) {
    throw new FerryError(
      'MODULE_INVALID',
      `${mv}: the zip has no go.mod, so the .mod must be the one go synthesizes ("module ${module}"), but it also declares ${describeExtra(files.gomod)}`,
      ids,
    );
  }
  return { ...files, zip: checked };
}

function describeExtra(gm: GoMod): string {
  const parts: string[] = [];
  if (gm.go !== undefined) parts.push(`go ${gm.go}`);
  if (gm.require.length > 0) parts.push(`${gm.require.length} requirement(s) (${gm.require.slice(0, 3).map((r) => `${r.path} ${r.version}`).join(', ')})`);
  if (gm.retract.length > 0) parts.push(`${gm.retract.length} retraction(s)`);
  return parts.join(', ');
}
