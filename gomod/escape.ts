/**
 * Module path, version and file path rules, ported from golang.org/x/mod/module
 * (CheckPath, CheckFilePath, EscapePath, EscapeVersion and their inverses).
 */
import { FerryError } from '../errors/index.js';
import { build, isValid, major } from './semver.js';

/** Which rule set checkPath applies: module paths are strictest, file paths loosest. */
type PathKind = 'module' | 'import' | 'file';

/** Reserved path element names on Windows, compared case-insensitively. */
const BAD_WINDOWS_NAMES = [
  'CON', 'PRN', 'AUX', 'NUL',
  'COM1', 'COM2', 'COM3', 'COM4', 'COM5', 'COM6', 'COM7', 'COM8', 'COM9',
  'LPT1', 'LPT2', 'LPT3', 'LPT4', 'LPT5', 'LPT6', 'LPT7', 'LPT8', 'LPT9',
];

// The first element of a module path is a lower-case LDH domain name.
function firstPathOK(c: string): boolean {
  return c === '-' || c === '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

// Module path elements: ASCII letters, digits and - . _ ~ (no '+': it would change meaning in a URL).
function modPathOK(c: string): boolean {
  return c === '-' || c === '.' || c === '_' || c === '~' ||
    (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

function importPathOK(c: string): boolean {
  return modPathOK(c) || c === '+';
}

const LETTER = /^\p{L}$/u;
const FILE_PUNCT = '!#$%&()+,-.=@[]^_{}~ ';

// File names: ASCII letters, digits, a safe punctuation set, space, and any Unicode letter.
function fileNameOK(c: string): boolean {
  const cp = c.codePointAt(0) ?? 0;
  if (cp < 0x80) {
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return true;
    return FILE_PUNCT.includes(c);
  }
  return LETTER.test(c);
}

/** Go's %q for a single rune, close enough for messages. */
function quoteRune(c: string): string {
  if (c === "'") return "'\\''";
  const cp = c.codePointAt(0) ?? 0;
  if (cp < 0x20 || cp === 0x7f) return `'\\x${cp.toString(16).padStart(2, '0')}'`;
  return `'${c}'`;
}

/** True when `s` contains no lone surrogates (JS strings can; Go's UTF-8 check would fail). */
export function isWellFormedUnicode(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** True when every UTF-16 unit of `s` is ASCII. */
export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * strings.EqualFold against an ASCII reserved name: none of the letters in those names has a
 * non-ASCII fold partner (unlike K and S), so an ASCII-only comparison is exact.
 */
function asciiEqualFold(a: string, reserved: string): boolean {
  return a.length === reserved.length && isAscii(a) && a.toUpperCase() === reserved;
}

/** Returns the reason `elem` is not a valid path element of the given kind, or undefined. */
function checkElem(elem: string, kind: PathKind): string | undefined {
  if (elem === '') return 'empty path element';
  if (/^\.+$/.test(elem)) return `invalid path element ${JSON.stringify(elem)}`;
  if (elem[0] === '.' && kind === 'module') return 'leading dot in path element';
  if (elem.endsWith('.')) return 'trailing dot in path element';
  for (const c of elem) {
    const ok = kind === 'module' ? modPathOK(c) : kind === 'import' ? importPathOK(c) : fileNameOK(c);
    if (!ok) return `invalid char ${quoteRune(c)}`;
  }
  // Windows reserves these names whatever the extension.
  const dot = elem.indexOf('.');
  const short = dot >= 0 ? elem.slice(0, dot) : elem;
  for (const bad of BAD_WINDOWS_NAMES) {
    if (asciiEqualFold(short, bad)) return `${JSON.stringify(short)} disallowed as path element component on Windows`;
  }
  if (kind === 'file') return undefined;
  // Reject elements that look like Windows 8.3 short names (FOO~1).
  const tilde = short.lastIndexOf('~');
  if (tilde >= 0 && tilde < short.length - 1 && /^[0-9]+$/.test(short.slice(tilde + 1))) {
    return 'trailing tilde and digits in path element';
  }
  return undefined;
}

function checkPathKind(path: string, kind: PathKind): string | undefined {
  if (!isWellFormedUnicode(path)) return 'invalid UTF-8';
  if (path === '') return 'empty string';
  if (path[0] === '-' && kind !== 'file') return 'leading dash';
  if (path.includes('//')) return 'double slash';
  if (path.endsWith('/')) return 'trailing slash';
  for (const elem of path.split('/')) {
    const err = checkElem(elem, kind);
    if (err !== undefined) return err;
  }
  return undefined;
}

/**
 * SplitPathVersion: the prefix and the major-version suffix ("/v2", ".v1" for gopkg.in)
 * of a module path; ok is false when the suffix breaks the rules (e.g. "/v1", "/v1.2", "/v02").
 */
export function splitPathVersion(path: string): { prefix: string; pathMajor: string; ok: boolean } {
  if (path.startsWith('gopkg.in/')) return splitGopkgIn(path);
  let i = path.length;
  let dot = false;
  while (i > 0 && ((path[i - 1]! >= '0' && path[i - 1]! <= '9') || path[i - 1] === '.')) {
    if (path[i - 1] === '.') dot = true;
    i--;
  }
  if (i <= 1 || i === path.length || path[i - 1] !== 'v' || path[i - 2] !== '/') {
    return { prefix: path, pathMajor: '', ok: true };
  }
  const prefix = path.slice(0, i - 2);
  const pathMajor = path.slice(i - 2);
  if (dot || pathMajor.length <= 2 || pathMajor[2] === '0' || pathMajor === '/v1') {
    return { prefix: path, pathMajor: '', ok: false };
  }
  return { prefix, pathMajor, ok: true };
}

function splitGopkgIn(path: string): { prefix: string; pathMajor: string; ok: boolean } {
  let i = path.length;
  if (path.endsWith('-unstable')) i -= '-unstable'.length;
  while (i > 0 && path[i - 1]! >= '0' && path[i - 1]! <= '9') i--;
  if (i <= 1 || path[i - 1] !== 'v' || path[i - 2] !== '.') return { prefix: path, pathMajor: '', ok: false };
  const prefix = path.slice(0, i - 2);
  const pathMajor = path.slice(i - 2);
  if (pathMajor.length <= 2 || (pathMajor[2] === '0' && pathMajor !== '.v0')) {
    return { prefix: path, pathMajor: '', ok: false };
  }
  return { prefix, pathMajor, ok: true };
}

/** CheckPathMajor: the reason version `v` does not fit the path's major suffix, or undefined. */
export function pathMajorMismatch(v: string, pathMajor: string): string | undefined {
  let pm = pathMajor;
  if (pm.startsWith('.v') && pm.endsWith('-unstable')) pm = pm.slice(0, -'-unstable'.length);
  // An old pseudo-version bug generated v0.0.0- versions for gopkg.in .v1 paths.
  if (v.startsWith('v0.0.0-') && pm === '.v1') return undefined;
  const m = major(v);
  if (pm === '') {
    if (m === 'v0' || m === 'v1' || build(v) === '+incompatible') return undefined;
    pm = 'v0 or v1';
  } else if (pm[0] === '/' || pm[0] === '.') {
    if (m === pm.slice(1)) return undefined;
    pm = pm.slice(1);
  }
  return `should be ${pm}, not ${m}`;
}

function invalidPath(kind: string, path: string, reason: string): FerryError {
  return new FerryError('MODULE_INVALID', `malformed ${kind} path ${JSON.stringify(path)}: ${reason}`, { module: path });
}

/** The reason `path` is not a valid module path (module.CheckPath), or undefined. */
export function modulePathError(path: string): string | undefined {
  const err = checkPathKind(path, 'module');
  if (err !== undefined) return err;
  let i = path.indexOf('/');
  if (i < 0) i = path.length;
  if (i === 0) return 'leading slash';
  const first = path.slice(0, i);
  if (!first.includes('.')) return 'missing dot in first path element';
  if (path[0] === '-') return 'leading dash in first path element';
  for (const c of first) if (!firstPathOK(c)) return `invalid char ${quoteRune(c)} in first path element`;
  if (!splitPathVersion(path).ok) return 'invalid version';
  return undefined;
}

/** module.CheckPath: throws MODULE_INVALID unless `path` is a valid module path. */
export function checkModulePath(path: string): void {
  const err = modulePathError(path);
  if (err !== undefined) throw invalidPath('module', path, err);
}

/** module.CheckImportPath: throws MODULE_INVALID unless `path` is a valid package import path. */
export function checkImportPath(path: string): void {
  const err = checkPathKind(path, 'import');
  if (err !== undefined) throw invalidPath('import', path, err);
}

/** The reason `path` is not a valid file path inside a module (module.CheckFilePath), or undefined. */
export function filePathError(path: string): string | undefined {
  return checkPathKind(path, 'file');
}

/** module.CheckFilePath: throws ZIP_INVALID unless `path` is a valid file path inside a module. */
export function checkFilePath(path: string): void {
  const err = filePathError(path);
  if (err !== undefined) throw new FerryError('ZIP_INVALID', `malformed file path ${JSON.stringify(path)}: ${err}`, { file: path });
}

/**
 * module.Check: throws unless `path` is a valid module path and `version` a valid semantic
 * version whose major version matches the path's suffix (yaml/v2 ↔ v2.x.y).
 */
export function checkVersion(path: string, version: string): void {
  checkModulePath(path);
  if (!isValid(version)) {
    throw new FerryError('VERSION_INVALID', `${path}@${version}: malformed semantic version ${JSON.stringify(version)}`, { module: path, version });
  }
  const { pathMajor } = splitPathVersion(path);
  const err = pathMajorMismatch(version, pathMajor);
  if (err !== undefined) {
    throw new FerryError('VERSION_INVALID', `${path}@${version}: invalid version: ${err}`, { module: path, version });
  }
}

function escapeString(s: string): string {
  let out = '';
  for (const c of s) {
    if (c === '!' || c.charCodeAt(0) >= 0x80) throw new FerryError('INTERNAL', 'internal error: inconsistency in escapePath');
    out += c >= 'A' && c <= 'Z' ? '!' + c.toLowerCase() : c;
  }
  return out;
}

function unescapeString(escaped: string): string | undefined {
  let out = '';
  let bang = false;
  for (const c of escaped) {
    if (c.charCodeAt(0) >= 0x80) return undefined;
    if (bang) {
      bang = false;
      if (c < 'a' || c > 'z') return undefined;
      out += c.toUpperCase();
      continue;
    }
    if (c === '!') {
      bang = true;
      continue;
    }
    if (c >= 'A' && c <= 'Z') return undefined;
    out += c;
  }
  return bang ? undefined : out;
}

/** module.EscapePath: the case-encoded form used in proxy URLs and cache paths (`!azure`). */
export function escapePath(path: string): string {
  checkModulePath(path);
  return escapeString(path);
}

/** module.UnescapePath: inverse of escapePath; throws MODULE_INVALID on bad escapes or paths. */
export function unescapePath(escaped: string): string {
  const path = unescapeString(escaped);
  if (path === undefined) throw new FerryError('MODULE_INVALID', `invalid escaped module path ${JSON.stringify(escaped)}`);
  const err = modulePathError(path);
  if (err !== undefined) {
    throw new FerryError('MODULE_INVALID', `invalid escaped module path ${JSON.stringify(escaped)}: malformed module path ${JSON.stringify(path)}: ${err}`, { module: path });
  }
  return path;
}

/**
 * module.EscapeVersion: versions may be non-semver (queries like "master") but must be valid
 * file names without '!'.
 */
export function escapeVersion(v: string): string {
  if (checkElem(v, 'file') !== undefined || v.includes('!')) {
    throw new FerryError('VERSION_INVALID', `version ${JSON.stringify(v)} invalid: disallowed version string`, { version: v });
  }
  return escapeString(v);
}

/** module.UnescapeVersion: inverse of escapeVersion. */
export function unescapeVersion(escaped: string): string {
  const v = unescapeString(escaped);
  if (v === undefined) throw new FerryError('VERSION_INVALID', `invalid escaped version ${JSON.stringify(escaped)}`);
  const err = checkElem(v, 'file');
  if (err !== undefined) throw new FerryError('VERSION_INVALID', `invalid escaped version ${JSON.stringify(v)}: ${err}`, { version: v });
  return v;
}
