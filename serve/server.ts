/**
 * `ferry serve`: a read-only HTTP(S) server inside the disconnected network that is at once a
 * GOPROXY (from a store or a static module tree, with a checksum-database passthrough) and a
 * pull-only OCI registry (from a store), with a catalog page for people at `/` (pages.ts).
 * Anything but GET and HEAD is refused with 405.
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, FerryError, isFerryError } from '../errors/index.js';
import type { Store } from '../store/index.js';
import { notFound, serveModuleFromDir, serveModuleFromStore, serveSumdb, staticSumdbSource, storeSumdbSource, type SumdbSource } from './goproxy.js';
import { pathElements, sendText, type ServeContext } from './http.js';
import { OciRepositories, sendDistributionError, serveOci } from './oci.js';
import { CatalogReader } from './catalog-data.js';
import { isPagePath, servePage } from './pages.js';

/** A checksum-database source (see goproxy.ts). */
export type { SumdbSource } from './goproxy.js';

/** Options for `createServeHandler`. */
export interface ServeHandlerOptions {
  /** The store to serve images and Go modules from (opened read-only is enough). */
  readonly store?: Store;
  /**
   * A static GOPROXY tree (what `ferry import` writes). When given it answers every module
   * request, even with a store: one source of truth per server, never a mix of two lists.
   */
  readonly gomodDir?: string;
  /**
   * Checksum-database sources tried after the built-in one: the static `gomodDir/sumdb/` files
   * when `gomodDir` is given, else the store's imported database files.
   */
  readonly sumdb?: readonly SumdbSource[];
  /** One debug line per request; warnings for failed bodies. */
  readonly logger?: Logger;
}

/** Options for `startServe`. */
export interface StartServeOptions extends ServeHandlerOptions {
  /** `host:port`, `[v6]:port` or `:port` (all interfaces); port 0 picks a free port. */
  readonly listen: string;
  /** PEM certificate (chain) file; with `tlsKey`, serve HTTPS. */
  readonly tlsCert?: string;
  /** PEM private key file for `tlsCert`. */
  readonly tlsKey?: string;
  /**
   * How long `close()` lets downloads in progress finish before cutting them.
   * @default 10000
   */
  readonly closeGraceMs?: number;
  /** Aborting it closes the server. */
  readonly signal?: AbortSignal;
}

/** A running server. */
export interface RunningServe {
  /** `http(s)://host:port`, no trailing slash; a wildcard listen address shows as loopback. */
  readonly url: string;
  /** `host:port` as registry clients name it (`HOST/repo:tag`). */
  readonly host: string;
  /** Stops accepting, lets requests in progress finish (up to the grace period), then resolves. */
  close(): Promise<void>;
}

/** Checks the options and resolves `gomodDir`; USAGE or NOT_FOUND when unusable. */
function checkOptions(opts: ServeHandlerOptions): string | undefined {
  if (!opts.store && opts.gomodDir === undefined) {
    throw new FerryError('USAGE', 'serve needs a store, a Go module directory (gomodDir) or both');
  }
  if (opts.gomodDir === undefined) return undefined;
  const dir = resolve(opts.gomodDir);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new FerryError('NOT_FOUND', `Go module directory ${dir} does not exist`, { op: 'serve', file: dir });
  }
  if (!isDir) throw new FerryError('USAGE', `Go module directory ${dir} is not a directory`, { op: 'serve', file: dir });
  return dir;
}

/** The request handler of `ferry serve`, for node:http or node:https servers. */
export function createServeHandler(opts: ServeHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const gomodDir = checkOptions(opts);
  const { store, logger } = opts;
  const repos = store ? new OciRepositories(store) : undefined;
  const catalog = new CatalogReader({ ...(store ? { store } : {}), ...(repos ? { repos } : {}), ...(gomodDir !== undefined ? { gomodDir } : {}) });
  // One source of truth per server: the module tree's own database files when it serves the
  // modules, else those an import kept in the store (only for databases it holds `supported`
  // for; see storeSumdbSource).
  const sumdb: SumdbSource[] = [
    ...(gomodDir !== undefined ? [staticSumdbSource(gomodDir)] : store ? [storeSumdbSource(store)] : []),
    ...(opts.sumdb ?? []),
  ];

  const route = async (ctx: ServeContext): Promise<void> => {
    const { rawPath } = ctx;
    const isV2 = rawPath === '/v2' || rawPath.startsWith('/v2/');
    // Decoded once, here, for every route: no element starting with a dot is ever served (the
    // module tree holds the import ledger and an import's unchecked staging files).
    const elements = pathElements(rawPath);
    if (elements === 'malformed') {
      if (isV2) return sendDistributionError(ctx, 400, 'NAME_INVALID', 'malformed percent-encoding in the path');
      return sendText(ctx, 400, 'bad request: malformed percent-encoding in the path');
    }
    if (elements === 'hidden') {
      if (isV2) return sendDistributionError(ctx, 404, 'NAME_UNKNOWN', 'no such route in the registry API');
      return notFound(ctx, 'path elements starting with a dot are never served');
    }
    // `/` and `/-/ui/…`: paths no Go or OCI client asks for (see ui-assets.ts).
    if (isPagePath(rawPath)) return servePage(ctx, catalog);
    if (isV2) {
      if (!store || !repos) return sendDistributionError(ctx, 404, 'NAME_UNKNOWN', 'this server has no store: it serves no images');
      return serveOci(ctx, store.content, repos);
    }
    const decoded = elements.join('/');
    if (decoded.startsWith('/sumdb/')) return serveSumdb(ctx, decoded, sumdb);
    if (gomodDir !== undefined) return serveModuleFromDir(ctx, gomodDir, decoded);
    if (store) return serveModuleFromStore(ctx, store, decoded);
    return notFound(ctx, decoded);
  };

  return (req, res) => {
    const started = performance.now();
    const url = req.url ?? '/';
    const qi = url.indexOf('?');
    const rawPath = qi < 0 ? url : url.slice(0, qi);
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort(new FerryError('ABORTED', 'client went away', { op: 'serve' }));
      logger?.debug({ method: req.method, path: rawPath, status: res.statusCode, ms: Math.round(performance.now() - started), aborted: ac.signal.aborted }, 'serve request');
    });
    const ctx: ServeContext = {
      req,
      res,
      method: req.method === 'HEAD' ? 'HEAD' : 'GET',
      rawPath,
      query: new URLSearchParams(qi < 0 ? '' : url.slice(qi + 1)),
      signal: ac.signal,
      logger,
    };
    const isV2 = rawPath === '/v2' || rawPath.startsWith('/v2/');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const allow = { Allow: 'GET, HEAD' };
      if (isV2) sendDistributionError(ctx, 405, 'UNSUPPORTED', 'this registry is read-only: only pulls are served', { method: req.method }, allow);
      else sendText(ctx, 405, 'method not allowed: this server is read-only', allow);
      return;
    }
    route(ctx).catch((err: unknown) => {
      if (ac.signal.aborted) return;
      if (res.headersSent) {
        res.destroy();
        logger?.warn({ err, path: rawPath }, 'serve: request failed after the headers were sent');
        return;
      }
      // Another process holding the index's write lock for too long is worth a retry, not a failure.
      if (isFerryError(err, 'STORE_LOCKED')) {
        if (isV2) sendDistributionError(ctx, 503, 'UNSUPPORTED', 'the store is busy; retry', undefined, { 'Retry-After': '1' });
        else sendText(ctx, 503, 'the store is busy; retry', { 'Retry-After': '1' });
        return;
      }
      logger?.error({ err, path: rawPath }, 'serve: request failed');
      sendText(ctx, 500, `internal error: ${errorMessage(err)}`);
    });
  };
}

/** Splits a listen address into host and port; USAGE when malformed. */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new FerryError('USAGE', `invalid listen address ${JSON.stringify(addr)}: expected HOST:PORT, [IPv6]:PORT or :PORT`);
  }
  return { host: m[1] ?? m[2] ?? '', port };
}

/** The URL host for a bound address: wildcards show as loopback, IPv6 in brackets. */
function urlHost(a: AddressInfo): string {
  if (a.address === '0.0.0.0') return `127.0.0.1:${a.port}`;
  if (a.address === '::') return `[::1]:${a.port}`;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new FerryError('TLS', `cannot read the TLS ${what} ${file}: ${errorMessage(err)}`, { op: 'serve', file, cause: err });
  }
}

/** Starts `ferry serve` on `opts.listen` (HTTPS when a certificate and key are given). */
export async function startServe(opts: StartServeOptions): Promise<RunningServe> {
  const { host, port } = parseListen(opts.listen);
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
    throw new FerryError('USAGE', 'serve: --tls-cert and --tls-key go together');
  }
  const grace = opts.closeGraceMs ?? 10_000;
  if (!Number.isFinite(grace) || grace < 0) throw new FerryError('USAGE', `serve option closeGraceMs must be a non-negative number, got ${String(grace)}`);
  if (opts.signal?.aborted) throw new FerryError('ABORTED', 'serve aborted before it started', { op: 'serve' });
  const handler = createServeHandler(opts);
  const tls = opts.tlsCert !== undefined && opts.tlsKey !== undefined;
  let server: Server;
  if (tls) {
    const [cert, key] = await Promise.all([readPem(opts.tlsCert as string, 'certificate'), readPem(opts.tlsKey as string, 'key')]);
    try {
      server = createHttpsServer({ cert, key }, handler);
    } catch (err) {
      throw new FerryError('TLS', `unusable TLS certificate or key (${opts.tlsCert}, ${opts.tlsKey}): ${errorMessage(err)}`, { op: 'serve', cause: err });
    }
  } else {
    server = createHttpServer(handler);
  }
  await new Promise<void>((ok, fail) => {
    const onError = (err: Error): void => fail(new FerryError('NETWORK', `cannot listen on ${opts.listen}: ${err.message}`, { op: 'serve', cause: err }));
    server.once('error', onError);
    server.listen({ port, ...(host === '' ? {} : { host }) }, () => {
      server.off('error', onError);
      ok();
    });
  });
  server.on('error', (err) => opts.logger?.error({ err }, 'serve: server error'));
  const hostPort = urlHost(server.address() as AddressInfo);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((ok) => {
      const timer = setTimeout(() => server.closeAllConnections(), grace);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        ok();
      });
      server.closeIdleConnections();
    });
    return closing;
  };
  opts.signal?.addEventListener('abort', () => void close(), { once: true });
  return { url: `${tls ? 'https' : 'http'}://${hostPort}`, host: hostPort, close };
}
