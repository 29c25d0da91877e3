/**
 * GONOSUMDB/GOPRIVATE pattern matching, ported from Go's path.Match and
 * golang.org/x/mod/module.MatchPrefixPatterns. Strings are handled as code points, which is
 * equivalent to Go's byte/rune handling for well-formed UTF-8.
 */

/** Thrown for a malformed pattern (path.ErrBadPattern). */
export class BadPatternError extends Error {
  constructor(pattern: string) {
    super(`syntax error in pattern ${JSON.stringify(pattern)}`);
    this.name = 'BadPatternError';
  }
}

type Chars = readonly string[];

function scanChunk(pattern: Chars): { star: boolean; chunk: Chars; rest: Chars } {
  let p = pattern;
  let star = false;
  while (p.length > 0 && p[0] === '*') {
    p = p.slice(1);
    star = true;
  }
  let inrange = false;
  let i = 0;
  scan: for (; i < p.length; i++) {
    switch (p[i]) {
      case '\\':
        if (i + 1 < p.length) i++;
        break;
      case '[':
        inrange = true;
        break;
      case ']':
        inrange = false;
        break;
      case '*':
        if (!inrange) break scan;
        break;
    }
  }
  return { star, chunk: p.slice(0, i), rest: p.slice(i) };
}

function getEsc(chunk: Chars, bad: () => BadPatternError): { r: string; rest: Chars } {
  if (chunk.length === 0 || chunk[0] === '-' || chunk[0] === ']') throw bad();
  let c = chunk;
  if (c[0] === '\\') {
    c = c.slice(1);
    if (c.length === 0) throw bad();
  }
  const r = c[0]!;
  c = c.slice(1);
  if (c.length === 0) throw bad();
  return { r, rest: c };
}

function cp(s: string): number {
  return s.codePointAt(0) ?? -1;
}

/** matchChunk: the rest of s after chunk matches its beginning, or undefined; throws on a bad pattern. */
function matchChunk(chunkIn: Chars, sIn: Chars, bad: () => BadPatternError): Chars | undefined {
  let chunk = chunkIn;
  let s = sIn;
  let failed = false;
  while (chunk.length > 0) {
    if (!failed && s.length === 0) failed = true;
    const c = chunk[0];
    if (c === '[') {
      let r = -1;
      if (!failed) {
        r = cp(s[0]!);
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
      let negated = false;
      if (chunk.length > 0 && chunk[0] === '^') {
        negated = true;
        chunk = chunk.slice(1);
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (chunk.length > 0 && chunk[0] === ']' && nrange > 0) {
          chunk = chunk.slice(1);
          break;
        }
        const lo = getEsc(chunk, bad);
        chunk = lo.rest;
        let hi = lo.r;
        if (chunk[0] === '-') {
          const h = getEsc(chunk.slice(1), bad);
          hi = h.r;
          chunk = h.rest;
        }
        if (cp(lo.r) <= r && r <= cp(hi)) match = true;
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (c === '?') {
      if (!failed) {
        if (s[0] === '/') failed = true;
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
    } else {
      if (c === '\\') {
        chunk = chunk.slice(1);
        if (chunk.length === 0) throw bad();
      }
      if (!failed) {
        if (chunk[0] !== s[0]) failed = true;
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
    }
  }
  return failed ? undefined : s;
}

/** path.Match: whether `name` matches the shell pattern (`*`, `?`, `[...]`, `\\`); throws BadPatternError. */
export function pathMatch(pattern: string, name: string): boolean {
  const bad = (): BadPatternError => new BadPatternError(pattern);
  let pat: Chars = Array.from(pattern);
  let nm: Chars = Array.from(name);
  outer: while (pat.length > 0) {
    const { star, chunk, rest } = scanChunk(pat);
    pat = rest;
    if (star && chunk.length === 0) return !nm.includes('/');
    const t = matchChunk(chunk, nm, bad);
    if (t !== undefined && (t.length === 0 || pat.length > 0)) {
      nm = t;
      continue;
    }
    if (star) {
      for (let i = 0; i < nm.length && nm[i] !== '/'; i++) {
        const t2 = matchChunk(chunk, nm.slice(i + 1), bad);
        if (t2 !== undefined) {
          if (pat.length === 0 && t2.length > 0) continue;
          nm = t2;
          continue outer;
        }
      }
    }
    while (pat.length > 0) {
      const next = scanChunk(pat);
      pat = next.rest;
      matchChunk(next.chunk, [], bad);
    }
    return false;
  }
  return nm.length === 0;
}

/**
 * module.MatchPrefixPatterns: whether any of the comma-separated glob patterns matches a prefix
 * of `target` of as many path elements as the pattern has (GONOSUMDB, GOPRIVATE semantics).
 * Malformed patterns match nothing, as in Go.
 */
export function matchPrefixPatterns(globs: string, target: string): boolean {
  for (let glob of globs.split(',')) {
    glob = glob.endsWith('/') ? glob.slice(0, -1) : glob;
    if (glob === '') continue;
    let n = glob.split('/').length - 1;
    let prefix = target;
    for (let i = 0; i < target.length; i++) {
      if (target[i] === '/') {
        if (n === 0) {
          prefix = target.slice(0, i);
          break;
        }
        n--;
      }
    }
    if (n > 0) continue;
    try {
      if (pathMatch(glob, prefix)) return true;
    } catch (err) {
      if (!(err instanceof BadPatternError)) throw err;
    }
  }
  return false;
}
