/**
 * Whole-store views that read every family: the end-to-end check (fsck) and the counts of the
 * status pages. Both only read; fsck reports and repairs nothing.
 */
import { FerryError } from '../errors/index.js';
import { INDEX_MEDIA_TYPES, isNonDistributableMediaType, type Digest } from '../oci/index.js';
import type { BlobFiles } from './blobs.js';
import type { StoreContent } from './content.js';
import type { IndexDb } from './db.js';
import type { StoreModules } from './modules.js';
import type { StoreTags } from './tags.js';
import type { FsckOptions, FsckProblem, FsckResult, StoreStats } from './types.js';

/** The parts fsck reads. */
export interface FsckParts {
  readonly dir: string;
  readonly files: BlobFiles;
  readonly content: StoreContent;
  readonly tags: StoreTags;
  readonly modules: StoreModules;
  /** Files a killed gc left to delete (their rows are gone): not damage, the next gc deletes them. */
  readonly pendingDeletes?: ReadonlySet<Digest>;
}

function throwIfAborted(dir: string, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new FerryError('ABORTED', `fsck of ${dir} aborted`, { op: 'fsck', file: dir, cause: signal.reason });
}

/**
 * Checks the store end to end: re-hashes every blob file, finds files without a row,
 * references of image manifests to unstored blobs, tags whose manifest or kept children
 * are missing, and module versions whose files are missing. Reports; repairs nothing. Blobs
 * nothing uses (an interrupted sync or import leaves them) are listed apart: not damage.
 */
export async function fsck(p: FsckParts, opts: FsckOptions = {}): Promise<FsckResult> {
  const problems: FsckProblem[] = [];
  const rows = p.content.allBlobRows();
  const present = new Set<Digest>();
  let checked = 0;
  let bytes = 0;
  for (const row of rows) {
    throwIfAborted(p.dir, opts.signal);
    const h = await p.files.hashFile(row.digest, opts.signal);
    checked++;
    if (!h) {
      problems.push({ kind: 'missing', digest: row.digest, detail: `indexed blob has no file at ${p.files.path(row.digest)}` });
    } else {
      bytes += h.size;
      if (h.size !== row.size) {
        problems.push({ kind: 'size', digest: row.digest, detail: `file has ${h.size} bytes, index says ${row.size}` });
      } else if (h.digest !== row.digest) {
        problems.push({ kind: 'corrupt', digest: row.digest, detail: `file content hashes to ${h.digest}` });
      } else {
        present.add(row.digest);
      }
    }
    opts.onProgress?.({ checked, total: rows.length, bytes });
  }
  const indexed = new Set(rows.map((r) => r.digest));
  for await (const f of p.files.walk()) {
    if (f.digest !== undefined && p.pendingDeletes?.has(f.digest) && !indexed.has(f.digest)) continue;
    if (f.digest === undefined || !indexed.has(f.digest)) {
      problems.push({ kind: 'orphan-file', ...(f.digest ? { digest: f.digest } : {}), detail: `file ${f.path} has no index row` });
    }
  }
  // Index children may be absent on purpose (platform filtering); the tags' kept sets say which must exist.
  // Foreign (non-distributable) layers are left out at sync by design: reported, not problems.
  const foreignLayers = new Set<Digest>();
  for (const r of p.content.danglingRefs(false, INDEX_MEDIA_TYPES)) {
    if (isNonDistributableMediaType(r.mediaType)) {
      foreignLayers.add(r.digest);
      continue;
    }
    problems.push({ kind: 'dangling-ref', digest: r.digest, detail: `manifest ${r.manifest} references ${r.mediaType} ${r.digest}, which is not stored` });
  }
  for (const t of p.tags.list()) {
    for (const d of [t.digest, ...t.keptDigests]) {
      if (!p.content.hasManifest(d) || !present.has(d)) {
        const what = d === t.digest ? 'manifest' : 'kept child manifest';
        problems.push({ kind: 'tag-missing-manifest', digest: d, detail: `tag ${t.registry}/${t.repository}:${t.tag}: ${what} ${d} is missing or damaged` });
      }
    }
  }
  for (const m of p.modules.missingBlobs()) {
    problems.push({ kind: 'module-missing-blob', digest: m.digest, detail: `${m.module}@${m.version}: .${m.file} blob ${m.digest} is not stored` });
  }
  return { checked, problems, foreignLayers: [...foreignLayers].sort(), unreferenced: p.content.unreferencedBlobs() };
}

/** Counts for status pages. */
export function storeStats(db: IndexDb): StoreStats {
  return db.run('stats', () => {
    const one = (sql: string): number => (db.sql.prepare(sql).pluck().get() as number | null) ?? 0;
    return {
      blobs: one('SELECT COUNT(*) FROM blobs'),
      bytes: one('SELECT COALESCE(SUM(size), 0) FROM blobs'),
      manifests: one('SELECT COUNT(*) FROM manifests'),
      tags: one('SELECT COUNT(*) FROM tags'),
      sources: one('SELECT COUNT(*) FROM (SELECT source FROM tags UNION SELECT source FROM source_states)'),
      moduleVersions: one('SELECT COUNT(*) FROM module_versions'),
      journalSeq: one('SELECT COALESCE(MAX(seq), 0) FROM journal'),
    };
  });
}
