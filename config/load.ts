/** Reads, validates and resolves a configuration file, with errors that name file, line, column and key. */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isAlias, isCollection, isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Alias, type Document, type Node as YamlNode } from 'yaml';
import type * as z from 'zod';
import { FerryError } from '../errors/index.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { AttachmentFilter } from '../oci/referrers.js';
import { ConfigSchema, DEFAULT_MODULE_CONCURRENCY, type ExportConfig, type GcConfig, type GoModulesConfig, type LifecycleState, type RawConfig, type ReferrersConfig, type RegistryConfig, type TagFilterConfig } from './schema.js';
import { resolveSecret } from './secrets.js';

/**
 * Most values aliases may add to a configuration: far more than any real file repeats, far
 * fewer than it takes to exhaust memory (a "billion laughs" file adds billions).
 */
export const MAX_ALIASED_VALUES = 100_000;

/** An image source after resolution: parsed reference and defaults filled in. */
export interface ImageConfig {
  /** Unique name (`--only NAME`); defaults to the source as written. */
  readonly name: string;
  readonly source: string;
  readonly ref: Reference;
  readonly tags: TagFilterConfig;
  /** Platforms to keep from an index, or undefined for all. */
  readonly platforms: readonly string[] | undefined;
  /** Repository path inside the intranet. */
  readonly target: string;
  readonly schedule: string | undefined;
  /** Foreign (non-distributable) layers: left out (`skip`) or fetched from their `urls`. */
  readonly foreignLayers: 'skip' | 'fetch';
  /** Attachments followed (null: none; `artifactTypes: null`: all). */
  readonly referrers: AttachmentFilter | null;
  /** The signature policy: absolute paths of the cosign public keys (PEM) a tag's signature must verify with. */
  readonly verify: { readonly keys: readonly string[] } | undefined;
  /** `archived`: never contacted upstream; `deprecated`: synced and announced inside. */
  readonly lifecycle: LifecycleState;
  readonly note: string | undefined;
  /** Tags gone upstream or no longer selected leave the store, and travel as removals. */
  readonly prune: boolean;
}

/** A Go module root after resolution. */
export type GoModuleRoot = (
  | { readonly kind: 'path'; readonly name: string; readonly path: string; readonly versions: 'latest' | string | readonly string[]; readonly deps: boolean; readonly schedule: string | undefined }
  | { readonly kind: 'gomod'; readonly name: string; readonly gomod: string; readonly schedule: string | undefined }
) & { readonly lifecycle: LifecycleState; readonly note: string | undefined };

/** The resolved configuration Ferry runs on. */
export interface Config {
  /** Absolute path of the file read, or `<inline>`. */
  readonly file: string;
  readonly version: 1;
  /** Absolute store directory. */
  readonly store: string;
  readonly concurrency: number;
  readonly schedule: string | undefined;
  readonly logLevel: string;
  readonly registries: readonly RegistryConfig[];
  readonly images: readonly ImageConfig[];
  readonly goModules: (Omit<GoModulesConfig, 'modules'> & { readonly roots: readonly GoModuleRoot[] }) | undefined;
  readonly export: ExportConfig | undefined;
  readonly gc: GcConfig | undefined;
}

/** Loads and validates a configuration file. Throws CONFIG_NOT_FOUND, CONFIG_INVALID or SECRET_UNRESOLVED. */
export function loadConfig(file: string): Config {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FerryError('CONFIG_NOT_FOUND', `${abs}: cannot read configuration${code === 'ENOENT' ? ' (no such file; pass -c FILE)' : `: ${(err as Error).message}`}`, {
      file: abs,
      cause: err,
    });
  }
  return parseConfig(text, abs);
}

/**
 * Parses configuration text; `file` names it in errors and anchors relative paths. Every
 * `env:`/`file:` secret reference must resolve (SECRET_UNRESOLVED names file:line:col, the key
 * and the variable or file), so a file that passes here does not fail later for want of a secret.
 */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    const where = `${file}:${pos.line}:${pos.col}`;
    throw new FerryError('CONFIG_INVALID', `${where}: YAML syntax error: ${e.message.split('\n')[0]}`, { file });
  }
  checkAliases(doc, lineCounter, file);
  let data: unknown;
  try {
    // checkAliases bounded what aliases add, by values rather than yaml's count of alias uses.
    data = doc.toJS({ maxAliasCount: -1 });
  } catch (err) {
    throw new FerryError('CONFIG_INVALID', `${file}: the YAML cannot be read as data: ${(err as Error).message}`, { file, cause: err });
  }
  if (data === null || data === undefined) {
    throw new FerryError('CONFIG_INVALID', `${file}: the configuration is empty (expected at least "version: 1")`, { file });
  }
  const result = ConfigSchema.safeParse(data);
  if (!result.success) {
    const lines = result.error.issues.slice(0, 10).map((issue) => describeIssue(issue, doc, lineCounter, file));
    const more = result.error.issues.length > 10 ? `\n(and ${result.error.issues.length - 10} more)` : '';
    throw new FerryError('CONFIG_INVALID', `${lines.join('\n')}${more}`, { file });
  }
  const config = resolveConfig(result.data, file, doc, lineCounter);
  checkSecrets(result.data, file, doc, lineCounter);
  return config;
}

/**
 * Checks every alias before the document becomes data: it names an anchor set before it, it
 * does not refer to a node that contains it, and all aliases together add at most
 * MAX_ALIASED_VALUES values. Errors point at the alias.
 */
function checkAliases(doc: Document, lc: LineCounter, file: string): void {
  const anchors = new Map<string, YamlNode>();
  const targets = new Map<Alias, YamlNode>();
  const sizes = new Map<YamlNode, number>();
  const open = new Set<unknown>();
  let added = 0;
  const fail = (a: Alias, msg: string): FerryError =>
    new FerryError('CONFIG_INVALID', `${file}${offsetPosition(lc, a.range?.[0])}: alias *${a.source} ${msg}`, { file });
  // Values a node stands for once every alias in it is expanded (capped: only "too many" matters).
  const size = (node: unknown): number => {
    if (isAlias(node)) {
      const t = targets.get(node);
      return t === undefined ? 1 : size(t);
    }
    if (isPair(node)) return Math.min(size(node.key) + size(node.value), MAX_ALIASED_VALUES + 1);
    if (!isCollection(node)) return 1;
    let n = sizes.get(node);
    if (n === undefined) {
      n = 1;
      for (const it of node.items) n = Math.min(n + size(it), MAX_ALIASED_VALUES + 1);
      sizes.set(node, n);
    }
    return n;
  };
  // Document order, as the YAML spec resolves aliases: the last anchor of that name before the alias.
  const walk = (node: unknown): void => {
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target === undefined) throw fail(node, 'names no anchor set before it');
      if (open.has(target)) throw fail(node, 'refers to a node that contains it');
      targets.set(node, target);
      added += size(target);
      if (added > MAX_ALIASED_VALUES) {
        throw fail(node, `makes the aliases of this file add more than ${MAX_ALIASED_VALUES} values (an alias bomb?); write the repeated parts out or repeat less`);
      }
      return;
    }
    if (isPair(node)) {
      walk(node.key);
      walk(node.value);
      return;
    }
    if (!isNode(node)) return;
    if (node.anchor) anchors.set(node.anchor, node);
    if (isCollection(node)) {
      open.add(node);
      for (const it of node.items) walk(it);
      open.delete(node);
    }
  };
  walk(doc.contents);
}

/** Checks that every `env:`/`file:` reference resolves (the values are not kept). */
function checkSecrets(raw: RawConfig, file: string, doc: Document, lc: LineCounter): void {
  const refs: Array<{ path: PropertyKey[]; ref: string | undefined }> = [];
  raw.registries.forEach((r, i) => {
    refs.push({ path: ['registries', i, 'username'], ref: r.username }, { path: ['registries', i, 'password'], ref: r.password });
  });
  if (raw.goModules) {
    refs.push({ path: ['goModules', 'username'], ref: raw.goModules.username }, { path: ['goModules', 'password'], ref: raw.goModules.password });
  }
  if (raw.export) refs.push({ path: ['export', 'signingKeyPassphrase'], ref: raw.export.signingKeyPassphrase });
  for (const { path, ref } of refs) {
    if (ref === undefined || !/^(env|file):/.test(ref)) continue;
    try {
      resolveSecret(ref, `${file}${position(doc, lc, path)}: ${keyPath(path)}`, dirname(file));
    } catch (err) {
      throw new FerryError('SECRET_UNRESOLVED', (err as Error).message, { file, cause: err });
    }
  }
}

function keyPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s === '' ? String(p) : `.${String(p)}`;
  }
  return s || '(top level)';
}

function position(doc: Document, lc: LineCounter, path: readonly PropertyKey[], keyOnly?: string): string {
  // Walk as deep as the document goes; report the deepest node found.
  let node: unknown = doc.contents;
  let found: YamlNode | undefined = doc.contents ?? undefined;
  for (const p of path) {
    if (!node || typeof node !== 'object' || !('get' in node)) break;
    const child = (node as { get(k: unknown, keep: true): unknown }).get(p, true);
    if (child === undefined) break;
    node = child;
    found = child as YamlNode;
  }
  if (keyOnly !== undefined && isMap(node)) {
    const pair = node.items.find((it) => isScalar(it.key) && it.key.value === keyOnly);
    if (pair && isScalar(pair.key)) found = pair.key;
  }
  return offsetPosition(lc, found?.range?.[0]);
}

function offsetPosition(lc: LineCounter, offset: number | undefined): string {
  if (offset === undefined) return '';
  const { line, col } = lc.linePos(offset);
  return `:${line}:${col}`;
}

const KNOWN_KEYS: readonly string[] = [
  'version', 'store', 'concurrency', 'schedule', 'log', 'level', 'registries', 'host', 'tls', 'caFile', 'username', 'password',
  'images', 'name', 'source', 'tags', 'include', 'exclude', 'semver', 'latest', 'platforms', 'target', 'goModules', 'proxy',
  'sumdb', 'noSumCheck', 'modules', 'path', 'versions', 'deps', 'gomod', 'export', 'signingKey', 'signingKeyPassphrase', 'out',
  'splitSize', 'keep', 'confirmations', 'mirrorOf', 'idleTimeout', 'maxTagPages', 'maxTags', 'maxTagListBytes',
  'foreignLayers', 'referrers', 'artifactTypes', 'verify', 'keys', 'lifecycle', 'note', 'prune', 'gc', 'minAge',
];

function suggest(key: string): string {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of KNOWN_KEYS) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestScore) {
      bestScore = d;
      best = k;
    }
  }
  return best !== undefined && bestScore <= 2 ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const dp: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, file: string): string {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((k) => `${file}${position(doc, lc, path, k)}: ${keyPath([...path, k])}: unknown key "${k}"${suggest(k)}`)
      .join('\n');
  }
  let what = issue.message;
  if (issue.code === 'invalid_type') {
    const got = valueAt(doc, path);
    what = got === undefined ? `required key missing: expected ${issue.expected}` : `expected ${issue.expected}, got ${describeValue(got)}`;
  } else if (issue.code === 'invalid_union') {
    what = `does not match any accepted form: ${issue.errors.map((errs) => errs.map((e) => e.message).join('; ')).join(' | ')}`;
  }
  return `${file}${position(doc, lc, path)}: ${keyPath(path)}: ${what}`;
}

function valueAt(doc: Document, path: readonly PropertyKey[]): unknown {
  return doc.getIn(path as unknown[], false);
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function resolveConfig(raw: RawConfig, file: string, doc: Document, lc: LineCounter): Config {
  const base = dirname(file);
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const fail = (path: PropertyKey[], msg: string): FerryError =>
    new FerryError('CONFIG_INVALID', `${file}${position(doc, lc, path)}: ${keyPath(path)}: ${msg}`, { file });

  const registries = raw.registries.map((r) => ({ ...r, ...(r.caFile ? { caFile: abs(r.caFile) } : {}) }));
  const seenHosts = new Set<string>();
  registries.forEach((r, i) => {
    if (seenHosts.has(r.host)) throw fail(['registries', i, 'host'], `registry "${r.host}" is listed twice`);
    seenHosts.add(r.host);
  });

  const names = new Set<string>();
  const images = raw.images.map((img, i): ImageConfig => {
    let ref: Reference;
    try {
      ref = parseReference(img.source);
    } catch (err) {
      throw fail(['images', i, 'source'], (err as Error).message);
    }
    if (ref.tag !== undefined || ref.digest !== undefined) {
      throw fail(['images', i, 'source'], `expected registry/repository without a tag or digest (use tags.include to choose tags), got "${img.source}"`);
    }
    const name = img.name ?? img.source;
    if (names.has(name)) throw fail(['images', i, img.name ? 'name' : 'source'], `image name "${name}" is used twice; names must be unique`);
    names.add(name);
    return {
      name,
      source: img.source,
      ref,
      tags: img.tags ?? {},
      platforms: img.platforms,
      target: img.target ?? ref.repository,
      schedule: img.schedule,
      foreignLayers: img.foreignLayers,
      referrers: attachmentFilter(img.referrers ?? raw.referrers),
      verify: img.verify ? { keys: img.verify.keys.map(abs) } : undefined,
      lifecycle: img.lifecycle,
      note: img.note,
      prune: img.prune,
    };
  });

  let goModules: Config['goModules'];
  if (raw.goModules) {
    const { modules, ...rest } = raw.goModules;
    const roots = modules.map((m, i): GoModuleRoot => {
      if ('gomod' in m) {
        const p = abs(m.gomod);
        const name = `gomod:${m.gomod}`;
        if (names.has(name)) throw fail(['goModules', 'modules', i, 'gomod'], `"${m.gomod}" is listed twice`);
        names.add(name);
        return { kind: 'gomod', name, gomod: p, schedule: m.schedule, lifecycle: m.lifecycle, note: m.note };
      }
      if (names.has(m.path)) throw fail(['goModules', 'modules', i, 'path'], `module "${m.path}" is listed twice`);
      names.add(m.path);
      return { kind: 'path', name: m.path, path: m.path, versions: m.versions, deps: m.deps, schedule: m.schedule, lifecycle: m.lifecycle, note: m.note };
    });
    const proxy = rest.proxy.startsWith('file://') ? rest.proxy : rest.proxy.replace(/\/+$/, '');
    goModules = { ...rest, proxy, ...(rest.caFile ? { caFile: abs(rest.caFile) } : {}), roots };
  }

  const exp = raw.export
    ? {
        ...raw.export,
        ...(raw.export.signingKey ? { signingKey: abs(raw.export.signingKey) } : {}),
        ...(raw.export.out ? { out: abs(raw.export.out) } : {}),
        ...(raw.export.confirmations ? { confirmations: abs(raw.export.confirmations) } : {}),
      }
    : undefined;

  return {
    file,
    version: 1,
    store: abs(raw.store),
    concurrency: raw.concurrency,
    schedule: raw.schedule,
    logLevel: raw.log?.level ?? 'info',
    registries,
    images,
    goModules,
    export: exp,
    gc: raw.gc,
  };
}

/** A source that is not `active`, as bundles record it (`lifecycle` in ferry-bundle.json). */
export interface SourceLifecycle {
  readonly kind: 'image' | 'module';
  readonly name: string;
  /** The intranet repository of an image, the module path of a root, null for a go.mod root. */
  readonly target: string | null;
  readonly state: 'deprecated' | 'archived';
  readonly note?: string;
}

/** Every deprecated or archived source of a configuration, images first, in configuration order. */
export function inactiveSources(config: Config): SourceLifecycle[] {
  const out: SourceLifecycle[] = [];
  const add = (kind: SourceLifecycle['kind'], name: string, target: string | null, state: LifecycleState, note: string | undefined): void => {
    if (state === 'active') return;
    out.push({ kind, name, target, state, ...(note !== undefined ? { note } : {}) });
  };
  for (const i of config.images) add('image', i.name, i.target, i.lifecycle, i.note);
  for (const r of config.goModules?.roots ?? []) add('module', r.name, r.kind === 'path' ? r.path : null, r.lifecycle, r.note);
  return out;
}

/** How many GOPROXY requests may be in flight (goModules.concurrency, or its default without goModules). */
export function moduleConcurrency(config: Config): number {
  return config.goModules?.concurrency ?? DEFAULT_MODULE_CONCURRENCY;
}

/** Parses a duration such as `30s`, `2m`, `500ms`, `1h` (a bare number is seconds) into milliseconds. */
export function parseDuration(v: string | number): number {
  const m = typeof v === 'number' ? [String(v), String(v), 's'] : /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(v);
  if (!m) throw new FerryError('USAGE', `"${String(v)}" is not a duration (examples: 30s, 2m, 500ms)`);
  const n = Number(m[1]);
  const ms = Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new FerryError('USAGE', `"${String(v)}" is not a positive duration`);
  return ms;
}

/** Parses a byte size such as `4GiB`, `700MB`, `1024` into bytes. */
export function parseByteSize(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*$/.exec(v);
  if (!m) throw new FerryError('USAGE', `"${v}" is not a size (examples: 700MB, 4GiB, 1048576)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const base = m[3] === 'i' ? 1024 : 1000;
  const exp = unit === '' ? 0 : 'kmgt'.indexOf(unit) + 1;
  const bytes = Math.floor(n * base ** exp);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new FerryError('USAGE', `"${v}" is not a positive size`);
  return bytes;
}

/** The attachment filter a `referrers:` setting stands for (null: none followed). */
export function attachmentFilter(r: ReferrersConfig): AttachmentFilter | null {
  if (r === false) return null;
  if (r === true) return { artifactTypes: null };
  return { artifactTypes: [...r.artifactTypes] };
}
