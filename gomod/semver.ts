/**
 * Go's semantic versions, ported from golang.org/x/mod/semver: a leading "v" is required and
 * "v1" / "v1.2" are shorthands for v1.0.0 / v1.2.0. Also the go command's pseudo-version and
 * "latest" rules, and a small range syntax for configuration (">=v1.2.0 <2", "1.2.x").
 */
import { FerryError } from '../errors/index.js';

interface Parsed {
  major: string;
  minor: string;
  patch: string;
  short: string;
  prerelease: string;
  build: string;
}

function parseInt_(v: string): [string, string] | undefined {
  if (v === '' || v[0]! < '0' || v[0]! > '9') return undefined;
  let i = 1;
  while (i < v.length && v[i]! >= '0' && v[i]! <= '9') i++;
  if (v[0] === '0' && i !== 1) return undefined;
  return [v.slice(0, i), v.slice(i)];
}

function isIdentChar(c: string): boolean {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c === '-';
}

function isBadNum(v: string): boolean {
  return /^[0-9]+$/.test(v) && v.length > 1 && v[0] === '0';
}

function isNum(v: string): boolean {
  return /^[0-9]*$/.test(v);
}

function parsePrerelease(v: string): [string, string] | undefined {
  if (v === '' || v[0] !== '-') return undefined;
  let i = 1;
  let start = 1;
  while (i < v.length && v[i] !== '+') {
    const c = v[i]!;
    if (!isIdentChar(c) && c !== '.') return undefined;
    if (c === '.') {
      if (start === i || isBadNum(v.slice(start, i))) return undefined;
      start = i + 1;
    }
    i++;
  }
  if (start === i || isBadNum(v.slice(start, i))) return undefined;
  return [v.slice(0, i), v.slice(i)];
}

function parseBuild(v: string): [string, string] | undefined {
  if (v === '' || v[0] !== '+') return undefined;
  let i = 1;
  let start = 1;
  while (i < v.length) {
    const c = v[i]!;
    if (!isIdentChar(c) && c !== '.') return undefined;
    if (c === '.') {
      if (start === i) return undefined;
      start = i + 1;
    }
    i++;
  }
  if (start === i) return undefined;
  return [v.slice(0, i), v.slice(i)];
}

function parse(v: string): Parsed | undefined {
  if (v === '' || v[0] !== 'v') return undefined;
  const p: Parsed = { major: '', minor: '', patch: '', short: '', prerelease: '', build: '' };
  let r = parseInt_(v.slice(1));
  if (!r) return undefined;
  [p.major, v] = r;
  if (v === '') {
    p.minor = '0';
    p.patch = '0';
    p.short = '.0.0';
    return p;
  }
  if (v[0] !== '.') return undefined;
  r = parseInt_(v.slice(1));
  if (!r) return undefined;
  [p.minor, v] = r;
  if (v === '') {
    p.patch = '0';
    p.short = '.0';
    return p;
  }
  if (v[0] !== '.') return undefined;
  r = parseInt_(v.slice(1));
  if (!r) return undefined;
  [p.patch, v] = r;
  if (v.length > 0 && v[0] === '-') {
    r = parsePrerelease(v);
    if (!r) return undefined;
    [p.prerelease, v] = r;
  }
  if (v.length > 0 && v[0] === '+') {
    r = parseBuild(v);
    if (!r) return undefined;
    [p.build, v] = r;
  }
  return v === '' ? p : undefined;
}

/** semver.IsValid: true when `v` is a valid Go semantic version ("v1.2.3", "v1.2", "v1"). */
export function isValid(v: string): boolean {
  return parse(v) !== undefined;
}

/** semver.Canonical: "v1.2" → "v1.2.0", build metadata dropped; "" when invalid. */
export function canonical(v: string): string {
  const p = parse(v);
  if (!p) return '';
  if (p.build !== '') return v.slice(0, v.length - p.build.length);
  if (p.short !== '') return v + p.short;
  return v;
}

/** module.CanonicalVersion: like canonical but keeps the special "+incompatible" suffix. */
export function canonicalModuleVersion(v: string): string {
  const cv = canonical(v);
  return build(v) === '+incompatible' ? cv + '+incompatible' : cv;
}

/** semver.Major: "v2.1.0" → "v2"; "" when invalid. */
export function major(v: string): string {
  const p = parse(v);
  return p ? v.slice(0, 1 + p.major.length) : '';
}

/** semver.MajorMinor: "v2.1.0" → "v2.1"; "" when invalid. */
export function majorMinor(v: string): string {
  const p = parse(v);
  if (!p) return '';
  const i = 1 + p.major.length;
  const j = i + 1 + p.minor.length;
  if (j <= v.length && v[i] === '.' && v.slice(i + 1, j) === p.minor) return v.slice(0, j);
  return v.slice(0, i) + '.' + p.minor;
}

/** semver.Prerelease: "v2.1.0-pre+meta" → "-pre"; "" when none or invalid. */
export function prerelease(v: string): string {
  return parse(v)?.prerelease ?? '';
}

/** semver.Build: "v2.1.0+meta" → "+meta"; "" when none or invalid. */
export function build(v: string): string {
  return parse(v)?.build ?? '';
}

function compareInt(x: string, y: string): number {
  if (x === y) return 0;
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : 1;
}

function comparePrerelease(x: string, y: string): number {
  if (x === y) return 0;
  if (x === '') return 1;
  if (y === '') return -1;
  while (x !== '' && y !== '') {
    x = x.slice(1);
    y = y.slice(1);
    const ix0 = x.indexOf('.');
    const iy0 = y.indexOf('.');
    const dx = ix0 < 0 ? x : x.slice(0, ix0);
    const dy = iy0 < 0 ? y : y.slice(0, iy0);
    x = ix0 < 0 ? '' : x.slice(ix0);
    y = iy0 < 0 ? '' : y.slice(iy0);
    if (dx !== dy) {
      const nx = isNum(dx);
      const ny = isNum(dy);
      if (nx !== ny) return nx ? -1 : 1;
      if (nx) {
        if (dx.length < dy.length) return -1;
        if (dx.length > dy.length) return 1;
      }
      return dx < dy ? -1 : 1;
    }
  }
  return x === '' ? -1 : 1;
}

/**
 * semver.Compare: -1, 0 or +1 by semantic precedence; build metadata (incl. +incompatible) is
 * ignored, and an invalid version sorts below every valid one.
 */
export function compare(v: string, w: string): number {
  const pv = parse(v);
  const pw = parse(w);
  if (!pv && !pw) return 0;
  if (!pv) return -1;
  if (!pw) return 1;
  return compareInt(pv.major, pw.major) || compareInt(pv.minor, pw.minor) || compareInt(pv.patch, pw.patch) ||
    comparePrerelease(pv.prerelease, pw.prerelease);
}

/** semver.Sort (ByVersion): ascending precedence, ties broken by plain string order; returns a new array. */
export function sortVersions(list: readonly string[]): string[] {
  return [...list].sort((a, b) => compare(a, b) || (a < b ? -1 : a > b ? 1 : 0));
}

// cmd/go/internal/modfetch (module.IsPseudoVersion): vX.0.0-yyyymmddhhmmss-abcdef123456 and
// the vX.Y.(Z+1)-0.yyyymmddhhmmss-… / vX.Y.Z-pre.0.yyyymmddhhmmss-… forms.
const PSEUDO_VERSION_RE = /^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

/** module.IsPseudoVersion: true for versions the go command generates for untagged commits. */
export function isPseudoVersion(v: string): boolean {
  return (v.match(/-/g)?.length ?? 0) >= 2 && isValid(v) && PSEUDO_VERSION_RE.test(v);
}

/** The UTC time encoded in a pseudo-version, as RFC 3339, or undefined for other versions. */
export function pseudoVersionTime(v: string): string | undefined {
  if (!isPseudoVersion(v)) return undefined;
  const m = /(\d{14})-[A-Za-z0-9]+(\+.*)?$/.exec(v);
  const t = m?.[1];
  if (!t) return undefined;
  return `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(8, 10)}:${t.slice(10, 12)}:${t.slice(12, 14)}Z`;
}

/** Options for latestVersion. */
export interface LatestOptions {
  /** Versions for which this returns true are skipped (retracted in the latest go.mod). */
  readonly isRetracted?: (version: string) => boolean;
}

/**
 * The go command's "latest" rule: the highest release version; if there is none, the highest
 * pre-release. Pseudo-versions, invalid versions and retracted versions are never chosen.
 * Returns undefined when nothing qualifies.
 */
export function latestVersion(list: readonly string[], opts: LatestOptions = {}): string | undefined {
  let release: string | undefined;
  let pre: string | undefined;
  for (const v of list) {
    if (!isValid(v) || isPseudoVersion(v)) continue;
    if (opts.isRetracted?.(v)) continue;
    if (prerelease(v) === '') {
      if (release === undefined || compare(v, release) > 0) release = v;
    } else if (pre === undefined || compare(v, pre) > 0) {
      pre = v;
    }
  }
  return release ?? pre;
}

type Comparator = { op: '<' | '<=' | '>' | '>=' | '='; v: string };

function rangeError(range: string, why: string): FerryError {
  return new FerryError('VERSION_INVALID', `invalid version range ${JSON.stringify(range)}: ${why}`);
}

/** Parses "1", "v1.2", "1.2.x", "1.*" into numeric parts; undefined parts are wildcards. */
function parsePartial(range: string, s: string): { parts: string[]; rest: string; wild: boolean } {
  const body = s.startsWith('v') ? s.slice(1) : s;
  const m = /^([0-9]+|[xX*])(?:\.([0-9]+|[xX*]))?(?:\.([0-9]+|[xX*]))?((?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/.exec(body);
  if (!m) throw rangeError(range, `bad version ${JSON.stringify(s)}`);
  const parts: string[] = [];
  let wild = false;
  for (const p of [m[1], m[2], m[3]]) {
    if (p === undefined || /^[xX*]$/.test(p)) {
      wild = true;
      break;
    }
    parts.push(p);
  }
  const rest = m[4] ?? '';
  if (wild && rest !== '') throw rangeError(range, `wildcard with suffix in ${JSON.stringify(s)}`);
  if (parts.length === 3) {
    const v = `v${parts.join('.')}${rest}`;
    if (!isValid(v)) throw rangeError(range, `bad version ${JSON.stringify(s)}`);
  } else if (rest !== '') {
    throw rangeError(range, `pre-release or build on a partial version ${JSON.stringify(s)}`);
  }
  return { parts, rest, wild: wild || parts.length < 3 };
}

function full(parts: string[], rest = ''): string {
  const p = [...parts];
  while (p.length < 3) p.push('0');
  return canonical(`v${p.join('.')}${rest}`);
}

function bump(parts: string[]): string {
  // The version just above every version with these leading parts, excluding its pre-releases.
  const p = [...parts];
  const last = p.length - 1;
  p[last] = String(BigInt(p[last]!) + 1n);
  return full(p) + '-0';
}

function parseComparators(range: string, text: string): Comparator[] {
  const out: Comparator[] = [];
  const tokens = text.trim().split(/\s+/).filter((t) => t !== '');
  // Allow ">= 1.0" with a space between operator and version.
  const merged: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (/^(<=|>=|<|>|=|\^|~)$/.test(t)) {
      const next = tokens[++i];
      if (next === undefined) throw rangeError(range, `operator ${t} without a version`);
      merged.push(t + next);
    } else {
      merged.push(t);
    }
  }
  for (const tok of merged) {
    const m = /^(<=|>=|<|>|=|\^|~)?(.+)$/.exec(tok);
    if (!m) throw rangeError(range, `bad comparator ${JSON.stringify(tok)}`);
    const op = m[1] ?? '';
    const { parts, rest, wild } = parsePartial(range, m[2]!);
    if (parts.length === 0) {
      if (op === '' || op === '=' || op === '>=' || op === '<=') continue; // "*" matches everything
      throw rangeError(range, `bad comparator ${JSON.stringify(tok)}`);
    }
    const lo = full(parts, rest);
    switch (op) {
      case '':
      case '=':
        if (wild) out.push({ op: '>=', v: lo }, { op: '<', v: bump(parts) });
        else out.push({ op: '=', v: lo });
        break;
      case '>=':
        out.push({ op: '>=', v: lo });
        break;
      case '>':
        // ">1.2" means above every 1.2.x.
        out.push(wild ? { op: '>=', v: bump(parts) } : { op: '>', v: lo });
        break;
      case '<':
        // "<2" excludes v2.0.0's pre-releases too, as people mean.
        out.push({ op: '<', v: rest === '' ? lo + '-0' : lo });
        break;
      case '<=':
        out.push(wild ? { op: '<', v: bump(parts) } : { op: '<=', v: lo });
        break;
      case '^': {
        const nz = parts.findIndex((p) => p !== '0');
        const upTo = nz < 0 ? parts.length : Math.min(nz + 1, parts.length);
        out.push({ op: '>=', v: lo }, { op: '<', v: bump(parts.slice(0, Math.max(upTo, 1))) });
        break;
      }
      case '~':
        out.push({ op: '>=', v: lo }, { op: '<', v: bump(parts.slice(0, Math.min(2, parts.length))) });
        break;
    }
  }
  return out;
}

/**
 * True when `version` satisfies `range`: space-separated comparators (>=, >, <=, <, =, ^, ~)
 * that must all hold, alternatives joined by "||", versions with or without the leading "v",
 * partial versions and x-ranges ("1.2.x", "2"). Comparison is Go precedence, so build
 * metadata such as "+incompatible" is ignored. Throws VERSION_INVALID on a malformed range.
 */
export function matchesRange(version: string, range: string): boolean {
  const alternatives = range.split('||');
  const sets = alternatives.map((alt) => parseComparators(range, alt));
  if (!isValid(version)) return false;
  return sets.some((set) =>
    set.every(({ op, v }) => {
      const c = compare(version, v);
      switch (op) {
        case '<': return c < 0;
        case '<=': return c <= 0;
        case '>': return c > 0;
        case '>=': return c >= 0;
        case '=': return c === 0;
      }
      return false;
    }),
  );
}
