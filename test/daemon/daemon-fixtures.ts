/**
 * Test fixtures for the daemon: a forwarding proxy that can hold blob downloads (a stalling
 * upstream a real registry will not produce on demand), polling with a deadline, small HTTP
 * and Prometheus-text helpers, and a logger whose lines tests can read.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** A proxy in front of a registry that can hold blob GETs until released. */
export interface StallingProxy {
  /** 127.0.0.1:PORT to configure instead of the registry. */
  readonly host: string;
  /** From now on, blob GETs wait (unanswered) until release(). */
  stall(): void;
  /** Lets every held request (and later ones) through. */
  release(): void;
  /** Blob requests being held right now. */
  held(): number;
  stop(): Promise<void>;
}

/** Starts a stalling proxy forwarding to `target` (host:port, plain HTTP). */
export async function startStallingProxy(target: string): Promise<StallingProxy> {
  let stalling = false;
  let waiters: Array<() => void> = [];
  let heldNow = 0;
  const [thost, tport] = target.split(':');
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const up = httpRequest({ host: thost, port: Number(tport), method: req.method, path: req.url, headers: { ...req.headers, host: target } }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  };
  const server = createServer((req, res) => {
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (!isBlob || !stalling) {
      forward(req, res);
      return;
    }
    heldNow++;
    let done = false;
    const go = (): void => {
      if (done) return;
      done = true;
      heldNow--;
      forward(req, res);
    };
    res.on('close', () => {
      // The client gave up (abort at shutdown) while held: forget the request.
      if (!done) {
        done = true;
        heldNow--;
      }
    });
    waiters.push(go);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    stall: () => {
      stalling = true;
    },
    release: () => {
      stalling = false;
      const w = waiters;
      waiters = [];
      for (const go of w) go();
    },
    held: () => heldNow,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET a URL; resolves with status and body text. */
export async function get(url: string): Promise<{ status: number; body: string; contentType: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

/** The value of one sample in Prometheus text, or undefined when absent. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const p of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[p[1]!] = p[2]!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

/** A pino logger that keeps its JSON lines for assertions. */
export function memoryLogger(level = 'debug'): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level }, sink), lines: () => [...lines] };
}
