/**
 * Test helper: a real CNCF distribution registry (/usr/bin/docker-registry, 2.8) on a free
 * 127.0.0.1 port, open, with htpasswd, or with token auth backed by an in-test token server.
 *
 *   const reg = await startRegistry({ auth: 'token', users: { alice: 'secret' } });
 *   // ... talk to http://${reg.host} ...
 *   await reg.flushLog(); reg.requests(); // access log, parsed
 *   await reg.stop();
 *
 * Also `startCountingProxy(target)`: a tiny HTTP forwarder that records every request exactly.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';

const execFileP = promisify(execFile);

/** The registry binary the tests drive. */
export const REGISTRY_BIN = '/usr/bin/docker-registry';

/** One line of the registry's access log. */
export interface LoggedRequest {
  readonly method: string;
  /** Path and query as the client sent it, e.g. /v2/foo/tags/list?n=2. */
  readonly path: string;
  readonly status: number;
}

/** Options for startRegistry. */
export interface StartRegistryOptions {
  /** @default 'none' */
  readonly auth?: 'none' | 'htpasswd' | 'token';
  /** Users for htpasswd or token auth. @default { ferry: 'ferry-password' } */
  readonly users?: Record<string, string>;
  /** Token lifetime in seconds the token server reports (token auth). @default 300 */
  readonly tokenExpiresIn?: number;
  /** Accept Docker schema 1 manifests (`compatibility.schema1.enabled`), as old registries hold them. @default false */
  readonly schema1?: boolean;
  /**
   * Accept manifests whose foreign layers name http(s) `urls` (`validation.manifests.urls.allow`),
   * as Docker Hub and MCR do; distribution refuses any URL by default. @default false
   */
  readonly foreignUrls?: boolean;
}

/** A running registry. */
export interface RunningRegistry {
  /** 127.0.0.1:PORT (plain HTTP). */
  readonly host: string;
  /** The registry's storage root. */
  readonly dataDir: string;
  /** Token auth only: the token server's base URL and a log of the scopes it was asked for. */
  readonly tokenServer?: { readonly url: string; requests(): Array<{ user: string | undefined; scopes: string[]; status: number }> };
  /** Requests so far, parsed from the access log (call flushLog() first to be sure the last ones are in). */
  requests(): LoggedRequest[];
  /** Waits until every request answered so far is in the access log. */
  flushLog(): Promise<void>;
  /** Forgets the requests logged so far. */
  clearRequests(): void;
  stop(): Promise<void>;
}

/** The default users when none are given. */
export const DEFAULT_USERS: Readonly<Record<string, string>> = { ferry: 'ferry-password' };

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

// Apache combined log: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "ua"
const ACCESS_RE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) /;
const SENTINEL = '/v2/?ferry-log-flush=';

/** Starts docker-registry with a generated config in a temp dir; resolves once /v2/ answers. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? DEFAULT_USERS;
  const dir = await mkdtemp(join(tmpdir(), 'ferry-registry-'));
  const dataDir = join(dir, 'data');
  let token: TokenServer | undefined;
  let authYaml = '';
  try {
    if (auth === 'htpasswd') {
      const lines = Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}`);
      await writeFile(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
      authYaml = `auth:\n  htpasswd:\n    realm: ferry-test\n    path: ${join(dir, 'htpasswd')}\n`;
    } else if (auth === 'token') {
      token = await startTokenServer(dir, users, opts.tokenExpiresIn ?? 300);
      authYaml =
        `auth:\n  token:\n    realm: ${token.url}/token\n    service: ${TOKEN_SERVICE}\n` +
        `    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${token.certFile}\n`;
    }
  } catch (err) {
    await token?.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  // A port picked then released can be taken by someone else before the registry binds it: retry.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config =
      `version: 0.1\nlog:\n  level: warn\n  formatter: json\n  accesslog:\n    disabled: false\n` +
      `storage:\n  filesystem:\n    rootdirectory: ${dataDir}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n` +
      `http:\n  addr: ${host}\n  secret: ferry-test-secret\n` +
      (opts.schema1 ? 'compatibility:\n  schema1:\n    enabled: true\n' : '') +
      (opts.foreignUrls ? "validation:\n  manifests:\n    urls:\n      allow:\n        - '^https?://'\n" : '') +
      authYaml;
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, config);
    const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let exited = false;
    // If the test process dies without calling stop(), do not leave a registry running.
    const reap = (): void => void child.kill('SIGKILL');
    process.once('exit', reap);
    child.on('exit', () => {
      exited = true;
      process.removeListener('exit', reap);
    });
    const ready = await waitReady(host, () => exited);
    if (!ready) {
      await killChild(child);
      if (/address already in use/.test(stderr)) continue;
      await token?.close();
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start on ${host}:\n${stderr.slice(-4000)}`);
    }
    let skipLines = 0;
    let sentinelSeq = 0;
    const parse = (): LoggedRequest[] => {
      const out: LoggedRequest[] = [];
      const lines = stdout.split('\n');
      for (let i = skipLines; i < lines.length; i++) {
        const m = ACCESS_RE.exec(lines[i] as string);
        if (!m) continue;
        const path = m[2] as string;
        if (path.startsWith(SENTINEL)) continue;
        out.push({ method: m[1] as string, path, status: Number(m[3]) });
      }
      return out;
    };
    const reg: RunningRegistry = {
      host,
      dataDir,
      ...(token ? { tokenServer: { url: token.url, requests: () => [...token.log] } } : {}),
      requests: parse,
      async flushLog() {
        // The registry writes a line after its handler returns, possibly after the client has its
        // answer; a sentinel request answered after ours is logged after ours.
        const id = `${++sentinelSeq}-${randomUUID()}`;
        await httpGet(`http://${host}${SENTINEL}${id}`);
        for (let i = 0; i < 200 && !stdout.includes(`${SENTINEL}${id}`); i++) await delay(10);
      },
      clearRequests() {
        skipLines = stdout.split('\n').length - 1;
      },
      async stop() {
        await killChild(child);
        await token?.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
    return reg;
  }
  await token?.close();
  await rm(dir, { recursive: true, force: true });
  throw new Error('docker-registry: no free port after 5 attempts');
}

async function waitReady(host: string, exited: () => boolean): Promise<boolean> {
  for (let i = 0; i < 300; i++) {
    if (exited()) return false;
    try {
      const status = await httpGet(`http://${host}/v2/`);
      // 401 means the registry is up and wants auth.
      if (status === 200 || status === 401) return true;
    } catch {
      // not listening yet
    }
    await delay(50);
  }
  return false;
}

function httpGet(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
    }, 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------------------------
// Token server (distribution "token" auth): JWTs signed ES256 with an x5c header.

/** The `service` the token server and registry agree on. */
export const TOKEN_SERVICE = 'ferry-test-registry';
/** The JWT issuer the registry expects. */
export const TOKEN_ISSUER = 'ferry-test-token-issuer';

interface TokenServer {
  readonly url: string;
  readonly certFile: string;
  readonly log: Array<{ user: string | undefined; scopes: string[]; status: number }>;
  close(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** Signs a JWT (ES256: the signature is raw r||s as JWS requires, not DER). */
function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

async function startTokenServer(dir: string, users: Record<string, string>, expiresIn: number): Promise<TokenServer> {
  const keyFile = join(dir, 'token-key.pem');
  const certFile = join(dir, 'token-cert.pem');
  await execFileP('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=ferry-test-token-signer',
  ]);
  const key = createPrivateKey(await readFile(keyFile));
  const certPem = await readFile(certFile, 'utf8');
  const der = Buffer.from(certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const log: TokenServer['log'] = [];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const send = (status: number, body: unknown, user?: string): void => {
      log.push({ user, scopes, status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') return send(404, { error: 'not found' });
    const authz = req.headers.authorization ?? '';
    const m = /^Basic (.+)$/i.exec(authz);
    if (!m) return send(401, { error: 'unauthorized', error_description: 'credentials required' });
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    const pass = decoded.slice(colon + 1);
    if (colon < 0 || users[user] === undefined || users[user] !== pass) {
      return send(401, { error: 'unauthorized', error_description: 'bad credentials' }, user);
    }
    const access = scopes
      .map((s) => {
        const parts = s.split(':');
        if (parts.length < 3) return undefined;
        const actions = (parts.pop() as string).split(',').filter((a) => a === 'pull' || a === 'push' || a === 'delete' || a === '*');
        const type = parts.shift() as string;
        return { type, name: parts.join(':'), actions };
      })
      .filter((a) => a !== undefined);
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      { typ: 'JWT', alg: 'ES256', x5c: [der.toString('base64')] },
      { iss: TOKEN_ISSUER, sub: user, aud: url.searchParams.get('service') ?? TOKEN_SERVICE, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access },
      key,
    );
    send(200, { token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }, user);
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    certFile,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Counting proxy: exact request counts independent of the registry's log.

/** A request seen by the counting proxy. */
export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** A running counting proxy. */
export interface CountingProxy {
  /** 127.0.0.1:PORT to point clients at instead of the target. */
  readonly host: string;
  requests(): ProxiedRequest[];
  clear(): void;
  stop(): Promise<void>;
}

/**
 * Forwards every request to `target` (host:port, plain HTTP) and records method, path, status and
 * request headers once the response has been sent. Location headers pointing at the target are
 * rewritten to the proxy so that uploads keep going through it.
 */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const seen: ProxiedRequest[] = [];
  const server = createServer((req, res) => {
    const up = httpRequest(
      { host: target.split(':')[0], port: Number(target.split(':')[1]), method: req.method, path: req.url, headers: { ...req.headers, host: target } },
      (upRes) => {
        const headers = { ...upRes.headers };
        if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${target}`, `//${proxyHost}`);
        res.writeHead(upRes.statusCode ?? 502, headers);
        upRes.pipe(res);
        res.on('finish', () => seen.push({ method: req.method ?? '', path: req.url ?? '', status: upRes.statusCode ?? 0, headers: req.headers }));
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxyHost = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host: proxyHost,
    requests: () => [...seen],
    clear: () => void seen.splice(0),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
