/** Secret references (`env:NAME`, `file:PATH`) and credentials from Docker's config.json. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { FerryError } from '../errors/index.js';
import { DOCKER_HUB, DOCKER_HUB_API_HOST } from '../oci/reference.js';

/** Credentials for one host. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Resolves `env:NAME` or `file:PATH` (relative to `baseDir`); any other string is returned as
 * it is (usernames may be literal). The value itself never appears in an error.
 */
export function resolveSecret(ref: string, where: string, baseDir = process.cwd()): string {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const v = process.env[name];
    if (v === undefined || v === '') {
      throw new FerryError('SECRET_UNRESOLVED', `${where}: environment variable ${name} is not set`);
    }
    return v;
  }
  if (ref.startsWith('file:')) {
    const p = ref.slice(5);
    const path = isAbsolute(p) ? p : resolve(baseDir, p);
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new FerryError('SECRET_UNRESOLVED', `${where}: cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  return ref;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** Where Docker keeps config.json: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['DOCKER_CONFIG'] ?? join(homedir(), '.docker'), 'config.json');
}

function hostKeys(host: string): string[] {
  if (host === DOCKER_HUB || host === DOCKER_HUB_API_HOST || host === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', DOCKER_HUB, DOCKER_HUB_API_HOST, 'https://index.docker.io/v1'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
}

/**
 * Looks up credentials for `host` the way `docker login` stored them: a credential helper
 * (`credHelpers[host]` or `credsStore`) or a base64 `auth` entry. Returns undefined when none.
 */
export function dockerCredentials(host: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  const path = dockerConfigPath(env);
  let cfg: DockerConfigFile;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8')) as DockerConfigFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FerryError('SECRET_UNRESOLVED', `${path}: cannot read Docker credentials: ${(err as Error).message}`, { file: path });
  }
  const keys = hostKeys(host);
  const helper = keys.map((k) => cfg.credHelpers?.[k]).find((h) => h !== undefined) ?? cfg.credsStore;
  if (helper) {
    for (const k of keys.slice(0, 2)) {
      const r = spawnSync(`docker-credential-${helper}`, ['get'], { input: k, encoding: 'utf8', timeout: 30_000 });
      if (r.status === 0 && r.stdout) {
        try {
          const j = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
          if (j.Username !== undefined && j.Secret !== undefined) return { username: j.Username, password: j.Secret };
        } catch {
          // a helper that prints something else has no usable entry
        }
      }
    }
  }
  for (const k of keys) {
    const a = cfg.auths?.[k];
    if (!a) continue;
    if (a.username !== undefined && a.password !== undefined) return { username: a.username, password: a.password };
    if (a.auth) {
      const dec = Buffer.from(a.auth, 'base64').toString('utf8');
      const i = dec.indexOf(':');
      if (i > 0) return { username: dec.slice(0, i), password: dec.slice(i + 1) };
    }
  }
  return undefined;
}
