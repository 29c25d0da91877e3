/**
 * The HTTP plumbing of `ferry serve`: a request context, byte-range parsing and one way to send
 * a body (a `ServedResource`) with HEAD, Range, ETag and backpressure handled alike for store
 * blobs, static files and small generated documents.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Digest } from '../oci/index.js';
import type { StoreContent } from '../store/index.js';

/** One request being served. */
export interface ServeContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** GET or HEAD (other methods never reach a route). */
  readonly method: 'GET' | 'HEAD';
  /** The raw path, before percent-decoding. */
  readonly rawPath: string;
  readonly query: URLSearchParams;
  /** Aborted when the client goes away before the response is finished. */
  readonly signal: AbortSignal;
  readonly logger: Logger | undefined;
}

/** An inclusive byte range of a body. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** A body that can be sent whole or in part. */
export interface ServedResource {
  readonly size: number;
  readonly contentType: string;
  /** Extra headers (Docker-Content-Digest, ...). */
  readonly headers?: Readonly<Record<string, string>>;
  /** A strong validator, quoted, e.g. `"sha256:…"`. */
  readonly etag?: string;
  /** False for documents whose range requests make no sense. @default true */
  readonly ranges?: boolean;
  /** The bytes, or only `range` of them. */
  open(range: ByteRange | undefined, signal: AbortSignal): Readable;
}

/**
 * Parses a `Range` header against a body of `size` bytes (RFC 9110 §14.1.2): a single range
 * `a-b`, `a-` or `-n`. Returns undefined to send the whole body (no header, another unit, several
 * ranges, or a malformed value, all of which a server may ignore), 'unsatisfiable' for 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  return { start, end };
}

/** A resource over bytes held in memory (a regenerated `@v/list`, a small JSON document). */
export function bufferResource(bytes: Buffer, contentType: string, extra: { headers?: Record<string, string>; etag?: string } = {}): ServedResource {
  return {
    size: bytes.length,
    contentType,
    ...extra,
    open: (range) => Readable.from(range ? [bytes.subarray(range.start, range.end + 1)] : [bytes]),
  };
}

/**
 * A request path split into its elements, each percent-decoded once (`%2e` and `%2E` are dots,
 * `%252e` stays the three characters `%2e`); the first element is the empty one before the
 * leading `/`. 'malformed' for broken percent-encoding; 'hidden' when any element starts with a
 * dot (`.`, `..`, `.ferry-ledger.db`, `.ferry-staging-*`) or holds what no served path holds: a
 * slash once decoded (`%2F`), a backslash or a NUL. Nothing a route serves has such an element:
 * Go module paths and versions never start an element with a dot (golang.org/x/mod CheckPath),
 * nor do OCI repository names, tags or digests (distribution-spec name grammar `[a-z0-9]…`,
 * tag grammar `[a-zA-Z0-9_]…`), so refusing them costs no client anything and keeps every
 * dot-file of a served directory (the import ledger, an import's staging directory) private.
 */
export function pathElements(rawPath: string): string[] | 'malformed' | 'hidden' {
  const out: string[] = [];
  let hidden = false;
  for (const raw of rawPath.split('/')) {
    let e: string;
    try {
      e = decodeURIComponent(raw);
    } catch {
      return 'malformed';
    }
    if (isHiddenElement(e)) hidden = true;
    out.push(e);
  }
  return hidden ? 'hidden' : out;
}

/** True for a decoded path element that is never served (see pathElements). */
function isHiddenElement(e: string): boolean {
  return e.startsWith('.') || e.includes('/') || e.includes('\\') || e.includes('\0');
}

/**
 * The file at `relPath` (already percent-decoded, '/'-separated) under `root`, or undefined when
 * it is missing, not a regular file, escapes `root` or has an element starting with a dot (a
 * hidden file, `.` or `..`, refused outright).
 */
export async function fileResource(root: string, relPath: string, contentType: string): Promise<ServedResource | undefined> {
  const parts = relPath.split('/').filter((p) => p !== '');
  if (parts.some(isHiddenElement)) return undefined;
  const base = resolve(root);
  const file = resolve(base, ...parts);
  if (!file.startsWith(base + sep)) return undefined;
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) return undefined;
    size = st.size;
  } catch {
    return undefined;
  }
  return {
    size,
    contentType,
    open: (range) => createReadStream(file, range ? { start: range.start, end: range.end } : {}),
  };
}

/** Sends a plain-text answer (the go command shows a 404 body to its user). */
export function sendText(ctx: ServeContext, status: number, text: string, headers: Record<string, string> = {}): void {
  send(ctx, status, Buffer.from(text.endsWith('\n') ? text : `${text}\n`), 'text/plain; charset=utf-8', headers);
}

/** Sends a JSON document. */
export function sendJson(ctx: ServeContext, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(ctx, status, Buffer.from(JSON.stringify(value)), 'application/json', headers);
}

function send(ctx: ServeContext, status: number, body: Buffer, contentType: string, headers: Record<string, string>): void {
  ctx.res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': String(body.length) });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
}

/**
 * Sends a resource: 304 on a matching If-None-Match, 206/416 for a Range, the headers alone for
 * HEAD, else the body streamed through `pipeline`, so a slow client slows the read and a client
 * that hangs up destroys it. A failure after the headers left ends the connection, so the client
 * sees a short body instead of a complete-looking wrong one.
 */
export async function sendResource(ctx: ServeContext, r: ServedResource): Promise<void> {
  const { req, res } = ctx;
  const headers: Record<string, string> = { ...r.headers, 'Content-Type': r.contentType };
  if (r.etag) headers['ETag'] = r.etag;
  const ranges = r.ranges !== false;
  if (ranges) headers['Accept-Ranges'] = 'bytes';
  if (r.etag && ifNoneMatch(req.headers['if-none-match'], r.etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  let range: ByteRange | undefined;
  const rangeHeader = ranges && ifRangeHolds(req.headers['if-range'], r.etag) ? req.headers.range : undefined;
  const parsed = parseRange(rangeHeader, r.size);
  if (parsed === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${r.size}`, 'Content-Length': '0' }).end();
    return;
  }
  if (parsed) {
    range = parsed;
    headers['Content-Range'] = `bytes ${parsed.start}-${parsed.end}/${r.size}`;
    headers['Content-Length'] = String(parsed.end - parsed.start + 1);
  } else {
    headers['Content-Length'] = String(r.size);
  }
  res.writeHead(range ? 206 : 200, headers);
  if (ctx.method === 'HEAD' || r.size === 0) {
    res.end();
    return;
  }
  const body = r.open(range, ctx.signal);
  try {
    await pipeline(body, res);
  } catch (err) {
    body.destroy();
    if (!res.destroyed) res.destroy();
    // A client hanging up is routine; a damaged blob or a read error is worth a warning.
    if (!ctx.signal.aborted) ctx.logger?.warn({ err, path: ctx.rawPath }, 'serve: body failed after the headers were sent');
  }
}

/** If-None-Match: `*` or a list of entity tags, weak ones compared weakly. */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** If-Range: the range applies only while the validator still matches (dates never match here). */
function ifRangeHolds(header: string | string[] | undefined, etag: string | undefined): boolean {
  if (header === undefined) return true;
  return etag !== undefined && typeof header === 'string' && header.trim() === etag;
}

/**
 * A stored blob as a resource, or undefined when the index does not record it. Whole reads are
 * verified as they stream (a damaged file ends the connection short); a range cannot be
 * verified on its own, so it is read from the file as is and the client checks the digest.
 */
export function storeBlobResource(
  content: StoreContent,
  digest: Digest,
  contentType: string,
  extra: { headers?: Record<string, string>; etag?: string } = {},
): ServedResource | undefined {
  const row = content.getBlob(digest);
  if (!row) return undefined;
  return {
    size: row.size,
    contentType,
    ...extra,
    open: (range, signal) =>
      range ? createReadStream(content.blobPath(digest), { start: range.start, end: range.end, signal }) : content.readBlob(digest, { signal }),
  };
}
