/**
 * Export: chooses what a bundle carries from the store's journal and bundle history, then
 * streams it into the bundle writer. Incremental by default: every tag and module version
 * that changed since the parent, and only blobs no bundle of the parent's chain carried.
 */
import type { KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, FerryError } from '../errors/index.js';
import { proxyPath } from '../gomod/index.js';
import { compare as compareVersions, isPseudoVersion } from '../gomod/semver.js';
import { ALL_ATTACHMENTS, copy, digestHex, isIndexMediaType, type Closure, type Digest } from '../oci/index.js';
import { StoreSource, type BundleRow, type JournalEntry, type ModuleVersionRow, type SourceTagKey, type Store, type StoreBundles, type TagRow } from '../store/index.js';
import { bundleFileName, GOMOD_DIR, newBundleId, type BundleFile, type BundleLifecycle, type BundleModule, type BundlePrunedTag } from './format.js';
import { IMPORT_SCRIPT } from './import-script.js';
import { loadPrivateKey } from './keys.js';
import { sumdbBundleEntries } from './sumdb.js';
import { BundleImageSink } from './media.js';
import { bufferEntry, writeBundle, type BundleEntry, type WriteProgress } from './writer.js';

/** Options for exportBundle. */
export interface ExportOptions {
  readonly store: Store;
  readonly outDir: string;
  /** Path of the PKCS#8 PEM signing key. */
  readonly signingKey: string;
  readonly passphrase?: string;
  /** Carry everything, with no parent. */
  readonly full?: boolean;
  /** Parent bundle (id or sequence) instead of the last one exported. */
  readonly since?: string | number;
  readonly splitSize?: number;
  /** Only these sources (image names or module roots). */
  readonly only?: readonly string[];
  /** The configuration's deprecated and archived sources, recorded in the bundle for the importers to announce. */
  readonly lifecycle?: readonly BundleLifecycle[];
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
  readonly onProgress?: (p: WriteProgress) => void;
  /** Rows read (journal entries, tags) and tags copied per page; tests make pages small to reach their edges. */
  readonly pageSize?: number;
}

/** What exportBundle wrote. */
export interface ExportResult {
  readonly id: string;
  readonly sequence: number;
  readonly parent: string | null;
  /** The sources carried (`only`), or null for every source. */
  readonly sources: readonly string[] | null;
  readonly name: string;
  /** Absolute paths written. */
  readonly files: readonly string[];
  readonly bytes: number;
  readonly images: number;
  readonly modules: number;
  /** Tags the bundle removes inside (`prune: true`). */
  readonly pruned: number;
  readonly blobs: number;
  readonly requires: number;
  /** Foreign (non-distributable) layers the manifests name and the bundle does not carry, by design. */
  readonly foreignLayers: readonly string[];
  /** True when nothing changed since the parent (the bundle carries no image and no module). */
  readonly empty: boolean;
}

/** Resolves the parent bundle for an export: none for full, `since`, or the last exported. */
export function chooseParent(bundles: StoreBundles, opts: { full?: boolean; since?: string | number }): BundleRow | undefined {
  if (opts.full) return undefined;
  if (opts.since !== undefined) {
    const key = typeof opts.since === 'string' && /^\d+$/.test(opts.since) ? Number(opts.since) : opts.since;
    const b = bundles.get(key);
    if (!b) {
      const known = bundles.list().map((x) => `${x.sequence} (${x.id})`);
      throw new FerryError('USAGE', `--since ${opts.since}: no such bundle exported from this store (known: ${known.join(', ') || 'none'})`);
    }
    return b;
  }
  return bundles.last();
}

/**
 * What the chain ending at `parent` carried, per source: the journal seq up to which each
 * source's changes travelled. A bundle carried every source's entries up to its `seqTo`, or
 * only those of its `sources` (an `export --only`); for any other source the nearest ancestor
 * that carried it decides. `floor` is the lowest of them all (the nearest bundle that carried
 * every source), below which nothing needs reading.
 */
export function chainCoverage(bundles: StoreBundles, parent: BundleRow | undefined): { readonly floor: number; carriedTo(source: string | undefined): number } {
  const chain: Array<{ seqTo: number; sources: ReadonlySet<string> | null }> = [];
  for (let cur = parent; cur; cur = cur.parentId ? bundles.get(cur.parentId) : undefined) {
    chain.push({ seqTo: cur.seqTo, sources: cur.sources === null ? null : new Set(cur.sources) });
    if (cur.sources === null) break; // every source was carried up to here, so its ancestors decide nothing
  }
  const last = chain[chain.length - 1];
  const floor = last && last.sources === null ? last.seqTo : 0;
  const memo = new Map<string | undefined, number>();
  return {
    floor,
    carriedTo(source) {
      let to = memo.get(source);
      if (to === undefined) {
        to = chain.find((b) => b.sources === null || (source !== undefined && b.sources.has(source)))?.seqTo ?? 0;
        memo.set(source, to);
      }
      return to;
    },
  };
}

/** Tag rows and journal entries read, and tags copied into the bundle's image side, per page. */
const EXPORT_PAGE = 1000;
/**
 * The journal entries up to `until` that no bundle of the chain ending at `parent` carried,
 * of the `only` sources when given, a page at a time (pages may be short or, filtered, absent:
 * nothing is held between them). A partial export (`--only`) advances only its sources, so the
 * next export still carries every other source's changes.
 */
export function* uncarriedPages(
  store: Pick<Store, 'bundles' | 'journal'>,
  parent: BundleRow | undefined,
  opts: { until?: number; only?: ReadonlySet<string>; pageSize?: number } = {},
): Generator<JournalEntry[]> {
  const cover = chainCoverage(store.bundles, parent);
  const only = opts.only;
  for (const page of store.journal.pages(cover.floor, { ...(opts.until !== undefined ? { until: opts.until } : {}), pageSize: opts.pageSize ?? EXPORT_PAGE })) {
    const kept = page.filter((e) => e.seq > cover.carriedTo(e.source) && (!only || (e.source !== undefined && only.has(e.source))));
    if (kept.length > 0) yield kept;
  }
}

/** The journal entries up to `until` that no bundle of the chain ending at `parent` carried, as one list (see uncarriedPages). */
export function uncarriedJournal(store: Pick<Store, 'bundles' | 'journal'>, parent: BundleRow | undefined, opts: { until?: number; only?: ReadonlySet<string> } = {}): JournalEntry[] {
  return [...uncarriedPages(store, parent, opts)].flat();
}

/** How many journal entries no bundle of the chain ending at `parent` carried (0: an export would be empty). */
export function pendingChanges(store: Pick<Store, 'bundles' | 'journal'>, parent: BundleRow | undefined): number {
  let n = 0;
  for (const page of uncarriedPages(store, parent)) n += page.length;
  return n;
}

/** A lifecycle announcement as a canonical string: equal for equal lists in any order. */
export function lifecycleKey(lifecycle: readonly BundleLifecycle[]): string {
  const rows = lifecycle.map((l) => [l.kind, l.name, l.target, l.state, l.note ?? null] as const);
  return JSON.stringify(rows.map((r) => JSON.stringify(r)).sort());
}

/**
 * True when the sources' lifecycle differs from what the newest exported bundle announced, so a
 * bundle is due though no content moved (importers learn of a deprecation, an archive, or a
 * source active again only from a bundle). False before the first export: the first bundle
 * carries it anyway.
 */
export function lifecycleChanged(store: Pick<Store, 'bundles'>, lifecycle: readonly BundleLifecycle[]): boolean {
  if (store.bundles.last() === undefined) return false;
  return (store.bundles.exportedLifecycle() ?? lifecycleKey([])) !== lifecycleKey(lifecycle);
}

/** Ids of a bundle's ancestors and itself, oldest first. */
export function chainIds(bundles: StoreBundles, b: BundleRow): string[] {
  const ids: string[] = [];
  let cur: BundleRow | undefined = b;
  while (cur) {
    ids.unshift(cur.id);
    cur = cur.parentId ? bundles.get(cur.parentId) : undefined;
  }
  return ids;
}

/**
 * Two entries that send one tag name to one target (overlapping tag filters into one
 * repository) would push twice to one place: the row that changed last wins, as the later push
 * would, and the other is logged. `tags` are the rows that share a target and tag with another
 * (TagKeySet.sharedTargets), in list order; returns the rows left out.
 */
function rowsLeftOut(tags: readonly TagRow[], logger: Logger | undefined): TagRow[] {
  const byTarget = new Map<string, TagRow>();
  for (const t of tags) {
    const key = `${t.target}:${t.tag}`;
    const have = byTarget.get(key);
    if (have === undefined) {
      byTarget.set(key, t);
      continue;
    }
    const [win, lose] = t.changedAt > have.changedAt || (t.changedAt === have.changedAt && t.source > have.source) ? [t, have] : [have, t];
    byTarget.set(key, win);
    logger?.warn(
      { target: key, carried: `${win.source} (${win.digest})`, left: `${lose.source} (${lose.digest})` },
      `image entries ${win.source} and ${lose.source} both send a tag to ${key}: the bundle carries the one that changed last`,
    );
  }
  return tags.filter((t) => byTarget.get(`${t.target}:${t.tag}`) !== t);
}

/** A source's tag row as one string: which image entry, which upstream tag. */
function rowKey(t: { source?: string | undefined; registry?: string | undefined; repository?: string | undefined; tag?: string | undefined }): string {
  return `${t.source}\0${t.registry}\0${t.repository}\0${t.tag}`;
}

/**
 * The tags whose last uncarried journal entry is a removal and that no live row sends to the same
 * target and tag (another entry may still carry it there), by target and tag. Both are read once,
 * in order: per tag only its first position and, while its last entry is a removal, that entry.
 */
export function prunedTags(journal: Iterable<readonly JournalEntry[]>, live: Iterable<ReadonlyArray<Pick<TagRow, 'target' | 'tag'>>>): BundlePrunedTag[] {
  // Per tag row: where it first appears (the order the candidates are visited in) and its removal while that is its last entry.
  const last = new Map<string, { first: number; removed: JournalEntry | undefined }>();
  for (const page of journal) {
    for (const e of page) {
      if (e.kind !== 'tag') continue;
      const key = rowKey(e);
      const have = last.get(key);
      const removed = e.digest === undefined ? e : undefined;
      if (have === undefined) last.set(key, { first: e.seq, removed });
      else have.removed = removed;
    }
  }
  const candidates = new Map<string, JournalEntry>();
  for (const { removed: e } of [...last.values()].sort((a, b) => a.first - b.first)) {
    if (e === undefined || e.target === undefined || e.tag === undefined || e.previousDigest === undefined) continue;
    const key = `${e.target}:${e.tag}`;
    candidates.delete(key);
    candidates.set(key, e);
  }
  last.clear();
  if (candidates.size > 0) for (const page of live) for (const t of page) candidates.delete(`${t.target}:${t.tag}`);
  return [...candidates.values()]
    .map((e) => ({ target: e.target!, tag: e.tag!, digest: e.previousDigest as Digest }))
    .sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

function moduleFiles(m: ModuleVersionRow): Array<{ path: string; digest: Digest }> {
  const files = [
    { path: `${GOMOD_DIR}/${proxyPath(m.module, 'info', m.version)}`, digest: m.infoDigest as Digest },
    { path: `${GOMOD_DIR}/${proxyPath(m.module, 'mod', m.version)}`, digest: m.modDigest as Digest },
  ];
  if (m.zipDigest) files.push({ path: `${GOMOD_DIR}/${proxyPath(m.module, 'zip', m.version)}`, digest: m.zipDigest as Digest });
  return files;
}

/**
 * Writes one signed bundle from the store and records it. Takes the store's export lock first:
 * while another export runs this fails at once with EXPORT_BUSY, before any work.
 */
export async function exportBundle(opts: ExportOptions): Promise<ExportResult> {
  const lock = opts.store.bundles.lockExport();
  try {
    return await exportLocked(opts);
  } finally {
    lock.release();
  }
}

/** The index page cache while an export chooses what it carries (KiB, per schema). */
const EXPORT_CACHE_KIB = 2048;

async function exportLocked(opts: ExportOptions): Promise<ExportResult> {
  const { store } = opts;
  const now = (opts.now ?? (() => new Date()))();
  const privateKey = await loadPrivateKey(opts.signingKey, opts.passphrase);
  const parent = chooseParent(store.bundles, opts);
  const seqTo = store.journal.currentSeq();
  const only = opts.only && opts.only.length > 0 ? new Set(opts.only) : undefined;
  const seqFrom = chainCoverage(store.bundles, parent).floor;

  // Choosing reads each journal entry and tag row once or twice, in order: a large index cache
  // would only hold pages never read again (16 MB at 50,000 tags, in the peak RSS). Writing
  // looks blob rows up by digest (6,000 module files at 2,000 versions), where the cache pays
  // (a 2 MB one tripled the system time there), so it is restored before.
  const restore = store.bundles.limitIndexCache(EXPORT_CACHE_KIB);
  let chosen: Awaited<ReturnType<typeof chooseAndCopy>>;
  try {
    chosen = await chooseAndCopy(opts, store, parent, seqTo, only, Math.max(1, Math.floor(opts.pageSize ?? EXPORT_PAGE)));
  } finally {
    restore();
  }
  const { sources, modules, pruned, sink } = chosen;

  // index.json and the image plan are written here first (the tar needs their sizes before them).
  let spool: string;
  try {
    await mkdir(opts.outDir, { recursive: true });
    spool = await mkdtemp(join(opts.outDir, '.ferry-export-'));
  } catch (err) {
    throw new FerryError('BUNDLE_IO', `cannot create the output directory ${opts.outDir}: ${errorMessage(err)}`, { op: 'export', file: opts.outDir, cause: err });
  }
  try {
    return await writeExport(opts, { store, now, privateKey, parent, seqFrom, seqTo, sources, modules, pruned, sink, spool });
  } finally {
    await rm(spool, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * What the bundle carries, chosen from the journal and copied into the bundle's image side, a
 * page at a time: the changed tags' keys wait in the index (a TagKeySet) and their rows are read
 * back `pageSize` at a time, so no list of every tag or journal entry is held.
 */
async function chooseAndCopy(
  opts: ExportOptions,
  store: Store,
  parent: BundleRow | undefined,
  seqTo: number,
  only: ReadonlySet<string> | undefined,
  pageSize: number,
): Promise<{ sources: string[] | null; modules: ModuleVersionRow[]; pruned: BundlePrunedTag[]; sink: BundleImageSink }> {
  // Tags and module versions whose changes up to seqTo no bundle of the parent's chain carried,
  // per source (an earlier --only export carried only its own sources).
  const uncarried = (): Generator<JournalEntry[]> => uncarriedPages(store, parent, { until: seqTo, ...(only ? { only } : {}), pageSize });
  const changed = store.tags.keySet();
  try {
    const changedModules = new Set<string>();
    let removals = false;
    for (const page of uncarried()) {
      // A tag is one image entry's (source's) row: one upstream tag in two entries is two images.
      changed.add(page.filter((e): e is JournalEntry & SourceTagKey => e.kind === 'tag' && e.source !== undefined && e.registry !== undefined && e.repository !== undefined && e.tag !== undefined));
      for (const e of page) {
        if (e.kind === 'module') changedModules.add(`${e.module}@${e.version}`);
        else if (e.digest === undefined) removals = true;
      }
    }
    const lost = rowsLeftOut(changed.sharedTargets(), opts.logger);
    const leftOut = new Set(lost.map(rowKey));
    const carriedTags = function* (): Generator<TagRow[]> {
      for (const page of changed.pages(pageSize)) {
        const kept = page.filter((t) => !leftOut.has(rowKey(t)) && (!only || only.has(t.source)));
        if (kept.length > 0) yield kept;
      }
    };
    const modules = store.modules
      .list()
      .filter((m) => changedModules.has(`${m.module}@${m.version}`) && (!only || only.has(m.root)));
    changedModules.clear();
    const sources = only ? [...only].sort() : null;
    // Only removals make pruned entries: without one, the live tags need not be read again.
    const pruned = removals ? prunedTags(uncarried(), store.tags.pages(pageSize)) : [];

    // The images: one copy from the store into the bundle's image side, through the graph. The
    // index an image names travels in every bundle that names the image, with its filtered form
    // when platforms leave children out, even when an earlier bundle carried it: an earlier import
    // may have pushed only the filtered form (the registry refusing the original), so what the
    // intranet registry holds of either is unknown here and neither is left to `requires`.
    // The indexes the carried tags name: those some row names that is not left out.
    const mustCarry = new Set<Digest>();
    for (const d of changed.digests()) {
      if (isIndexMediaType(d.mediaType) && d.rows > lost.filter((t) => t.digest === d.digest && t.mediaType === d.mediaType).length) mustCarry.add(d.digest);
    }
    const sink = new BundleImageSink({
      carriedBefore: parent ? store.bundles.blobsCarriedByChain(parent.id) : new Set<Digest>(),
      mustCarry,
    });
    const where = (t: { registry: string; repository: string; tag: string }): string => `${t.registry}/${t.repository}:${t.tag}`;
    // The writer hashes while streaming, so the store need not hash the same bytes again.
    const source = new StoreSource(store, { verifyBlobs: false });
    // A page of tags per copy: the sink writes nothing before writeBundle, so copies one after
    // another into it are one copy, and the per-tag work of each (roots, closures, images) is let go.
    for (const page of carriedTags()) {
      // Many tags of few images: each manifest's row (with its references) is read once per page.
      const sizes = new Map<Digest, number>();
      const sizeOf = (d: Digest): number => {
        let size = sizes.get(d);
        if (size === undefined) sizes.set(d, (size = store.content.getManifest(d)?.size ?? 0));
        return size;
      };
      await copy(
        source,
        sink,
        page.map((t) => ({
          descriptor: { digest: t.digest, mediaType: t.mediaType, size: sizeOf(t.digest) },
          // The store holds the attachments its entry's sync chose: all of them travel.
          selection: { platforms: t.platforms, attachments: ALL_ATTACHMENTS },
          tag: { registry: t.registry, repository: t.repository, tag: t.tag, target: t.target },
        })),
        {
          // Every digest an image names is either carried or listed in requires.
          trustSink: false,
          // A foreign layer the store holds (fetched from its urls) travels like any layer.
          foreign: 'if-present',
          ...(opts.signal ? { signal: opts.signal } : {}),
          missing: (root, lost) =>
            new FerryError('BLOB_UNKNOWN', `${where(root.tag!)}: ${lost[0]!.digest} is not in the store (run ferry fsck)`, { digest: lost[0]!.digest }),
          check: (images) => {
            // The tags of one image share one closure: its blobs are looked up once, not once a tag.
            const seen = new Set<Closure>();
            for (const { root, closure } of images) {
              if (seen.has(closure)) continue;
              seen.add(closure);
              for (const b of closure.blobs) {
                if (!store.content.hasBlob(b.digest)) throw new FerryError('BLOB_UNKNOWN', `${where(root.tag!)}: ${b.digest} is not in the store (run ferry fsck)`, { digest: b.digest });
              }
            }
          },
        },
      );
    }
    return { sources, modules, pruned, sink };
  } finally {
    changed.close();
  }
}

async function writeExport(
  opts: ExportOptions,
  ctx: {
    store: Store;
    now: Date;
    privateKey: KeyObject;
    parent: BundleRow | undefined;
    seqFrom: number;
    seqTo: number;
    sources: string[] | null;
    modules: ModuleVersionRow[];
    pruned: BundlePrunedTag[];
    sink: BundleImageSink;
    spool: string;
  },
): Promise<ExportResult> {
  const { store, now, privateKey, parent, seqFrom, seqTo, sources, modules, pruned, sink } = ctx;
  const requires = sink.requires();
  const attachments = sink.attachmentList();
  const foreign = sink.foreignLayers();
  const carried = sink.carriedDigests();
  const entries: BundleEntry[] = await sink.entries(ctx.spool);
  const moduleFilePaths: string[] = [];
  const byModule = new Map<string, ModuleVersionRow[]>();
  for (const m of modules) {
    for (const f of moduleFiles(m)) {
      moduleFilePaths.push(f.path);
      const size = store.content.blobSize(f.digest);
      if (size === undefined) throw new FerryError('BLOB_UNKNOWN', `${m.module}@${m.version}: ${f.path} is not in the store (run ferry fsck)`, { module: m.module, version: m.version });
      entries.push({ path: f.path, size, sha256: digestHex(f.digest), open: ({ signal }) => store.content.readBlob(f.digest, { verify: false, ...(signal ? { signal } : {}) }) });
    }
    const list = byModule.get(m.module) ?? [];
    list.push(m);
    byModule.set(m.module, list);
  }
  // @v/list names the versions this bundle carries a zip for (pseudo-versions are never listed).
  for (const [module, versions] of byModule) {
    const listed = versions.filter((v) => v.zipDigest && !isPseudoVersion(v.version)).map((v) => v.version).sort(compareVersions);
    entries.push(bufferEntry(`${GOMOD_DIR}/${proxyPath(module, 'list')}`, Buffer.from(listed.map((v) => `${v}\n`).join(''), 'utf8')));
  }

  // The checksum database: lookups of the carried versions and the tiles proving them against
  // one signed head, so clients inside keep verifying with GOSUMDB unchanged.
  if (modules.length > 0) {
    const chainFiles = parent ? store.bundles.moduleFilesCarriedByChain(parent.id) : undefined;
    const sumEntries = await sumdbBundleEntries(
      store,
      modules.map((m) => ({ module: m.module, version: m.version })),
      { ...(opts.signal ? { signal: opts.signal } : {}), ...(chainFiles ? { alreadyCarried: chainFiles } : {}) },
    );
    for (const e of sumEntries) {
      entries.push(e);
      moduleFilePaths.push(e.path);
    }
  }

  const sequence = store.bundles.nextSequence();
  const id = newBundleId(now, sequence);
  const name = bundleFileName(now, sequence);
  const imageCount = sink.imageCount;
  const bundleModules: BundleModule[] = modules.map((m) => ({
    path: m.module,
    version: m.version,
    h1: m.h1Zip,
    goModH1: m.h1Mod,
    time: m.time,
  }));
  const result = await writeBundle({
    outDir: opts.outDir,
    name,
    manifest: {
      id,
      sequence,
      parent: parent?.id ?? null,
      chain: parent ? chainIds(store.bundles, parent) : [],
      created: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      store: { id: store.id },
      ...(sources ? { sources } : {}),
      images: sink.images(),
      modules: bundleModules,
      requires,
      ...(attachments.length > 0 ? { attachments } : {}),
      ...(opts.lifecycle && opts.lifecycle.length > 0 ? { lifecycle: opts.lifecycle } : {}),
      ...(pruned.length > 0 ? { pruned } : {}),
    },
    entries,
    privateKey,
    ...(opts.splitSize !== undefined ? { splitSize: opts.splitSize } : {}),
    importScript: IMPORT_SCRIPT,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  store.bundles.add({
    id,
    sequence,
    parentId: parent?.id ?? null,
    createdAt: now.toISOString(),
    seqFrom,
    seqTo,
    sources,
    files: result.manifest.files satisfies readonly BundleFile[],
    blobs: carried,
    moduleFiles: moduleFilePaths,
    lifecycle: lifecycleKey(opts.lifecycle ?? []),
  });
  opts.logger?.info({ id, sequence, parent: parent?.id ?? null, sources, images: imageCount, modules: modules.length, blobs: carried.length }, 'bundle exported');
  if (foreign.length > 0) opts.logger?.warn({ layers: foreign }, 'foreign layers not carried (non-distributable, left out at sync)');
  return {
    id,
    sequence,
    parent: parent?.id ?? null,
    sources,
    name,
    files: result.files,
    bytes: result.totalSize,
    images: imageCount,
    modules: modules.length,
    pruned: pruned.length,
    blobs: carried.length,
    requires: requires.length,
    foreignLayers: foreign,
    empty: imageCount === 0 && modules.length === 0 && pruned.length === 0,
  };
}

/**
 * What `ferry gc` may compact of the journal, per source: the lowest seq up to which the newest
 * confirmed bundle and every bundle exported after it carried the source's changes (an export
 * from any of them reads only entries above it). Undefined when no bundle is confirmed.
 */
export function confirmedCoverage(bundles: StoreBundles, confirmed: ReadonlySet<string>): ((source: string | undefined) => number) | undefined {
  const all = bundles.list();
  const newest = all.filter((b) => confirmed.has(b.id)).reduce<BundleRow | undefined>((m, b) => (m === undefined || b.sequence > m.sequence ? b : m), undefined);
  if (newest === undefined) return undefined;
  const covers = all.filter((b) => b.sequence >= newest.sequence).map((b) => chainCoverage(bundles, b));
  return (source) => Math.min(...covers.map((c) => c.carriedTo(source)));
}
