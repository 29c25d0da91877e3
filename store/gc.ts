/**
 * Garbage collection: removes the manifests and blobs nothing live needs. Live is every tag of
 * the sources kept (their manifests, kept children and everything below them), every Go module
 * version's files and every checksum-database file; tags of sources no longer configured are
 * dropped first. Content younger than `minAgeMs` stays, since a sync or import running beside gc
 * stores content before it records what uses it. The index stays bounded: old run rows go, and,
 * given `journalCovered` (from the confirmed bundles), the journal entries they cover.
 *
 * Crash safety: the rows go in one durable transaction that also records the digests whose
 * files are to be deleted (`gc.pending` in meta); the files go after, then the record. A kill at
 * any moment leaves either the old index, or rows gone and files listed as pending, which fsck
 * does not count as damage and the next gc deletes first.
 */
import { INDEX_MEDIA_TYPES, type Digest } from '../oci/index.js';
import type { BlobFiles } from './blobs.js';
import type { IndexDb } from './db.js';

/** The meta key listing blob files whose rows a gc deleted and whose files it had not yet removed. */
export const GC_PENDING_KEY = 'gc.pending';

/** Finished run rows kept (the newest); older ones go at each gc, so the index stays bounded. */
export const KEEP_RUNS = 1000;

/** Options for a gc pass. */
export interface GcOptions {
  /** Sources whose tags are live; tags of any other source are dropped. Undefined: every source in the store. */
  readonly keepSources?: ReadonlySet<string>;
  /** Report only; change nothing. @default false */
  readonly dryRun?: boolean;
  /** Content recorded less than this long ago is never collected. @default 3600000 (one hour) */
  readonly minAgeMs?: number;
  readonly now?: () => Date;
  /**
   * Per source (a tag's image entry, a module's root; undefined for an entry without one), the
   * journal seq up to which every export still allowed has carried its changes: every entry up
   * to it is compacted but each tag's and module version's newest, unless that newest is a
   * tag's removal. Undefined: no bundle is confirmed and the journal stays whole.
   */
  readonly journalCovered?: (source: string | undefined) => number;
  /**
   * Digests kept (with everything they reach) whatever uses them: in a store `ferry import
   * --store` fills, every image and blob an imported bundle carried, since a later bundle lists those in `requires` instead of carrying
   * them again (its exporter cannot know what a gc inside removed).
   */
  readonly keepDigests?: ReadonlySet<string>;
  /** Keep every manifest (with what it reaches): an imported store's ledger does not list the manifests its bundles carried. */
  readonly keepManifests?: boolean;
}

/** What a gc pass removed (or, in a dry run, would remove). */
export interface GcResult {
  readonly dryRun: boolean;
  /** Sources no longer configured whose tags were dropped, with how many tags each had. */
  readonly droppedSources: ReadonlyArray<{ readonly source: string; readonly tags: number }>;
  readonly manifests: number;
  readonly blobs: number;
  readonly bytes: number;
  /** Files a killed earlier gc left to delete, deleted now. */
  readonly resumed: number;
  /** Finished run rows older than the newest KEEP_RUNS, removed (or that would be). */
  readonly runs: number;
  /** Journal entries every confirmed bundle covers, compacted (or that would be). */
  readonly journal: number;
}

interface Candidate {
  digest: Digest;
  size: number;
}

/** Runs one gc pass over the store's index and blob files. */
export async function collectGarbage(db: IndexDb, files: BlobFiles, opts: GcOptions = {}): Promise<GcResult> {
  const dryRun = opts.dryRun === true;
  const resumed = dryRun ? 0 : await finishPending(db, files);
  const cutoff = new Date((opts.now ?? (() => new Date()))().getTime() - (opts.minAgeMs ?? 3_600_000)).toISOString();
  const sql = db.sql;
  const oldRuns = `FROM runs WHERE status != 'running' AND id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ${KEEP_RUNS})`;
  const plan = (): { dropped: Array<{ source: string; tags: number }>; manifests: Digest[]; blobs: Candidate[]; runs: number; journal: number[] } => {
    const bySource = sql.prepare('SELECT source, COUNT(*) AS tags FROM tags GROUP BY source ORDER BY source').all() as Array<{ source: string; tags: number }>;
    const dropped = opts.keepSources ? bySource.filter((s) => !opts.keepSources!.has(s.source)) : [];
    const droppedSet = new Set(dropped.map((d) => d.source));
    // Live manifests: every kept tag's root and kept children, and everything their references reach.
    const live = new Set<string>();
    const stack: string[] = [];
    for (const t of sql.prepare('SELECT source, digest, kept_digests FROM tags').all() as Array<{ source: string; digest: string; kept_digests: string }>) {
      if (droppedSet.has(t.source)) continue;
      stack.push(t.digest, ...(JSON.parse(t.kept_digests) as string[]));
    }
    // Kept digests are roots too: a kept image's children and blobs stay with it.
    stack.push(...(opts.keepDigests ?? []));
    if (opts.keepManifests === true) stack.push(...(sql.prepare('SELECT digest FROM manifests').pluck().all() as string[]));
    const refs = sql.prepare('SELECT digest, media_type FROM manifest_refs WHERE manifest = ?');
    const isManifest = sql.prepare('SELECT 1 FROM manifests WHERE digest = ?').pluck();
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (live.has(d)) continue;
      live.add(d);
      for (const r of refs.all(d) as Array<{ digest: string; media_type: string }>) {
        if (!live.has(r.digest) && (INDEX_MEDIA_TYPES.includes(r.media_type) || isManifest.get(r.digest) !== undefined)) stack.push(r.digest);
        else live.add(r.digest);
      }
    }
    const manifests = (sql.prepare('SELECT digest FROM manifests WHERE created_at < ? ORDER BY digest').pluck().all(cutoff) as Digest[]).filter((d) => !live.has(d));
    const gone = new Set<string>(manifests);
    // Blobs nothing live uses: not a live manifest or reference, not a kept tag's digest, no module or sumdb file.
    const used = new Set<string>(live);
    const one = (q: string): void => {
      for (const d of sql.prepare(q).pluck().all() as string[]) used.add(d);
    };
    one('SELECT info_digest FROM module_versions');
    one('SELECT mod_digest FROM module_versions');
    one('SELECT zip_digest FROM module_versions WHERE zip_digest IS NOT NULL');
    one('SELECT digest FROM sumdb_files');
    for (const r of sql.prepare('SELECT manifest, digest FROM manifest_refs').all() as Array<{ manifest: string; digest: string }>) if (!gone.has(r.manifest)) used.add(r.digest);
    const blobs = (sql.prepare('SELECT digest, size, created_at FROM blobs ORDER BY digest').all() as Array<{ digest: Digest; size: number; created_at: string }>)
      .filter((b) => !used.has(b.digest) && (b.created_at < cutoff || gone.has(b.digest)))
      .filter((b) => !isManifest.get(b.digest) || gone.has(b.digest))
      .map((b) => ({ digest: b.digest, size: b.size }));
    return { dropped, manifests, blobs, runs: sql.prepare(`SELECT COUNT(*) ${oldRuns}`).pluck().get() as number, journal: coveredJournal() };
  };
  // Journal entries at or below their source's coverage that a later entry of the same tag or
  // module version supersedes, and covered tag removals: an export from the newest confirmed
  // bundle (or a later one) reads only entries above the coverage, and a full export only the
  // newest entry of each live tag and module version, which stays.
  const coveredJournal = (): number[] => {
    const covered = opts.journalCovered;
    if (!covered) return [];
    const bound = new Map<string | null, number>();
    for (const s of sql.prepare('SELECT DISTINCT source FROM journal').pluck().all() as Array<string | null>) bound.set(s, covered(s ?? undefined));
    const rows = sql
      .prepare(
        `SELECT j.seq, j.source FROM journal j
          WHERE (j.kind = 'tag' AND (j.digest IS NULL OR EXISTS (SELECT 1 FROM journal k WHERE k.kind = 'tag' AND k.seq > j.seq
                   AND k.source IS j.source AND k.registry IS j.registry AND k.repository IS j.repository AND k.tag IS j.tag)))
             OR (j.kind = 'module' AND EXISTS (SELECT 1 FROM journal k WHERE k.kind = 'module' AND k.seq > j.seq AND k.module IS j.module AND k.version IS j.version))
          ORDER BY j.seq`,
      )
      .all() as Array<{ seq: number; source: string | null }>;
    return rows.filter((r) => r.seq <= (bound.get(r.source) ?? 0)).map((r) => r.seq);
  };

  if (dryRun) {
    const p = db.run('gcPlan', plan);
    return { dryRun, droppedSources: p.dropped, manifests: p.manifests.length, blobs: p.blobs.length, bytes: p.blobs.reduce((n, b) => n + b.size, 0), resumed, runs: p.runs, journal: p.journal.length };
  }
  db.assertWritable('gc');
  const p = db.durable('gc', () => {
    const q = plan();
    const delTags = sql.prepare('DELETE FROM tags WHERE source = ?');
    for (const s of q.dropped) delTags.run(s.source);
    const delManifest = sql.prepare('DELETE FROM manifests WHERE digest = ?');
    const delRefs = sql.prepare('DELETE FROM manifest_refs WHERE manifest = ?');
    for (const d of q.manifests) {
      delRefs.run(d);
      delManifest.run(d);
    }
    const delBlob = sql.prepare('DELETE FROM blobs WHERE digest = ?');
    for (const b of q.blobs) delBlob.run(b.digest);
    sql.prepare(`DELETE ${oldRuns}`).run();
    const delJournal = sql.prepare('DELETE FROM journal WHERE seq = ?');
    for (const seq of q.journal) delJournal.run(seq);
    // In the same commit as the rows: the files to delete, so a kill before they go loses nothing.
    if (q.blobs.length > 0) sql.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(GC_PENDING_KEY, JSON.stringify(q.blobs.map((b) => b.digest)));
    return q;
  });
  await finishPending(db, files);
  return { dryRun, droppedSources: p.dropped, manifests: p.manifests.length, blobs: p.blobs.length, bytes: p.blobs.reduce((n, b) => n + b.size, 0), resumed, runs: p.runs, journal: p.journal.length };
}

/** Digests whose rows a gc deleted and whose files may still be there. */
export function pendingGcFiles(db: IndexDb): Set<Digest> {
  const v = db.getMeta(GC_PENDING_KEY);
  return new Set(v === undefined ? [] : (JSON.parse(v) as Digest[]));
}

/** Deletes the files an earlier gc listed (those still there without a row), then the list; returns how many it deleted. */
async function finishPending(db: IndexDb, files: BlobFiles): Promise<number> {
  const pending = [...pendingGcFiles(db)];
  if (pending.length === 0) return 0;
  const indexed = db.sql.prepare('SELECT 1 FROM blobs WHERE digest = ?').pluck();
  let n = 0;
  for (const d of pending) {
    // Stored again since (a sync wrote it back): the file is the row's now.
    if (indexed.get(d) !== undefined || files.fileSize(d) === undefined) continue;
    await files.remove(d);
    n++;
  }
  db.write('gcPendingDone', () => db.sql.prepare('DELETE FROM meta WHERE key = ?').run(GC_PENDING_KEY));
  return n;
}
