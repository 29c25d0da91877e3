/** Tag selection: include/exclude globs or /regexes/, a semver range, and the newest N. */
// The single functions, not the whole package: loading every semver module costs the CLI's start-up.
import coerce from 'semver/functions/coerce.js';
import compare from 'semver/functions/compare.js';
import satisfies from 'semver/functions/satisfies.js';
import type { TagFilterConfig } from './schema.js';

/** Compiles a glob (`*`, `?`) or a `/regular expression/` into a predicate over whole tags. */
export function compilePattern(p: string): (s: string) => boolean {
  if (p.length > 1 && p.startsWith('/') && p.endsWith('/')) {
    const re = new RegExp(p.slice(1, -1));
    return (s) => re.test(s);
  }
  const re = new RegExp(
    `^${p
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('')}$`,
  );
  return (s) => re.test(s);
}

/**
 * The version a tag stands for, for `semver` and `latest`: its leading numeric part
 * (`1.22.5-alpine3.20` → 1.22.5, `1.22-bookworm` → 1.22.0, `v3.1` → 3.1.0).
 */
export function tagVersion(tag: string): string | undefined {
  if (!/^v?\d/.test(tag)) return undefined;
  return coerce(tag)?.version;
}

/**
 * Applies the filters in order: include (any pattern; all tags when absent), exclude, semver,
 * then keeps the newest `latest` (by tag version, then by name). Returns tags sorted.
 */
export function selectTags(tags: readonly string[], f: TagFilterConfig): string[] {
  const inc = (f.include ?? []).map(compilePattern);
  const exc = (f.exclude ?? []).map(compilePattern);
  let out = tags.filter((t) => (inc.length === 0 || inc.some((m) => m(t))) && !exc.some((m) => m(t)));
  if (f.semver) {
    const range = f.semver;
    out = out.filter((t) => {
      const v = tagVersion(t);
      return v !== undefined && satisfies(v, range, { loose: true });
    });
  }
  const byNewest = (a: string, b: string): number => {
    const va = tagVersion(a);
    const vb = tagVersion(b);
    if (va && vb) {
      const c = compare(vb, va);
      if (c !== 0) return c;
    } else if (va) return -1;
    else if (vb) return 1;
    return a < b ? 1 : a > b ? -1 : 0;
  };
  if (f.latest !== undefined) out = [...out].sort(byNewest).slice(0, f.latest);
  return [...out].sort();
}
