/**
 * A GOPROXY protocol client (go.dev/ref/mod#goproxy-protocol; cmd/go/internal/modfetch/proxy.go)
 * over http(s):// and file:// bases. 404 and 410 mean "not here"; anything else that is not
 * 200 is an error. Bodies are returned as received: .mod and .zip bytes are never rewritten.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Dispatcher } from 'undici';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import {
  discardBody,
  header,
  readErrorBody,
  redactUrl,
  request,
  requestBytes,
  resolveRetry,
  resumableBody,
  statusError,
  ERROR_BODY_LIMIT,
  type HttpRequest,
  type HttpResponse,
  type RetryOptions,
} from '../net/index.js';
import {
  canonicalModuleVersion,
  isPseudoVersion,
  isValid,
  MAX_GO_MOD,
  MAX_METADATA_BYTES,
  MAX_ZIP_FILE,
  parseInfoDocument,
  proxyPath,
  sortVersions,
} from '../gomod/index.js';

/** Basic-auth credentials for a private proxy. */
export interface ProxyCredentials {
  readonly username: string;
  readonly password: string;
}

/** Options for GoProxyClient. */
export interface GoProxyClientOptions {
  /** Proxy root: http(s)://host/path or file:///dir. */
  readonly baseUrl: string;
  /** undici dispatcher (proxy, CA, TLS). @default net's process-wide dispatcher */
  readonly dispatcher?: Dispatcher;
  readonly retry?: RetryOptions;
  /** Sent as HTTP Basic auth; userinfo in baseUrl is used the same way. */
  readonly credentials?: ProxyCredentials;
  /** Aborts every call made by this client. */
  readonly signal?: AbortSignal;
  /** Largest .mod accepted. @default MAX_GO_MOD (16 MiB) */
  readonly maxModBytes?: number;
  /** Largest .zip accepted. @default MAX_ZIP_FILE (500 MiB) */
  readonly maxZipBytes?: number;
}

/** Per-call options. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** A version list as served, and the release/pre-release versions in it, sorted. */
export interface VersionList {
  readonly versions: string[];
  readonly raw: Buffer;
}

/** A .info or @latest document, plus its exact bytes. */
export interface ProxyInfo {
  readonly Version: string;
  readonly Time?: string;
  readonly raw: Buffer;
}

/** Counts bytes through and fails once more than `max` pass. */
class LimitStream extends Transform {
  private seen = 0;

  constructor(private readonly max: number, private readonly details: ErrorDetails) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) {
      cb(new FerryError('BODY_TOO_LARGE', `${describe(this.details)}: module zip exceeds ${this.max} bytes`, this.details));
      return;
    }
    cb(null, chunk);
  }
}

function describe(d: ErrorDetails): string {
  return d.version !== undefined ? `${d.module}@${d.version}` : String(d.module);
}

function isNotExist(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A client for one GOPROXY base URL. */
export class GoProxyClient {
  private readonly base: URL;
  private readonly fileRoot: string | undefined;
  private readonly authHeader: string | undefined;
  private readonly opts: GoProxyClientOptions;
  /** The base URL with credentials removed, for messages. */
  readonly safeBaseUrl: string;

  constructor(opts: GoProxyClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseUrl);
    } catch {
      throw new FerryError('CONFIG_INVALID', `goproxy baseUrl ${JSON.stringify(redactUrl(opts.baseUrl))} is not a URL`);
    }
    if (!['http:', 'https:', 'file:'].includes(base.protocol)) {
      throw new FerryError('CONFIG_INVALID', `goproxy baseUrl must be http://, https:// or file://, got ${JSON.stringify(base.protocol)}`);
    }
    let creds = opts.credentials;
    if (base.username !== '' && creds === undefined) {
      creds = { username: decodeURIComponent(base.username), password: decodeURIComponent(base.password) };
    }
    base.username = '';
    base.password = '';
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
    this.opts = opts;
    this.safeBaseUrl = redactUrl(base);
    this.fileRoot = base.protocol === 'file:' ? fileURLToPath(base) : undefined;
    this.authHeader = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
  }

  private signalFor(call?: CallOptions): AbortSignal | undefined {
    const signals = [this.opts.signal, call?.signal].filter((s): s is AbortSignal => s !== undefined);
    if (signals.length <= 1) return signals[0];
    return AbortSignal.any(signals);
  }

  private checkAborted(signal: AbortSignal | undefined, details: ErrorDetails): void {
    if (signal?.aborted) throw new FerryError('ABORTED', `${describe(details)}: aborted`, { ...details, cause: signal.reason });
  }

  /**
   * GETs one proxy file. Returns undefined for 404/410 (or a missing file), else the body
   * stream, whose consumption is the caller's job, and whether it is already known to stay
   * within maxBytes (an HTTP Content-Length at most maxBytes: the HTTP/1.1 parser delivers no
   * more than that).
   */
  private async open(
    rel: string,
    op: string,
    details: ErrorDetails,
    signal: AbortSignal | undefined,
    maxBytes: number,
    resumable = false,
  ): Promise<{ body: Readable; bounded: boolean } | undefined> {
    this.checkAborted(signal, details);
    if (this.fileRoot !== undefined) {
      const file = join(this.fileRoot, ...rel.split('/'));
      let size: number;
      try {
        const st = await stat(file);
        if (!st.isFile()) return undefined;
        size = st.size;
      } catch (err) {
        if (isNotExist(err)) return undefined;
        throw new FerryError('STORE_IO', `${op} ${describe(details)}: ${(err as Error).message}`, { ...details, op, file, cause: err });
      }
      if (size > maxBytes) {
        throw new FerryError('BODY_TOO_LARGE', `${op} ${describe(details)}: ${file} is ${size} bytes, more than ${maxBytes}`, { ...details, op, file });
      }
      // A file may still grow after the stat: not bounded.
      return { body: createReadStream(file, signal ? { signal } : {}), bounded: false };
    }
    const url = new URL(rel, this.base);
    const res = await request({ ...this.requestInit(url, signal), op, details });
    if (res.statusCode === 404 || res.statusCode === 410) {
      await discardBody(res.body);
      return undefined;
    }
    // Built only on a failure path: redacting the URL is a measurable cost per request.
    const reqDetailsOf = (): ErrorDetails => ({ ...details, url: redactUrl(url), method: 'GET' });
    if (res.statusCode !== 200) {
      const reqDetails = reqDetailsOf();
      const body = await readErrorBody(res.body, reqDetails);
      throw statusError(op, res.statusCode, reqDetails, body);
    }
    const lengthHeader = header(res.headers, 'content-length');
    const length = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : NaN;
    if (Number.isFinite(length) && length > maxBytes) {
      // undici reports the destroy as an 'error' on the body; nobody else is listening.
      res.body.on('error', () => undefined);
      res.body.destroy();
      throw new FerryError('BODY_TOO_LARGE', `${op} ${describe(details)}: Content-Length ${length} exceeds ${maxBytes} bytes`, { ...reqDetailsOf(), op });
    }
    if (!resumable) return { body: res.body, bounded: Number.isFinite(length) };
    const size = Number.isFinite(length) ? length : undefined;
    const body = resumableBody({
      first: res,
      reopen: (offset) => this.reopen(url, offset, size, op, details, signal),
      ...(size !== undefined ? { size } : {}),
      retry: resolveRetry(this.opts.retry),
      ...(signal ? { signal } : {}),
      details: { ...details, op },
      label: `${op} ${describe(details)}`,
    });
    // Each resumed response is held to the rest of the first one's Content-Length (reopen), so
    // the whole stays bounded by it.
    return { body, bounded: size !== undefined };
  }

  /**
   * Asks for a body again from `offset` (Range), after a reset or a stall. A 206 must start at
   * `offset`, which the caller checks; when the first response gave a length, the new one must
   * carry exactly the rest of it (a 200 restarts from byte 0 and carries all of it).
   */
  private async reopen(url: URL, offset: number, size: number | undefined, op: string, details: ErrorDetails, signal: AbortSignal | undefined): Promise<HttpResponse> {
    const init = this.requestInit(url, signal);
    const res = await request({ ...init, headers: { ...init.headers, range: `bytes=${offset}-` }, op, details });
    const reqDetails: ErrorDetails = { ...details, op, url: redactUrl(url), method: 'GET' };
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      const body = await readErrorBody(res.body, reqDetails);
      throw statusError(op, res.statusCode, reqDetails, body);
    }
    if (size !== undefined) {
      const want = res.statusCode === 206 ? size - offset : size;
      const got = header(res.headers, 'content-length');
      if (got === undefined || !/^\d+$/.test(got) || Number(got) !== want) {
        res.body.on('error', () => undefined);
        res.body.destroy();
        throw new FerryError('SIZE_MISMATCH', `${op} ${describe(details)}: resumed at byte ${offset} of ${size}, but the proxy answered ${res.statusCode} with Content-Length ${got ?? 'none'} (expected ${want})`, {
          ...reqDetails,
          temporary: false,
        });
      }
    }
    return res;
  }

  private async getBytes(rel: string, op: string, details: ErrorDetails, signal: AbortSignal | undefined, maxBytes: number): Promise<Buffer | undefined> {
    if (this.fileRoot !== undefined) {
      this.checkAborted(signal, details);
      const file = join(this.fileRoot, ...rel.split('/'));
      try {
        const st = await stat(file);
        if (!st.isFile()) return undefined;
        if (st.size > maxBytes) {
          throw new FerryError('BODY_TOO_LARGE', `${op} ${describe(details)}: ${file} is ${st.size} bytes, more than ${maxBytes}`, { ...details, op, file });
        }
        return await readFile(file, signal ? { signal } : {});
      } catch (err) {
        if (err instanceof FerryError) throw err;
        if (isNotExist(err)) return undefined;
        if (signal?.aborted) this.checkAborted(signal, details);
        throw new FerryError('STORE_IO', `${op} ${describe(details)}: ${(err as Error).message}`, { ...details, op, file, cause: err });
      }
    }
    const url = new URL(rel, this.base);
    const res = await requestBytes({ ...this.requestInit(url, signal), op, details, maxBytes });
    if (res.statusCode === 404 || res.statusCode === 410) return undefined;
    if (res.statusCode !== 200) throw statusError(op, res.statusCode, { ...details, url: redactUrl(url), method: 'GET' }, res.body.subarray(0, ERROR_BODY_LIMIT));
    return res.body;
  }

  /** The parts of a request every GET to this proxy shares. */
  private requestInit(url: URL, signal: AbortSignal | undefined): HttpRequest {
    return {
      url,
      headers: this.authHeader ? { authorization: this.authHeader } : {},
      ...(signal ? { signal } : {}),
      ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
    };
  }

  private parseInfo(raw: Buffer, op: string, details: ErrorDetails): ProxyInfo {
    return { ...parseInfoDocument(raw, `${op} ${describe(details)}`, { ...details, op }), raw };
  }

  /**
   * GET $module/@v/list: the tagged versions (valid semver, pseudo-versions dropped, sorted),
   * and the exact bytes. Undefined when the proxy has no such module.
   */
  async list(module: string, opts: CallOptions = {}): Promise<VersionList | undefined> {
    const details: ErrorDetails = { module };
    const raw = await this.getBytes(proxyPath(module, 'list'), 'goproxyList', details, this.signalFor(opts), MAX_METADATA_BYTES);
    if (raw === undefined) return undefined;
    const versions = new Set<string>();
    for (const line of raw.toString('utf8').split('\n')) {
      const f = line.trim().split(/\s+/)[0];
      if (f !== undefined && f !== '' && isValid(f) && !isPseudoVersion(f)) versions.add(f);
    }
    return { versions: sortVersions([...versions]), raw };
  }

  /** GET $module/@v/$version.info. Undefined when not there; refuses info for another canonical version. */
  async info(module: string, version: string, opts: CallOptions = {}): Promise<ProxyInfo | undefined> {
    const details: ErrorDetails = { module, version };
    const raw = await this.getBytes(proxyPath(module, 'info', version), 'goproxyInfo', details, this.signalFor(opts), MAX_METADATA_BYTES);
    if (raw === undefined) return undefined;
    const info = this.parseInfo(raw, 'goproxyInfo', details);
    // proxy.go: a proxy answering for a different version than a canonical one asked for is an
    // error; a query such as "v1.2" may legitimately resolve to "v1.2.0".
    if (info.Version !== version && version === canonicalModuleVersion(version)) {
      throw new FerryError('VERSION_INVALID', `goproxyInfo ${module}@${version}: proxy returned info for version ${info.Version} instead of requested version`, { ...details, op: 'goproxyInfo' });
    }
    return info;
  }

  /** GET $module/@v/$version.mod: the exact bytes (capped at maxModBytes), or undefined. */
  async mod(module: string, version: string, opts: CallOptions = {}): Promise<Buffer | undefined> {
    return this.getBytes(proxyPath(module, 'mod', version), 'goproxyMod', { module, version }, this.signalFor(opts), this.opts.maxModBytes ?? MAX_GO_MOD);
  }

  /**
   * GET $module/@v/$version.zip as a stream of the exact bytes, or undefined when not there.
   * The stream fails with BODY_TOO_LARGE past maxZipBytes; the caller must consume or destroy it.
   */
  async zip(module: string, version: string, opts: CallOptions = {}): Promise<Readable | undefined> {
    const details: ErrorDetails = { module, version };
    const max = this.opts.maxZipBytes ?? MAX_ZIP_FILE;
    // A zip stalled or cut mid-body resumes with Range from where it stopped.
    const got = await this.open(proxyPath(module, 'zip', version), 'goproxyZip', details, this.signalFor(opts), max, true);
    if (got === undefined) return undefined;
    // One Transform less per zip when Content-Length already bounds the body.
    if (got.bounded) return got.body;
    const body = got.body;
    const limiter = new LimitStream(max, { ...details, op: 'goproxyZip' });
    pipeline(body, limiter, () => {
      // Errors reach the consumer through `limiter`, which pipeline destroys with them.
    });
    return limiter;
  }

  /**
   * GET $module/@v/$version.zip read whole, for zips of at most `maxBytes` (and maxZipBytes): the
   * exact bytes, or undefined when not there. A bigger zip fails with BODY_TOO_LARGE, at once
   * when its Content-Length says so; zip() streams one of any size.
   */
  async zipBytes(module: string, version: string, maxBytes: number, opts: CallOptions = {}): Promise<Buffer | undefined> {
    const max = Math.min(maxBytes, this.opts.maxZipBytes ?? MAX_ZIP_FILE);
    return this.getBytes(proxyPath(module, 'zip', version), 'goproxyZip', { module, version }, this.signalFor(opts), max);
  }

  /** GET $module/@latest (optional in the protocol): the proxy's idea of latest, or undefined. */
  async latest(module: string, opts: CallOptions = {}): Promise<ProxyInfo | undefined> {
    const details: ErrorDetails = { module };
    const raw = await this.getBytes(proxyPath(module, 'latest'), 'goproxyLatest', details, this.signalFor(opts), MAX_METADATA_BYTES);
    if (raw === undefined) return undefined;
    return this.parseInfo(raw, 'goproxyLatest', details);
  }
}
