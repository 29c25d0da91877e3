/**
 * Retention of automatic bundles: keep the newest N in the output folder, and never delete one
 * the operator has not confirmed as imported when a confirmations file is configured.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FerryError } from '../errors/index.js';
import type { Store, StoreBundles } from '../store/index.js';

/** A bundle found in an output folder (by its `NAME.parts.json`). */
export interface BundleOnDisk {
  readonly id: string;
  readonly name: string;
  /** Sequence from the store's bundle records, when known. */
  readonly sequence: number | undefined;
  /** File names (no directory) that belong to the bundle. */
  readonly files: readonly string[];
}

/** Options for pruneBundles. */
export interface PruneOptions {
  readonly dir: string;
  /** How many of the newest bundles to keep. */
  readonly keep: number;
  /** A file listing imported bundle ids; when set, only confirmed bundles are deleted. */
  readonly confirmations?: string | undefined;
  /** Orders bundles by their recorded sequence (by name otherwise). */
  readonly store?: Pick<Store, 'bundles'>;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/** What pruneBundles did. */
export interface PruneResult {
  readonly removed: readonly string[];
  readonly kept: readonly string[];
  /** Old enough to go, but not confirmed as imported. */
  readonly unconfirmed: readonly string[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Reads the bundle ids a confirmations file lists: JSON (an array of ids, or of objects with
 * `id`/`bundleId`, or an object holding such an array under `bundles`/`imported`) or text with
 * one id at the start of each line (`#` starts a comment).
 */
export function parseConfirmations(text: string, file = 'confirmations'): Set<string> {
  const ids = new Set<string>();
  const t = text.trim();
  if (t.startsWith('[') || t.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (err) {
      throw new FerryError('CONFIG_INVALID', `${file}: not valid JSON: ${(err as Error).message}`, { file });
    }
    const take = (x: unknown): void => {
      if (typeof x === 'string') {
        if (ID_RE.test(x)) ids.add(x);
      } else if (Array.isArray(x)) {
        for (const e of x) take(e);
      } else if (x && typeof x === 'object') {
        const o = x as Record<string, unknown>;
        for (const k of ['id', 'bundleId']) if (typeof o[k] === 'string') take(o[k]);
        for (const k of ['bundles', 'imported']) if (Array.isArray(o[k])) take(o[k]);
      }
    };
    take(v);
    return ids;
  }
  for (const line of t.split(/\r?\n/)) {
    const token = line.replace(/#.*$/, '').trim().split(/\s+/)[0] ?? '';
    if (token !== '' && ID_RE.test(token)) ids.add(token);
  }
  return ids;
}

/** Lists the bundles in `dir` (each named by a readable `NAME.parts.json`), newest first. */
export async function listBundlesOnDisk(dir: string, bundles?: StoreBundles): Promise<BundleOnDisk[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FerryError('STORE_IO', `cannot list ${dir}: ${(err as Error).message}`, { op: 'prune', file: dir, cause: err });
  }
  const out: BundleOnDisk[] = [];
  for (const f of names) {
    const m = /^(.+)\.parts\.json$/.exec(f);
    if (!m || f.startsWith('.')) continue;
    const name = m[1]!;
    let id: unknown;
    try {
      id = (JSON.parse(await readFile(join(dir, f), 'utf8')) as Record<string, unknown>)['bundleId'];
    } catch {
      continue; // not ours or half-written: never delete what we cannot identify
    }
    if (typeof id !== 'string' || !ID_RE.test(id)) continue;
    // Only the file names the bundle format defines are ever deleted; import.sh is shared.
    const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const own = new RegExp(`^${esc}\\.(tar(\\.\\d{3,})?|parts\\.json(\\.sig)?)$`);
    out.push({ id, name, sequence: bundles?.get(id)?.sequence, files: names.filter((n) => own.test(n)).sort() });
  }
  return out.sort((a, b) => {
    if (a.sequence !== undefined && b.sequence !== undefined && a.sequence !== b.sequence) return b.sequence - a.sequence;
    return a.name < b.name ? 1 : a.name > b.name ? -1 : 0;
  });
}

/** The bundle ids a confirmations file lists; none when the file is not written yet (`onMissing` is told). */
export async function readConfirmations(file: string, onMissing?: () => void): Promise<Set<string>> {
  try {
    return parseConfirmations(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    onMissing?.();
    return new Set();
  }
}

/** Deletes bundles beyond the newest `keep`, sparing unconfirmed ones when confirmations are configured. */
export async function pruneBundles(opts: PruneOptions): Promise<PruneResult> {
  if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new FerryError('USAGE', `export.keep must be a positive integer, got ${String(opts.keep)}`);
  const all = await listBundlesOnDisk(opts.dir, opts.store?.bundles);
  const kept = all.slice(0, opts.keep);
  const old = all.slice(opts.keep);
  let confirmed: Set<string> | undefined;
  if (opts.confirmations !== undefined && old.length > 0) {
    const file = opts.confirmations;
    confirmed = await readConfirmations(file, () =>
      opts.logger?.warn({ file }, 'confirmations file not found: no bundle is confirmed as imported, none is deleted'),
    );
  }
  const removed: string[] = [];
  const unconfirmed: string[] = [];
  for (const b of old) {
    opts.signal?.throwIfAborted();
    if (confirmed && !confirmed.has(b.id)) {
      unconfirmed.push(b.name);
      continue;
    }
    // parts.json last: a bundle is listed until every part of it is gone.
    const order = [...b.files].sort((x, y) => Number(x.includes('.parts.json')) - Number(y.includes('.parts.json')));
    for (const f of order) await rm(join(opts.dir, f), { force: true });
    removed.push(b.name);
    opts.logger?.info({ bundle: b.id, files: b.files.length }, 'removed old bundle');
  }
  if (unconfirmed.length > 0) opts.logger?.info({ bundles: unconfirmed }, 'keeping old bundles not yet confirmed as imported');
  return { removed, kept: kept.map((b) => b.name), unconfirmed };
}
