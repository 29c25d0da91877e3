/** Image references: `[registry/]repository[:tag][@digest]`, with Docker Hub naming rules. */
import { FerryError } from '../errors/index.js';
import { isDigest, type Digest } from './digest.js';

/** The registry name Docker Hub references use. */
export const DOCKER_HUB = 'docker.io';
/** The host Docker Hub's API is served from. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

/** A parsed image reference. */
export interface Reference {
  /** Registry host[:port] as written (docker.io for Docker Hub). */
  readonly registry: string;
  /** Repository path, e.g. library/golang. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

const REPO_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;

/** True when `s` is a valid tag. */
export function isValidTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** True when `s` is a valid repository path (lowercase components separated by '/'). */
export function isValidRepository(s: string): boolean {
  return s.length > 0 && s.length <= 255 && s.split('/').every((c) => REPO_COMPONENT.test(c));
}

/** The API host for a registry name: docker.io (and index.docker.io) → registry-1.docker.io. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB || registry === 'index.docker.io' ? DOCKER_HUB_API_HOST : registry;
}

/** The canonical registry name for a host: registry-1.docker.io and index.docker.io → docker.io. */
export function canonicalRegistry(host: string): string {
  return host === DOCKER_HUB_API_HOST || host === 'index.docker.io' ? DOCKER_HUB : host;
}

/**
 * Parses a reference. A first component that contains '.' or ':' or is 'localhost' is a
 * registry; otherwise the registry is docker.io and a single-component repository gains
 * `library/` (so `golang` is `docker.io/library/golang`).
 */
export function parseReference(input: string, opts: { allowNoTag?: boolean } = {}): Reference {
  const fail = (why: string): FerryError =>
    new FerryError('REFERENCE_INVALID', `invalid image reference "${input}": ${why}`, { reference: input });
  let rest = input.trim();
  if (rest === '') throw fail('empty');
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw fail(`"${d}" is not a sha256 digest`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let registry = DOCKER_HUB;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = canonicalRegistry(first);
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw fail(`"${tag}" is not a valid tag`);
  }
  let repository = rest;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!isValidRepository(repository)) {
    throw fail(`"${repository}" is not a valid repository (lowercase letters, digits, separators . _ - /)`);
  }
  if (!opts.allowNoTag && tag === undefined && digest === undefined) {
    // A bare repository is fine for sources; callers that need a tag pass allowNoTag=false and check.
  }
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** Formats a reference as `registry/repository[:tag][@digest]`. */
export function formatReference(r: Reference): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}
