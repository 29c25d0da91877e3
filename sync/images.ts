/**
 * Image sync: list tags, filter, HEAD each selected tag and compare with the store; a changed
 * tag is one copy (oci/copy.ts) from the registry into the store: the graph decides what the tag
 * selects, only blobs the store lacks are fetched (once per pass across tags and images), and
 * the tag pointer moves only after all its content is stored.
 */
import type { KeyObject } from 'node:crypto';
import { Transform, pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type PQueue from 'p-queue';
import { selectTags, type ImageConfig } from '../config/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import {
  closure,
  copy,
  formatReference,
  IMAGE_MEDIA_TYPES,
  isDigestTag,
  platformString,
  SELECT_ALL,
  sha256Digest,
  sourceReader,
  type Descriptor,
  type Digest,
  type ImageSink,
  type ImageSource,
  type ManifestBytes,
  type ManifestRead,
  type ManifestReader,
  type CopiedImage,
  type Selection,
} from '../oci/index.js';
import { RegistrySource, type RegistryClient } from '../registry/index.js';
import { PackedStrings } from './packed.js';
import { loadPolicyKeys, requireSignature } from './signatures.js';
import { StoreSink, storeReader, type ChangeResult, type SourceTagKey, type Store, type StoreTag, type TagRow } from '../store/index.js';

/** Progress and accounting events the engine emits. */
export type SyncEvent =
  | { type: 'image-start'; image: string }
  | { type: 'image-done'; image: string; ok: boolean; changed: number; unchanged: number; failed: number }
  | { type: 'tag-changed'; image: string; tag: string; digest: Digest; previous?: string | undefined }
  | { type: 'blob-start'; digest: Digest; size: number }
  | { type: 'blob-progress'; bytes: number }
  | { type: 'blob-done'; digest: Digest; size: number }
  | { type: 'module-start'; module: string }
  | { type: 'module-done'; module: string; version: string; isNew: boolean }
  | { type: 'foreign-layer'; image: string; layer: ForeignLayerReport };

/** A foreign (non-distributable) layer a synced manifest names: left out by default, or fetched from its urls. */
export interface ForeignLayerReport {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly urls: readonly string[];
  /** The store holds its bytes (fetched from its urls, or already there); false: skipped. */
  readonly stored: boolean;
}

/** Per-image outcome. */
export interface ImageResult {
  readonly name: string;
  readonly ok: boolean;
  readonly tagsSelected: number;
  readonly changed: number;
  readonly unchanged: number;
  readonly failed: number;
  readonly errors: ReadonlyArray<{ tag?: string; code: string; message: string }>;
  /** Tags removed from the store's live tags this pass (`prune: true`: gone upstream or no longer selected). */
  readonly pruned: readonly string[];
  /** Foreign layers of the manifests this pass fetched, once each. */
  readonly foreignLayers: readonly ForeignLayerReport[];
}

/** One image entry's pass: its settings and the foreign layers met. */
interface ImageRun {
  readonly img: ImageConfig;
  readonly foreign: Map<Digest, ForeignLayerReport>;
  /**
   * The digest tags (`sha256-<hex>[.suffix]`: cosign's, the referrers fallback) of the
   * repository's tag list this pass: those not in it are not asked for. Only these are looked
   * up, so the other tags are not held in a set for the pass.
   */
  digestTags: ReadonlySet<string>;
  /** The signature policy's keys, read once per pass. */
  keys?: Promise<KeyObject[]>;
  /**
   * Manifest GETs under way by digest, each entry held until the copy that started it has
   * stored it (then the store answers): tags naming one digest share one GET. Bounded by the
   * tags in flight, never a map of the whole pass.
   */
  readonly manifests: Map<Digest, Promise<ManifestRead>>;
  /** Manifests read lately, least recent first, within RECENT_MANIFEST_BYTES: many tags name a few manifests. */
  readonly recent: Map<Digest, ManifestBytes>;
  recentBytes: number;
  /**
   * The copies of this pass by root (the entry's selection is one for all its tags), least
   * recent first, at most RECENT_COPIES: a tag naming an image another tag brought in moves
   * with what that copy worked out, without walking the graph again.
   */
  readonly copies: Map<string, CopiedImage>;
}

/** Bytes of manifests an image entry keeps at hand during a pass (a bound, not a map of the pass). */
export const RECENT_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Copies an image entry keeps at hand during a pass. Many tags name a few images: walking the
 * graph again for each (closures, copy plans, a queue turn for attachments) was most of what a
 * cold sync allocated per tag, and V8 lets such garbage, once promoted, grow the old
 * generation to several times what it holds.
 */
export const RECENT_COPIES = 64;

/** Remembers a manifest read, dropping the least recent past RECENT_MANIFEST_BYTES. */
function remember(run: ImageRun, digest: Digest, m: ManifestBytes): void {
  if (m.bytes.length > RECENT_MANIFEST_BYTES / 16 || run.recent.has(digest)) return;
  run.recent.set(digest, m);
  run.recentBytes += m.bytes.length;
  for (const [d, old] of run.recent) {
    if (run.recentBytes <= RECENT_MANIFEST_BYTES) break;
    run.recent.delete(d);
    run.recentBytes -= old.bytes.length;
  }
}

/**
 * Tags of one image entry worked on at once: the shared queue bounds the requests, this bounds
 * the memory (each tag in flight holds its closure). A few per queue slot keep the queue fed
 * while other tags wait on the store.
 */
export const TAGS_IN_FLIGHT = 64;

/** Unchanged tags marked checked per commit. */
const TOUCH_BATCH = 1000;

/** Shared state of one sync pass (deduplicates blob fetches across tags and images). */
export interface SyncContext {
  readonly store: Store;
  readonly queue: PQueue;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  readonly emit: (e: SyncEvent) => void;
  /** In-flight blob fetches by digest, so each blob is fetched once per pass. */
  readonly inflight: Map<string, Promise<unknown>>;
  readonly counters: { blobsFetched: number; bytesFetched: number; manifestsFetched: number };
}

/** The entry's own row of an upstream tag: several entries may mirror one tag, each its own way. */
function repoKey(img: ImageConfig, tag: string): SourceTagKey {
  return { source: img.name, registry: img.ref.registry, repository: img.ref.repository, tag };
}

/** Syncs one configured image source. Never throws for a tag-level failure; returns the result. */
export async function syncImage(ctx: SyncContext, img: ImageConfig, client: RegistryClient): Promise<ImageResult> {
  const log = ctx.logger.child({ image: img.name });
  ctx.emit({ type: 'image-start', image: img.name });
  const errors: Array<{ tag?: string; code: string; message: string }> = [];
  let changed = 0;
  let unchanged = 0;
  let failed = 0;
  let selected = PackedStrings.of([]);
  const pruned: string[] = [];
  const run: ImageRun = { img, foreign: new Map(), digestTags: new Set(), manifests: new Map(), recent: new Map(), recentBytes: 0, copies: new Map() };
  try {
    const listed = await listTags(ctx, img, client);
    selected = listed.selected;
    run.digestTags = listed.digestTags;
    if (selected.length === 0) log.warn({ available: listed.available }, 'no tag matches the filters');
    // Unchanged tags are marked checked together: one commit per batch, not one per tag.
    let untouched: SourceTagKey[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < selected.length) {
        const tag = selected.at(next++);
        try {
          const moved = await syncTag(ctx, run, client, tag);
          if (moved) changed++;
          else {
            unchanged++;
            untouched.push(repoKey(img, tag));
            if (untouched.length >= TOUCH_BATCH) {
              ctx.store.tags.touchMany(untouched);
              untouched = [];
            }
          }
        } catch (err) {
          failed++;
          const fe = toFerryError(err, 'INTERNAL', { reference: `${img.source}:${tag}` });
          errors.push({ tag, code: fe.code, message: fe.message });
          log.error({ tag, code: fe.code, err: fe.message }, 'tag failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(TAGS_IN_FLIGHT, selected.length) }, worker));
    ctx.store.tags.touchMany(untouched);
    if (img.prune && !ctx.signal?.aborted) {
      // Only after a complete tag list: what the entry no longer selects leaves the live tags.
      const keep = new Set(selected);
      for (const t of ctx.store.tags.list({ source: img.name, registry: img.ref.registry, repository: img.ref.repository })) {
        if (keep.has(t.tag)) continue;
        if (ctx.store.tags.remove(repoKey(img, t.tag)).changed) pruned.push(t.tag);
      }
      if (pruned.length > 0) log.info({ tags: pruned }, 'pruned: tags gone upstream or no longer selected left the live tags');
    }
  } catch (err) {
    const fe = toFerryError(err, 'INTERNAL', { reference: img.source });
    errors.push({ code: fe.code, message: fe.message });
    failed++;
    log.error({ code: fe.code, err: fe.message }, 'image failed');
  }
  const ok = errors.length === 0;
  ctx.store.runs.recordSourceResult(img.name, ok ? { ok } : { ok, error: errors[0]?.message ?? 'failed' });
  ctx.emit({ type: 'image-done', image: img.name, ok, changed, unchanged, failed });
  const foreignLayers = [...run.foreign.values()];
  const skipped = foreignLayers.filter((f) => !f.stored);
  if (skipped.length > 0) {
    log.warn({ layers: skipped.map((f) => ({ digest: f.digest, mediaType: f.mediaType, urls: f.urls })) }, 'foreign layers left out (non-distributable; set foreignLayers: fetch to carry them)');
  }
  return { name: img.name, ok, tagsSelected: selected.length, changed, unchanged, failed, errors, pruned, foreignLayers };
}

/**
 * The repository's tag list, filtered: the selected tags packed (see PackedStrings), its digest
 * tags, and how many tags it has. The list itself is let go on return.
 */
async function listTags(ctx: SyncContext, img: ImageConfig, client: RegistryClient): Promise<{ selected: PackedStrings; digestTags: Set<string>; available: number }> {
  const tags = await ctx.queue.add(() => client.tagList(img.ref.repository, { signal: ctx.signal }));
  const digestTags = new Set(tags.filter(isDigestTag));
  // Following attachments, a digest-shaped tag is an attachment's, never an image tag of its own.
  const selected = PackedStrings.of(selectTags(img.referrers ? tags.filter((t) => !isDigestTag(t)) : tags, img.tags));
  return { selected, digestTags, available: tags.length };
}

/** Syncs one tag; returns true when the stored tag pointer moved. */
async function syncTag(ctx: SyncContext, run: ImageRun, client: RegistryClient, tag: string): Promise<boolean> {
  const img = run.img;
  const repo = img.ref.repository;
  const key = repoKey(img, tag);
  const head = await ctx.queue.add(() => client.manifestHead(repo, tag, { signal: ctx.signal }));
  if (!head) {
    throw new FerryError('MANIFEST_UNKNOWN', `${formatReference({ ...img.ref, tag })}: tag listed but its manifest is not found`, {
      registry: img.ref.registry,
      repository: repo,
      reference: tag,
    });
  }
  const stored = ctx.store.tags.get(key);
  const platforms = img.platforms ? [...img.platforms].sort() : null;
  const selection: Selection = { platforms, attachments: img.referrers ?? 'none' };
  const root: Descriptor = { digest: head.digest, mediaType: head.mediaType, size: head.size };
  const samePlatforms = JSON.stringify(stored?.platforms ?? null) === JSON.stringify(platforms);
  const same = stored !== undefined && stored.digest === head.digest && samePlatforms && stored.target === img.target;
  // Layers an entry now set to fetch left out before: fetched now, and journaled so they travel.
  // Attachments added upstream since (a new signature or referrer, a moved .att tag): fetched now,
  // and the tag journaled again so the next incremental bundle carries them.
  const contentAdded = same && ((await lacksForeignLayers(ctx, run, root, selection)) || (await lacksAttachments(ctx, run, client, root, selection, stored?.mediaType)));
  if (same && !contentAdded) return false;
  // The signature policy: checked before anything of the tag is stored.
  if (img.verify !== undefined && !same) {
    run.keys ??= loadPolicyKeys(img.verify.keys);
    await requireSignature({ client, repository: repo, reference: formatReference({ ...img.ref, tag }), digest: head.digest, tags: run.digestTags, signal: ctx.signal }, await run.keys);
  }
  if (!contentAdded) {
    const moved = await moveToCopied(ctx, run, { tag, key, head, stored, root });
    if (moved !== undefined) return moved;
  }
  // Changed (or first seen): the root is read by digest, so what we store is exactly what HEAD
  // announced; from the store when it has it, else from upstream once for every tag naming it.
  const source = syncSource(ctx, run, client, repo);
  const call = ctx.signal ? { signal: ctx.signal } : {};
  const fromStore = storeReader(ctx.store, call);
  const fromUpstream = sourceReader(source, call);
  const started: Digest[] = [];
  const read: ManifestReader = async (d) => {
    const known = run.recent.get(d.digest);
    if (known !== undefined) {
      // Most recent last.
      run.recent.delete(d.digest);
      run.recent.set(d.digest, known);
      return known;
    }
    if (ctx.store.content.hasManifest(d.digest)) {
      const m = await fromStore(d);
      if (m !== undefined && m !== 'external') {
        remember(run, d.digest, m);
        return m;
      }
    }
    let p = run.manifests.get(d.digest);
    if (p === undefined) {
      p = ctx.queue.add(async () => fromUpstream(d));
      run.manifests.set(d.digest, p);
      started.push(d.digest);
      const got = await p;
      // Only bytes that are what they claim: the graph refuses the rest, each time it reads them.
      if (got !== undefined && got !== 'external' && sha256Digest(got.bytes) === d.digest) remember(run, d.digest, got);
    }
    return p;
  };
  try {
    return await copyTag(ctx, run, source, read, { tag, key, head, stored, root, selection, platforms, contentAdded });
  } finally {
    for (const d of started) run.manifests.delete(d);
  }
}

/** The key of a root in ImageRun.copies (the entry's selection is one for all its tags). */
function copiedKey(root: Descriptor): string {
  return `${root.digest} ${root.mediaType} ${root.size}`;
}

/**
 * Moves a tag onto an image this pass copied already, when it did: the same root under the
 * entry's one selection is the same closure, its content in the store (asked again: the tag
 * moves only onto a stored manifest), its attachments recorded and its foreign layers reported
 * by that copy. Undefined when there is no such copy (copyTag then walks the graph); else true
 * when the stored tag pointer moved.
 */
async function moveToCopied(ctx: SyncContext, run: ImageRun, t: Pick<TagPlan, 'tag' | 'key' | 'head' | 'stored' | 'root'>): Promise<boolean | undefined> {
  const k = copiedKey(t.root);
  const copied = run.copies.get(k);
  if (copied === undefined || !ctx.store.content.hasManifest(copied.digest)) return undefined;
  ctx.signal?.throwIfAborted();
  // Most recent last.
  run.copies.delete(k);
  run.copies.set(k, copied);
  let moved: ChangeResult | undefined;
  await new StoreSink(ctx.store, { onTag: (_row, r) => (moved = r) }).putTag({ ...t.key, target: run.img.target, contentAdded: false }, copied);
  return tagMoved(ctx, run.img, t.tag, t.head, t.stored, moved!);
}

/** What syncTag found out about a tag before copying it. */
interface TagPlan {
  readonly tag: string;
  readonly key: SourceTagKey;
  readonly head: { readonly digest: Digest };
  readonly stored: TagRow | undefined;
  readonly root: Descriptor;
  readonly selection: Selection;
  readonly platforms: string[] | null;
  readonly contentAdded: boolean;
}

/** Copies a tag's closure into the store and moves its row; true when the stored tag pointer moved. */
async function copyTag(ctx: SyncContext, run: ImageRun, source: ImageSource, read: ManifestReader, t: TagPlan): Promise<boolean> {
  const img = run.img;
  const repo = img.ref.repository;
  const { tag, key, head, stored, root, selection, platforms, contentAdded } = t;
  let moved: ChangeResult | undefined;
  const sink = new StoreSink(ctx.store, { onTag: (_row, r) => (moved = r) });
  const storeTag: StoreTag = { ...key, target: img.target, contentAdded };
  const copyKey = contentAdded ? undefined : copiedKey(root);
  const fetchForeign = img.foreignLayers === 'fetch';
  const result = await copy(source, fetchForeign ? completeWithForeign(ctx, run, sink) : sink, [{ descriptor: root, selection, tag: storeTag }], {
    queue: ctx.queue,
    inflight: ctx.inflight,
    read,
    // Foreign layers are not in the registry (it accepted the manifest without them): left out by
    // default, as registries and skopeo do, or fetched from their urls without any credentials.
    foreign: fetchForeign ? 'copy' : 'skip',
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    missing: (_root, lost) =>
      new FerryError('MANIFEST_UNKNOWN', `${formatReference({ ...img.ref, tag })}: manifest ${lost.map((d) => d.digest).join(', ')} of ${head.digest} is not in the registry`, {
        registry: img.ref.registry,
        repository: repo,
        reference: tag,
        digest: lost[0]!.digest,
      }),
    check: ([image]) => {
      const c = image!.closure;
      if (c.kept !== undefined && c.kept.length === 0) {
        const have = c.dropped.map((d) => platformString(d.platform)).join(', ');
        throw new FerryError('NOT_FOUND', `${formatReference({ ...img.ref, tag })}: no platform matches ${platforms?.join(', ')} (index has ${have})`, {
          registry: img.ref.registry,
          repository: repo,
          reference: tag,
        });
      }
    },
    onBlob: (e) => {
      if (e.type === 'start') {
        ctx.emit({ type: 'blob-start', digest: e.descriptor.digest, size: e.descriptor.size });
        return;
      }
      if (e.result === 'written') {
        ctx.counters.blobsFetched++;
        ctx.counters.bytesFetched += e.descriptor.size;
      }
      ctx.emit({ type: 'blob-done', digest: e.descriptor.digest, size: e.descriptor.size });
    },
  });
  // The foreign layers of the manifests this pass read, once each per entry.
  for (const d of result.images[0]!.image.closure.foreign) {
    if (run.foreign.has(d.digest)) continue;
    const layer: ForeignLayerReport = { digest: d.digest, mediaType: d.mediaType, size: d.size, urls: [...(d.urls ?? [])], stored: ctx.store.content.hasBlob(d.digest) };
    run.foreign.set(d.digest, layer);
    ctx.emit({ type: 'foreign-layer', image: img.name, layer });
  }
  if (copyKey !== undefined) {
    run.copies.set(copyKey, result.images[0]!.image);
    for (const k of run.copies.keys()) {
      if (run.copies.size <= RECENT_COPIES) break;
      run.copies.delete(k);
    }
  }
  return tagMoved(ctx, img, tag, head, stored, moved!);
}

/** Reports a tag's move; true when the stored tag pointer moved (or the tag is new). */
function tagMoved(ctx: SyncContext, img: ImageConfig, tag: string, head: { readonly digest: Digest }, stored: TagRow | undefined, r: ChangeResult): boolean {
  if (r.changed) ctx.emit({ type: 'tag-changed', image: img.name, tag, digest: head.digest, previous: stored?.digest });
  return r.changed || !stored;
}

/**
 * The upstream repository as sync reads it: manifests counted, blob bytes counted as they pass
 * and hashed only by the store (hashing them in the client too would double the CPU per byte
 * on the sync's hot path).
 */
function syncSource(ctx: SyncContext, run: ImageRun, client: RegistryClient, repo: string): ImageSource {
  const upstream = new RegistrySource(client, repo, { verifyBlobs: false, userAgent: 'ferry/0.1', onManifest: () => ctx.counters.manifestsFetched++, tags: run.digestTags });
  return {
    manifest: (ref, o) => upstream.manifest(ref, o),
    attachments: (d, o) => upstream.attachments(d, o),
    hasBlob: (d, o) => upstream.hasBlob(d, o),
    hasManifest: (d, o) => upstream.hasManifest(d, o),
    async blob(d, o) {
      const body = await upstream.blob(d, o);
      const counted = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          ctx.emit({ type: 'blob-progress', bytes: chunk.length });
          cb(null, chunk);
        },
      });
      // pipeline keeps an error listener on both streams: a body that fails before the store has
      // attached its own pipeline must not become an uncaught exception.
      pipeline(body, counted, () => {});
      return counted;
    },
  };
}

/**
 * The store as a sink for an entry that fetches foreign layers: a stored manifest whose closure
 * lacks one (left out while the entry was `skip`) is not complete, so the copy walks it again.
 */
function completeWithForeign(ctx: SyncContext, run: ImageRun, sink: StoreSink): ImageSink<StoreTag> {
  return {
    hasBlob: (d) => sink.hasBlob(d),
    hasManifest: async (d) => (await sink.hasManifest(d)) && !(await lacksForeignLayers(ctx, run, d, SELECT_ALL)),
    putBlob: (d, open, o) => sink.putBlob(d, open, o),
    putManifest: (p, o) => sink.putManifest(p, o),
    putAttachments: (a) => sink.putAttachments(a),
    putTag: (t, image) => sink.putTag(t, image),
  };
}

/**
 * True when the entry fetches foreign layers and the stored closure of `root` lacks one: left
 * out while the entry was `skip`, so the content is fetched again.
 */
async function lacksForeignLayers(ctx: SyncContext, run: ImageRun, root: Descriptor, selection: Selection): Promise<boolean> {
  if (run.img.foreignLayers !== 'fetch' || !ctx.store.content.hasManifest(root.digest)) return false;
  const c = await closure(root, storeReader(ctx.store, ctx.signal ? { signal: ctx.signal } : {}), selection);
  return c.foreign.some((d) => !ctx.store.content.hasBlob(d.digest));
}

/**
 * True when the entry follows attachments and upstream has one the store lacks for a manifest
 * the stored tag reaches (or an attachment's own): the stored closure's manifests are asked
 * upstream for theirs (one request per manifest with the referrers API; without it, only the
 * digest tags the tag list names), nothing else is read.
 */
async function lacksAttachments(ctx: SyncContext, run: ImageRun, client: RegistryClient, root: Descriptor, selection: Selection, storedMediaType?: string): Promise<boolean> {
  if (selection.attachments === undefined || selection.attachments === 'none' || !ctx.store.content.hasManifest(root.digest)) return false;
  const upstream = syncSource(ctx, run, client, run.img.ref.repository);
  const call = ctx.signal ? { signal: ctx.signal } : {};
  // A stored image manifest reaches nothing but itself: when upstream has no attachment for it,
  // nothing was added, and its bytes need not be read (the common case, once per tag).
  if (storedMediaType !== undefined && IMAGE_MEDIA_TYPES.includes(storedMediaType)) {
    const first = await ctx.queue.add(() => upstream.attachments!(root, call));
    if (first.length === 0) return false;
  }
  const found = new Set<string>();
  const c = await closure(root, storeReader(ctx.store, ctx.signal ? { signal: ctx.signal } : {}), selection, async (d) => {
    const list = await ctx.queue.add(() => upstream.attachments!(d, ctx.signal ? { signal: ctx.signal } : {}));
    for (const a of list) found.add(a.descriptor.digest);
    return list;
  });
  return c.absent.some((d) => found.has(d.digest)) || c.attachments.some((a) => !ctx.store.attachments.has(a));
}
