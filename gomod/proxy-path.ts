/**
 * The GOPROXY protocol's file layout (go.dev/ref/mod#goproxy-protocol): where each file of a
 * module lives under a proxy root, as the client asks for it and as bundles and served trees
 * lay it out.
 */
import { FerryError } from '../errors/index.js';
import { escapePath, escapeVersion } from './escape.js';

/** Largest @v/list, .info or @latest body accepted. */
export const MAX_METADATA_BYTES = 4 * 1024 * 1024;

/** Which proxy file: the version list, a version's .info/.mod/.zip, or @latest. */
export type ProxyFileKind = 'list' | 'info' | 'mod' | 'zip' | 'latest';

/**
 * The case-encoded path of a proxy file relative to the proxy root, e.g.
 * `github.com/!azure/azure-sdk/@v/v1.0.0.zip` or `example.com/m/@latest`.
 */
export function proxyPath(module: string, kind: ProxyFileKind, version?: string): string {
  const base = escapedPath(module);
  switch (kind) {
    case 'list':
      return `${base}/@v/list`;
    case 'latest':
      return `${base}/@latest`;
    default:
      if (version === undefined) throw new FerryError('VERSION_INVALID', `${module}: a version is needed for .${kind}`, { module });
      return `${base}/@v/${escapeVersion(version)}.${kind}`;
  }
}

/**
 * Module paths already checked and escaped: a sync asks for each module's files several times
 * (list, then .info, .mod and .zip of every version), and the check is not free. Bounded.
 */
const escapedPaths = new Map<string, string>();

function escapedPath(module: string): string {
  let e = escapedPaths.get(module);
  if (e === undefined) {
    e = escapePath(module);
    if (escapedPaths.size >= 4096) escapedPaths.clear();
    escapedPaths.set(module, e);
  }
  return e;
}
