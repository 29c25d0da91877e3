/**
 * The GOPROXY side of `ferry serve` (go.dev/ref/mod#goproxy-protocol): module files from a store
 * (the `list` regenerated from the versions whose zip is carried, the rest served verbatim) or
 * from a static module tree, and the checksum-database passthrough under `/sumdb/<name>/`.
 */
import { isFerryError } from '../errors/index.js';
import { compare, isPseudoVersion, latestVersion, sortVersions, unescapePath, unescapeVersion } from '../gomod/index.js';
import type { ModuleVersionRow, Store, StoreContent, StoreSumdb } from '../store/index.js';
import { bufferResource, fileResource, sendResource, sendText, storeBlobResource, type ServeContext, type ServedResource } from './http.js';

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json';
const ZIP = 'application/zip';
/** Bytes per hash in a checksum-database hash tile (SHA-256). */
const HASH_BYTES = 32;

/**
 * Answers one checksum-database request (`name` is the database, `path` what follows it, e.g.
 * `lookup/m@v1.0.0` or `supported`); undefined when this source does not have it.
 */
export type SumdbSource = (name: string, path: string, signal: AbortSignal) => Promise<ServedResource | undefined>;

/** A SumdbSource over the static files `dir/sumdb/<name>/<path>` (what `ferry import` writes). */
export function staticSumdbSource(dir: string): SumdbSource {
  return (name, path) => fileResource(dir, `sumdb/${name}/${path}`, sumdbContentType(path));
}

/**
 * A SumdbSource over the checksum-database files an import kept in a store. It answers only for
 * a database whose `supported` file the store holds, i.e. one carried in by `ferry import
 * --store`. A DMZ store (written by sync) keeps tiles and raw lookups but never `supported`, so
 * there every request is 404 and the go client, whose `supported` probe fails, falls back to
 * the real checksum database: the DMZ mirror never answers for a database it only consulted.
 */
export function storeSumdbSource(store: Pick<Store, 'sumdb' | 'content'>): SumdbSource {
  return async (name, path, signal) => {
    if (!store.sumdb.getFile(name, 'supported')) return undefined;
    const row = store.sumdb.getFile(name, path);
    if (row) return storeBlobResource(store.content, row.digest, sumdbContentType(path), { etag: `"${row.digest}"` });
    return partialFromFullTile(store.sumdb, name, path, signal);
  };
}

/**
 * A partial hash tile (`tile/H/L/NNN.p/W`) asked for when the store holds the completed tile:
 * its first W hashes, as the checksum-database server answers (a partial tile is a prefix of
 * its completion). Data tiles are left alone: their records have no fixed size.
 */
async function partialFromFullTile(sumdb: StoreSumdb, name: string, path: string, signal: AbortSignal): Promise<ServedResource | undefined> {
  const m = /^(tile\/\d+\/\d+\/(?:x\d{3}\/)*\d{3})\.p\/(\d+)$/.exec(path);
  if (!m) return undefined;
  const [, full = '', ws = ''] = m;
  const row = sumdb.getFile(name, full);
  const want = Number(ws) * HASH_BYTES;
  if (!row || row.size < want) return undefined;
  const bytes = await sumdb.readFile(name, full, { signal });
  if (!bytes || bytes.length < want) return undefined;
  return bufferResource(bytes.subarray(0, want), sumdbContentType(path));
}

function sumdbContentType(path: string): string {
  return path.startsWith('tile/') ? 'application/octet-stream' : TEXT;
}

/** The content type a GOPROXY file is served with, by its name. */
export function goproxyContentType(path: string): string {
  if (path.endsWith('.zip')) return ZIP;
  if (path.endsWith('.info') || path.endsWith('/@latest')) return JSON_TYPE;
  if (path.endsWith('.mod') || path.endsWith('/@v/list')) return TEXT;
  return 'application/octet-stream';
}

/** 404 with a plain body: the go command takes 404 and 410 as "not here" and shows the text. */
export function notFound(ctx: ServeContext, what: string): void {
  sendText(ctx, 404, `not found: ${what}`);
}

/** Serves `/sumdb/<name>/<path>` from the first source that has it; 404 otherwise. */
export async function serveSumdb(ctx: ServeContext, decodedPath: string, sources: readonly SumdbSource[]): Promise<void> {
  const m = /^\/sumdb\/([^/]+)\/(.+)$/.exec(decodedPath);
  if (m) {
    const [, name = '', rest = ''] = m;
    for (const source of sources) {
      const r = await source(name, rest, ctx.signal);
      if (r) return sendResource(ctx, r);
    }
  }
  notFound(ctx, decodedPath);
}

/** Serves a module file from a static GOPROXY tree (paths used literally, `!`, `@` and `+` included). */
export async function serveModuleFromDir(ctx: ServeContext, dir: string, decodedPath: string): Promise<void> {
  const r = await fileResource(dir, decodedPath, goproxyContentType(decodedPath));
  if (!r) return notFound(ctx, decodedPath);
  return sendResource(ctx, r);
}

/** A parsed GOPROXY request path. */
type ModuleRequest =
  | { readonly kind: 'list'; readonly module: string }
  | { readonly kind: 'latest'; readonly module: string }
  | { readonly kind: 'info' | 'mod' | 'zip'; readonly module: string; readonly version: string };

/** Parses `/<escaped module>/@v/…` or `/<escaped module>/@latest`; undefined when malformed. */
export function parseModuleRequest(decodedPath: string): ModuleRequest | undefined {
  try {
    if (decodedPath.endsWith('/@latest')) {
      return { kind: 'latest', module: unescapePath(decodedPath.slice(1, -'/@latest'.length)) };
    }
    const at = decodedPath.lastIndexOf('/@v/');
    if (at <= 0) return undefined;
    const module = unescapePath(decodedPath.slice(1, at));
    const file = decodedPath.slice(at + '/@v/'.length);
    if (file === 'list') return { kind: 'list', module };
    const m = /^(.+)\.(info|mod|zip)$/.exec(file);
    if (!m) return undefined;
    const [, escVersion = '', kind] = m;
    return { kind: kind as 'info' | 'mod' | 'zip', module, version: unescapeVersion(escVersion) };
  } catch (err) {
    if (isFerryError(err, 'MODULE_INVALID') || isFerryError(err, 'VERSION_INVALID')) return undefined;
    throw err;
  }
}

/**
 * The `@v/list` body: the versions whose zip is carried, pseudo-versions left out as
 * proxy.golang.org does (they stay downloadable by name), in Go semver order.
 */
export function regenerateList(rows: readonly ModuleVersionRow[]): string {
  const listed = rows.filter((r) => r.zipDigest !== null && !isPseudoVersion(r.version)).map((r) => r.version);
  return sortVersions([...new Set(listed)])
    .map((v) => `${v}\n`)
    .join('');
}

/**
 * The version `@latest` reports: the go command's latest rule over the carried versions, or the
 * newest carried pseudo-version when nothing else is carried (the case in which the go command
 * asks `@latest` at all: an empty `list`).
 */
export function latestCarried(rows: readonly ModuleVersionRow[]): ModuleVersionRow | undefined {
  const carried = rows.filter((r) => r.zipDigest !== null);
  const v = latestVersion(carried.map((r) => r.version)) ?? carried.map((r) => r.version).filter(isPseudoVersion).sort(compare).at(-1);
  return v === undefined ? undefined : carried.find((r) => r.version === v);
}

/** Serves a GOPROXY request from the store's module versions. */
export async function serveModuleFromStore(ctx: ServeContext, store: Pick<Store, 'modules' | 'content'>, decodedPath: string): Promise<void> {
  const q = parseModuleRequest(decodedPath);
  if (!q) return notFound(ctx, decodedPath);
  if (q.kind === 'list') {
    const rows = store.modules.list({ module: q.module });
    if (rows.length === 0) return notFound(ctx, `module ${q.module}`);
    return sendResource(ctx, { ...bufferResource(Buffer.from(regenerateList(rows)), TEXT), ranges: false });
  }
  if (q.kind === 'latest') {
    const row = latestCarried(store.modules.list({ module: q.module }));
    if (!row) return notFound(ctx, `module ${q.module}`);
    return sendStored(ctx, store.content, row.infoDigest, JSON_TYPE, `${q.module}@latest`);
  }
  const row = store.modules.get(q.module, q.version);
  const digest = row ? { info: row.infoDigest, mod: row.modDigest, zip: row.zipDigest }[q.kind] : null;
  if (!digest) return notFound(ctx, `${q.module}@${q.version}.${q.kind}`);
  return sendStored(ctx, store.content, digest, goproxyContentType(`.${q.kind}`), `${q.module}@${q.version}.${q.kind}`);
}

async function sendStored(ctx: ServeContext, content: StoreContent, digest: ModuleVersionRow['infoDigest'], contentType: string, what: string): Promise<void> {
  // The digest is the content's identity: a strong ETag for free.
  const r = storeBlobResource(content, digest, contentType, { etag: `"${digest}"` });
  if (!r) return notFound(ctx, `${what} (blob ${digest} missing from the store)`);
  return sendResource(ctx, r);
}
