/**
 * Merging a bundle's checksum-database files (`gomod/sumdb/<name>/…`) into what a target already
 * keeps, shared by the Go module tree and the store. Bundles may arrive out of order (an older
 * disc imported after a newer one), and a go client that cached a newer head refuses an older
 * `latest` only if it cannot prove it a prefix, but it never needs it: so `latest` only moves
 * forward, lookups follow the newest head, and tiles (content named by its path) never change.
 */
import { FerryError, errorMessage } from '../errors/index.js';
import { parseTree, type Tree } from '../sumdb/tlog.js';

/** Where a bundle keeps checksum-database files. */
export const SUMDB_PREFIX = 'gomod/sumdb/';

/** The kinds of file under `sumdb/<name>/`, each merged by its own rule. */
export type SumdbFileKind = 'latest' | 'supported' | 'lookup' | 'tile' | 'other';

/** Splits `gomod/sumdb/<name>/<rel>` (undefined for other paths or a malformed name). */
export function splitSumdbPath(path: string): { name: string; rel: string } | undefined {
  if (!path.startsWith(SUMDB_PREFIX)) return undefined;
  const m = /^([^/]+)\/(.+)$/.exec(path.slice(SUMDB_PREFIX.length));
  if (!m) return undefined;
  const [, name = '', rel = ''] = m;
  // The bundle is signed, but a path element still must not climb out of the target.
  if (name === '.' || name === '..' || rel.split('/').some((e) => e === '' || e === '.' || e === '..')) return undefined;
  return { name, rel };
}

/** The merge rule a database file falls under. */
export function sumdbFileKind(rel: string): SumdbFileKind {
  if (rel === 'latest') return 'latest';
  if (rel === 'supported') return 'supported';
  if (rel.startsWith('lookup/')) return 'lookup';
  if (rel.startsWith('tile/')) return 'tile';
  return 'other';
}

/**
 * The tree a signed tree note states, read without checking its signature: the importer has no
 * checksum-database key, and the bundle that carried the note is itself signed and verified.
 */
export function noteTree(note: Buffer, file: string): Tree {
  const split = note.lastIndexOf('\n\n');
  try {
    if (split < 0) throw new Error('no signature block');
    return parseTree(note.subarray(0, split + 1).toString('utf8'));
  } catch (err) {
    throw new FerryError('SUMDB_INVALID', `${file}: not a checksum-database tree note: ${errorMessage(err)}`, { file, cause: err });
  }
}

/** What to do with a bundle's database files, decided from its `latest` and the kept one. */
export interface SumdbMergePlan {
  /** Replace the kept `latest` with the bundle's. */
  readonly replaceLatest: boolean;
  /** The bundle's head is at least as new as the kept one: its lookups replace kept lookups. */
  readonly current: boolean;
  /** Tree sizes, for messages (undefined when absent). */
  readonly incomingSize: number | undefined;
  readonly keptSize: number | undefined;
}

/**
 * Compares the bundle's `latest` with the kept one. A head of the same size with another root
 * hash is a fork of the log: SUMDB_INCONSISTENT, before anything is written.
 */
export function planSumdbMerge(name: string, incoming: Buffer | undefined, kept: Buffer | undefined, where: string): SumdbMergePlan {
  const inTree = incoming !== undefined ? noteTree(incoming, `${SUMDB_PREFIX}${name}/latest`) : undefined;
  let keptTree: Tree | undefined;
  if (kept !== undefined) {
    try {
      keptTree = noteTree(kept, `${where}: sumdb/${name}/latest`);
    } catch {
      // An unreadable kept head is replaced by a readable one rather than blocking every import.
      keptTree = undefined;
    }
  }
  const sizes = { incomingSize: inTree?.n, keptSize: keptTree?.n };
  if (!inTree) return { replaceLatest: false, current: false, ...sizes };
  if (!keptTree) return { replaceLatest: true, current: true, ...sizes };
  if (inTree.n === keptTree.n) {
    if (!inTree.hash.equals(keptTree.hash)) {
      throw new FerryError(
        'SUMDB_INCONSISTENT',
        `checksum database ${name}: the bundle's tree#${inTree.n} (${inTree.hash.toString('base64')}) differs from tree#${keptTree.n} (${keptTree.hash.toString('base64')}) already in ${where}: the log was forked`,
        { op: 'import' },
      );
    }
    return { replaceLatest: false, current: true, ...sizes };
  }
  return inTree.n > keptTree.n ? { replaceLatest: true, current: true, ...sizes } : { replaceLatest: false, current: false, ...sizes };
}
