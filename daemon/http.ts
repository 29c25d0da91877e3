/**
 * The daemon's small HTTP surface (node:http): health, readiness, Prometheus metrics, JSON
 * status, and the status page for people at `/` with its assets under `/-/ui/` (from Ferry
 * itself: the DMZ page asks no other host for anything).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { FerryError } from '../errors/index.js';
import { PAGE_HEADERS, UI_ASSETS, UI_PREFIX } from '../serve/ui-assets.js';

/** A parsed `--listen` address. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Parses `HOST:PORT` or `[IPv6]:PORT` (port 0 picks a free port). */
export function parseListen(s: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new FerryError('USAGE', `--listen ${s}: expected HOST:PORT such as 127.0.0.1:9420 or [::1]:9420`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Formats an address for URLs and log lines (brackets around IPv6). */
export function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** What the endpoints report; the daemon supplies it. */
export interface HttpHandlers {
  /** Ready when the store is open and no source's last sync failed; `detail` is returned as JSON. */
  readonly ready: () => { readonly ready: boolean; readonly detail: unknown };
  /** Prometheus text exposition and its content type. */
  readonly metrics: () => Promise<{ readonly contentType: string; readonly body: string }>;
  /** The `/status` document. */
  readonly status: () => unknown;
  /** The status page's HTML. */
  readonly page: () => string;
}

/** A listening server. */
export interface DaemonHttpServer {
  /** The bound address (the real port when 0 was asked). */
  readonly address: ListenAddress;
  /** Stops accepting, ends idle keep-alive connections and waits for open requests. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, contentType: string, body: string | Buffer, head: boolean, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'cache-control': 'no-store', ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

/** One of the pages' assets, with its validator. */
function sendAsset(req: IncomingMessage, res: ServerResponse, name: string, head: boolean): void {
  const a = UI_ASSETS.get(name);
  if (!a) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found: no such asset\n', head, { 'x-content-type-options': 'nosniff' });
    return;
  }
  const headers = { etag: a.etag, 'cache-control': 'public, max-age=31536000, immutable', 'x-content-type-options': 'nosniff' };
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  send(res, 200, a.contentType, a.bytes, head, headers);
}

function json(res: ServerResponse, status: number, v: unknown, head: boolean): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(v, null, 2)}\n`, head);
}

/** Starts the HTTP server on `listen`; resolves once it is bound. */
export async function startHttpServer(listen: ListenAddress, handlers: HttpHandlers, logger: Logger): Promise<DaemonHttpServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    if (method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', false);
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    switch (path) {
      case '/healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
        return;
      case '/readyz': {
        const r = handlers.ready();
        json(res, r.ready ? 200 : 503, r.detail, head);
        return;
      }
      case '/metrics': {
        const m = await handlers.metrics();
        send(res, 200, m.contentType, m.body, head);
        return;
      }
      case '/status':
        json(res, 200, handlers.status(), head);
        return;
      case '/':
        send(res, 200, 'text/html; charset=utf-8', handlers.page(), head, { ...PAGE_HEADERS });
        return;
      default:
        if (path.startsWith(UI_PREFIX)) {
          sendAsset(req, res, path.slice(UI_PREFIX.length), head);
          return;
        }
        send(res, 404, 'text/plain; charset=utf-8', 'not found (try /, /healthz, /readyz, /metrics, /status)\n', head);
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err: err instanceof Error ? err.message : String(err), url: req.url }, 'HTTP handler failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', false);
      else res.destroy();
    });
  });
  // Scrapers and probes keep connections alive; a short timeout lets close() finish promptly.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new FerryError('USAGE', `cannot listen on ${formatListen(listen)}: ${err.code ?? err.message}`, { op: 'listen', cause: err }),
      );
    };
    server.once('error', onError);
    server.listen(listen.port, listen.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err: err.message }, 'HTTP server error'));
  const a = server.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
