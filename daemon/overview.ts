/**
 * The parts of the daemon's `/status` that come from the store rather than the schedules: its
 * size, what `ferry export` would carry now, and the bundles exported with their confirmation
 * state (the operator's confirmations file, as retention reads it). Bounded: at most
 * MAX_PENDING_SHOWN changes and MAX_BUNDLES_SHOWN bundles are listed, the rest counted.
 */
import { readFileSync } from 'node:fs';
import { uncarriedJournal } from '../bundle/export.js';
import type { Config } from '../config/index.js';
import { errorMessage } from '../errors/index.js';
import type { Store } from '../store/index.js';
import { parseConfirmations } from './retention.js';

/** How many pending changes /status lists (all are counted). */
export const MAX_PENDING_SHOWN = 100;
/** How many of the newest bundles /status lists. */
export const MAX_BUNDLES_SHOWN = 20;

/** What `ferry export` would carry now: the changes no bundle of the chain carried. */
export interface PendingExport {
  /** Journal entries not yet carried (a tag moved twice counts twice). */
  readonly entries: number;
  /** Tags that would travel (latest state of each), up to MAX_PENDING_SHOWN. */
  readonly tags: ReadonlyArray<{ readonly source: string | null; readonly target: string; readonly tag: string; readonly digest: string | null }>;
  /** Module versions that would travel, up to MAX_PENDING_SHOWN. */
  readonly modules: ReadonlyArray<{ readonly module: string; readonly version: string }>;
  /** Distinct tags and module versions in all (beyond what is listed). */
  readonly tagCount: number;
  readonly moduleCount: number;
}

/** One exported bundle and whether the inside confirmed it imported. */
export interface ExportedBundle {
  readonly id: string;
  readonly sequence: number;
  readonly createdAt: string;
  /** The sources an `export --only` carried; null: every source. */
  readonly sources: readonly string[] | null;
  /** True or false from `export.confirmations`; null when no confirmations file is configured. */
  readonly confirmed: boolean | null;
}

/** The store's side of /status. */
export interface StoreOverview {
  readonly storeSize: { readonly blobs: number; readonly bytes: number; readonly tags: number; readonly moduleVersions: number };
  readonly pendingExport: PendingExport;
  readonly bundles: readonly ExportedBundle[];
  /** Bundles recorded in the store in all. */
  readonly bundleCount: number;
  /** Why the confirmations file could not be read, when it could not. */
  readonly confirmationsError: string | null;
}

/** Reads the store's side of /status. */
export function storeOverview(store: Store, config: Config): StoreOverview {
  const stats = store.stats();
  const entries = uncarriedJournal(store, store.bundles.last());
  const tags = new Map<string, PendingExport['tags'][number]>();
  const modules = new Map<string, PendingExport['modules'][number]>();
  for (const e of entries) {
    if (e.kind === 'tag' && e.tag !== undefined) {
      const target = e.target ?? `${e.registry ?? ''}/${e.repository ?? ''}`;
      tags.set(`${e.source ?? ''}\0${target}:${e.tag}`, { source: e.source ?? null, target, tag: e.tag, digest: e.digest ?? null });
    } else if (e.kind === 'module' && e.module !== undefined && e.version !== undefined) {
      modules.set(`${e.module}@${e.version}`, { module: e.module, version: e.version });
    }
  }
  let confirmed: Set<string> | undefined;
  let confirmationsError: string | null = null;
  const file = config.export?.confirmations;
  if (file !== undefined) {
    try {
      confirmed = parseConfirmations(readFileSync(file, 'utf8'), file);
    } catch (err) {
      // A confirmations file not written yet means nothing is confirmed; any other failure is shown.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') confirmed = new Set();
      else confirmationsError = errorMessage(err);
    }
  }
  const all = store.bundles.list();
  const newest = [...all].sort((a, b) => b.sequence - a.sequence).slice(0, MAX_BUNDLES_SHOWN);
  return {
    storeSize: { blobs: stats.blobs, bytes: stats.bytes, tags: stats.tags, moduleVersions: stats.moduleVersions },
    pendingExport: {
      entries: entries.length,
      tags: [...tags.values()].slice(0, MAX_PENDING_SHOWN),
      modules: [...modules.values()].slice(0, MAX_PENDING_SHOWN),
      tagCount: tags.size,
      moduleCount: modules.size,
    },
    bundles: newest.map((b) => ({ id: b.id, sequence: b.sequence, createdAt: b.createdAt, sources: b.sources, confirmed: confirmed ? confirmed.has(b.id) : null })),
    bundleCount: all.length,
    confirmationsError,
  };
}
