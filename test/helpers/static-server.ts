/**
 * A plain node:http static file server for tests (a GOPROXY tree is a complete proxy when
 * served statically). Paths are percent-decoded, so `!`, `@` and `+` work whether or not the
 * client escapes them; anything missing is 404.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve, sep } from 'node:path';

/** One request the server saw (path as received, before decoding). */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
}

/** Options for serveDir. */
export interface ServeDirOptions {
  /**
   * Called first for every request; return true when it has answered (fault injection:
   * 500s, 410s, resets), or rewrite req.url and return false. The request is still recorded.
   */
  readonly intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A running static server. */
export interface StaticServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  readonly url: string;
  readonly requests: SeenRequest[];
  /** Answers a request from the directory, as if no intercept had taken it (for one it held back). */
  serve(req: IncomingMessage, res: ServerResponse): void;
  stop(): Promise<void>;
}

/** Serves `dir` on 127.0.0.1 with a free port. */
export async function serveDir(dir: string, opts: ServeDirOptions = {}): Promise<StaticServer> {
  const root = resolve(dir);
  const requests: SeenRequest[] = [];
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
        return;
      }
      let decoded: string;
      try {
        decoded = decodeURIComponent(rawPath);
      } catch {
        res.writeHead(400).end('bad path\n');
        return;
      }
      const file = resolve(root, '.' + decoded);
      if (file !== root && !file.startsWith(root + sep)) {
        res.writeHead(404).end('not found\n');
        return;
      }
      try {
        const st = await stat(file);
        if (!st.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
        if (req.method === 'HEAD') {
          res.end();
          return;
        }
        createReadStream(file).on('error', () => res.destroy()).pipe(res);
      } catch {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    })();
  };
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0] ?? '/', headers: req.headers });
    if (opts.intercept?.(req, res)) return;
    // Served after intercept, which may rewrite req.url (e.g. strip a prefix it authenticated).
    serve(req, res);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    serve,
    stop: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
