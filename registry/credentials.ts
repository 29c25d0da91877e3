/**
 * Credentials `docker login` stored: Docker's config.json (`auths`, `credHelpers`, `credsStore`)
 * and the credential helpers it names (`docker-credential-NAME get`, the protocol of
 * docker/docker-credential-helpers). Helpers run as child processes without blocking the event
 * loop, with a time limit, an AbortSignal and a cap on what they print.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FerryError, isFerryError } from '../errors/index.js';
import { DOCKER_HUB, DOCKER_HUB_API_HOST } from '../oci/reference.js';
import type { Credentials } from './auth.js';

/** How long a credential helper may take before it is killed. */
export const DEFAULT_HELPER_TIMEOUT_MS = 30_000;
/** Most bytes a credential helper may print (its answer is one small JSON object). */
const MAX_HELPER_OUTPUT = 64 * 1024;
/** Largest config.json Ferry reads. */
const MAX_DOCKER_CONFIG = 4 * 1024 * 1024;
/** What helpers print, with a non-zero exit, when they hold nothing for the server (credentials.ErrCredentialsNotFound). */
const NOT_FOUND_RE = /credentials not found/i;
/** A helper name becomes part of an executable's name: no path separators, no option-like names. */
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The parts of Docker's config.json that hold credentials. */
export interface DockerConfigFile {
  readonly auths?: Readonly<Record<string, { readonly auth?: string; readonly username?: string; readonly password?: string }>>;
  readonly credsStore?: string;
  readonly credHelpers?: Readonly<Record<string, string>>;
}

/** Where config.json says to look for one host's credentials. */
export interface DockerCredentialPlan {
  /** The helper to ask first (`credHelpers` for the host, else `credsStore`), and the server names to ask it for, in order. */
  readonly helper?: { readonly name: string; readonly servers: readonly string[]; readonly via: 'credHelpers' | 'credsStore' };
  /** Credentials stored in `auths`, used when there is no helper or it holds nothing for the host. */
  readonly stored?: Credentials;
}

/** Options for dockerCredentials. */
export interface DockerCredentialOptions {
  /**
   * Environment: `DOCKER_CONFIG` finds config.json, `PATH` finds helpers, and helpers run with it.
   * @default process.env
   */
  readonly env?: NodeJS.ProcessEnv;
  /** How long one helper call may take. @default DEFAULT_HELPER_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Stops a helper that is running (it is killed) and fails the lookup with ABORTED. */
  readonly signal?: AbortSignal;
}

/** Where Docker keeps config.json: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['DOCKER_CONFIG'] ?? join(env['HOME'] ?? homedir(), '.docker'), 'config.json');
}

/** The keys config.json may file a host's credentials under, the helper's server names first. */
export function dockerServerKeys(host: string): string[] {
  if (host === DOCKER_HUB || host === DOCKER_HUB_API_HOST || host === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', DOCKER_HUB, DOCKER_HUB_API_HOST, 'https://index.docker.io/v1'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
}

/** Parses config.json text; `file` names it in errors. */
export function parseDockerConfig(text: string, file: string): DockerConfigFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new FerryError('SECRET_UNRESOLVED', `${file}: cannot read Docker credentials: ${(err as Error).message}`, { file, cause: err });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new FerryError('SECRET_UNRESOLVED', `${file}: cannot read Docker credentials: not a JSON object`, { file });
  }
  const o = v as Record<string, unknown>;
  const record = (key: string): Record<string, unknown> | undefined => {
    const r = o[key];
    if (r === undefined || r === null) return undefined;
    if (typeof r !== 'object' || Array.isArray(r)) throw new FerryError('SECRET_UNRESOLVED', `${file}: "${key}" is not a JSON object`, { file });
    return r as Record<string, unknown>;
  };
  const helpers = record('credHelpers');
  for (const [k, h] of Object.entries(helpers ?? {})) {
    if (typeof h !== 'string' || !HELPER_NAME.test(h)) throw new FerryError('SECRET_UNRESOLVED', `${file}: credHelpers["${k}"] is not a helper name`, { file });
  }
  const store = o['credsStore'];
  if (store !== undefined && store !== '' && (typeof store !== 'string' || !HELPER_NAME.test(store))) {
    throw new FerryError('SECRET_UNRESOLVED', `${file}: credsStore is not a helper name`, { file });
  }
  return {
    ...(record('auths') ? { auths: record('auths') as DockerConfigFile['auths'] } : {}),
    ...(typeof store === 'string' && store !== '' ? { credsStore: store } : {}),
    ...(helpers ? { credHelpers: helpers as Record<string, string> } : {}),
  };
}

/** Decides, without running anything, which helper to ask for `host` and what `auths` holds for it. */
export function planDockerCredentials(cfg: DockerConfigFile, host: string): DockerCredentialPlan {
  const keys = dockerServerKeys(host);
  const own = keys.map((k) => cfg.credHelpers?.[k]).find((h) => h !== undefined && h !== '');
  const name = own ?? cfg.credsStore;
  let stored: Credentials | undefined;
  for (const k of keys) {
    const a = cfg.auths?.[k];
    if (!a) continue;
    if (typeof a.username === 'string' && typeof a.password === 'string') {
      stored = { username: a.username, password: a.password };
      break;
    }
    if (typeof a.auth === 'string' && a.auth !== '') {
      const dec = Buffer.from(a.auth, 'base64').toString('utf8');
      const i = dec.indexOf(':');
      if (i > 0) {
        stored = { username: dec.slice(0, i), password: dec.slice(i + 1) };
        break;
      }
    }
  }
  return {
    ...(name !== undefined ? { helper: { name, servers: keys.slice(0, 2), via: own !== undefined ? ('credHelpers' as const) : ('credsStore' as const) } } : {}),
    ...(stored ? { stored } : {}),
  };
}

/**
 * Looks up credentials for `host` the way `docker login` stored them: the credential helper
 * config.json names for it (or its `credsStore`), then `auths`; `origin` says which. Undefined
 * when none are stored (or there is no config.json). A helper that fails, is missing, prints something unreadable or
 * does not answer in time is an error naming the helper and the host.
 */
export async function dockerCredentials(host: string, opts: DockerCredentialOptions = {}): Promise<Credentials | undefined> {
  const env = opts.env ?? process.env;
  const file = dockerConfigPath(env);
  let text: string;
  try {
    const buf = await readFile(file, opts.signal ? { signal: opts.signal } : {});
    if (buf.length > MAX_DOCKER_CONFIG) throw new FerryError('SECRET_UNRESOLVED', `${file}: larger than ${MAX_DOCKER_CONFIG} bytes; not a Docker config.json`, { file });
    text = buf.toString('utf8');
  } catch (err) {
    if (isFerryError(err)) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (opts.signal?.aborted) throw new FerryError('ABORTED', `reading ${file} aborted`, { file, cause: err });
    throw new FerryError('SECRET_UNRESOLVED', `${file}: cannot read Docker credentials: ${(err as Error).message}`, { file, cause: err });
  }
  const plan = planDockerCredentials(parseDockerConfig(text, file), host);
  if (plan.helper) {
    for (const server of plan.helper.servers) {
      const c = await runCredentialHelper(plan.helper.name, server, {
        ...opts,
        env,
        what: `${plan.helper.via} in ${file} for ${host}`,
      });
      if (c) return { ...c, origin: `the credential helper docker-credential-${plan.helper.name} (${plan.helper.via} in ${file})` };
    }
  }
  return plan.stored && { ...plan.stored, origin: `"auths" in ${file}` };
}

/**
 * Runs `docker-credential-NAME get` with `server` on stdin. Returns the credentials, or
 * undefined when the helper says it holds none for that server.
 */
export function runCredentialHelper(
  name: string,
  server: string,
  opts: DockerCredentialOptions & { readonly what?: string } = {},
): Promise<Credentials | undefined> {
  const bin = `docker-credential-${name}`;
  const label = `credential helper ${bin}${opts.what ? ` (${opts.what})` : ''}`;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new FerryError('USAGE', `helper timeout must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(new FerryError('ABORTED', `${label}: aborted before it ran`));
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['get'], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let outBytes = 0;
    let settled = false;
    const finish = (err: FerryError | undefined, value?: Credentials): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        // Do not wait for the pipes to close: a helper's own children may hold them open.
        child.kill('SIGKILL');
        child.stdout.destroy();
        child.stderr.destroy();
        child.stdin.destroy();
        reject(err);
      } else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new FerryError('TIMEOUT', `${label} did not answer within ${timeoutMs / 1000} s for ${server}; it was stopped`, { op: 'credentials' })),
      timeoutMs,
    );
    const onAbort = (): void => finish(new FerryError('ABORTED', `${label}: aborted`, { op: 'credentials', cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? `${bin} is not on PATH` : `cannot run ${bin}: ${err.message}`;
      finish(new FerryError('SECRET_UNRESOLVED', `${label}: ${why}`, { op: 'credentials', cause: err }));
    });
    const collect = (into: Buffer[]) => (chunk: Buffer): void => {
      outBytes += chunk.length;
      if (outBytes > MAX_HELPER_OUTPUT) {
        finish(new FerryError('SECRET_UNRESOLVED', `${label} printed more than ${MAX_HELPER_OUTPUT} bytes for ${server}`, { op: 'credentials' }));
        return;
      }
      into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(errOut));
    // A helper that exits without reading stdin makes the write fail with EPIPE; its exit status says what happened.
    child.stdin.on('error', () => undefined);
    child.stdin.end(server);
    child.on('close', (code, sig) => {
      const stdout = Buffer.concat(out).toString('utf8').trim();
      if (code !== 0) {
        if (NOT_FOUND_RE.test(stdout)) return finish(undefined, undefined);
        // A JSON answer may hold a secret even when the helper then failed: never quote one.
        const said = stdout.startsWith('{') ? '' : firstLine(stdout) || firstLine(Buffer.concat(errOut).toString('utf8'));
        return finish(
          new FerryError('SECRET_UNRESOLVED', `${label} failed for ${server} (${sig ? `signal ${sig}` : `exit ${code}`})${said ? `: ${said}` : ''}`, { op: 'credentials' }),
        );
      }
      let j: unknown;
      try {
        j = JSON.parse(stdout);
      } catch {
        return finish(new FerryError('SECRET_UNRESOLVED', `${label} answered for ${server} with something that is not JSON`, { op: 'credentials' }));
      }
      const o = (typeof j === 'object' && j !== null ? j : {}) as Record<string, unknown>;
      const username = o['Username'];
      const secret = o['Secret'];
      if (typeof username !== 'string' || typeof secret !== 'string') {
        return finish(new FerryError('SECRET_UNRESOLVED', `${label} answered for ${server} without a string Username and Secret`, { op: 'credentials' }));
      }
      return finish(undefined, secret === '' ? undefined : { username, password: secret });
    });
  });
}

/** The first line of a helper's message, bounded (it goes into an error message). */
function firstLine(s: string): string {
  const line = s.trim().split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
