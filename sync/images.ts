/**
 * Image sync: list tags, filter, HEAD each selected tag and compare with the store; for a
 * changed tag fetch the manifest (and kept children of an index), fetch only blobs the store
 * lacks, and move the tag pointer only after all its content is stored.
 */
import { Transform, pipeline, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import type PQueue from 'p-queue';
import { selectTags, type ImageConfig } from '../config/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import {
  formatReference,
  isForeignLayer,
  isNonDistributableMediaType,
  parseManifest,
  platformMatches,
  platformString,
  referencedDescriptors,
  type Descriptor,
  type Digest,
  type ParsedManifest,
} from '../oci/index.js';
import { foreignBlobGet, type RegistryClient } from '../registry/index.js';
import type { SourceTagKey, Store } from '../store/index.js';
import { allSettledOrThrow } from './settle.js';

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
  /** Foreign layers of the manifests this pass fetched, once each. */
  readonly foreignLayers: readonly ForeignLayerReport[];
}

/** One image entry's pass: its settings and the foreign layers met. */
interface ImageRun {
  readonly img: ImageConfig;
  readonly foreign: Map<Digest, ForeignLayerReport>;
}

/** Shared state of one sync pass (deduplicates blob fetches across tags and images). */
export interface SyncContext {
  readonly store: Store;
  readonly queue: PQueue;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  readonly emit: (e: SyncEvent) => void;
  /** In-flight blob fetches by digest, so each blob is fetched once per pass. */
  readonly inflight: Map<string, Promise<void>>;
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
  let selected: string[] = [];
  const run: ImageRun = { img, foreign: new Map() };
  try {
    const tags = await ctx.queue.add(() => client.tagList(img.ref.repository, { signal: ctx.signal }));
    selected = selectTags(tags, img.tags);
    if (selected.length === 0) log.warn({ available: tags.length }, 'no tag matches the filters');
    // Unchanged tags are marked checked together: one commit per image, not one per tag.
    const untouched: SourceTagKey[] = [];
    await Promise.all(
      selected.map(async (tag) => {
        try {
          const moved = await syncTag(ctx, run, client, tag);
          if (moved) changed++;
          else {
            unchanged++;
            untouched.push(repoKey(img, tag));
          }
        } catch (err) {
          failed++;
          const fe = toFerryError(err, 'INTERNAL', { reference: `${img.source}:${tag}` });
          errors.push({ tag, code: fe.code, message: fe.message });
          log.error({ tag, code: fe.code, err: fe.message }, 'tag failed');
        }
      }),
    );
    ctx.store.touchTags(untouched);
  } catch (err) {
    const fe = toFerryError(err, 'INTERNAL', { reference: img.source });
    errors.push({ code: fe.code, message: fe.message });
    failed++;
    log.error({ code: fe.code, err: fe.message }, 'image failed');
  }
  const ok = errors.length === 0;
  ctx.store.recordSourceResult(img.name, ok ? { ok } : { ok, error: errors[0]?.message ?? 'failed' });
  ctx.emit({ type: 'image-done', image: img.name, ok, changed, unchanged, failed });
  const foreignLayers = [...run.foreign.values()];
  const skipped = foreignLayers.filter((f) => !f.stored);
  if (skipped.length > 0) {
    log.warn({ layers: skipped.map((f) => ({ digest: f.digest, mediaType: f.mediaType, urls: f.urls })) }, 'foreign layers left out (non-distributable; set foreignLayers: fetch to carry them)');
  }
  return { name: img.name, ok, tagsSelected: selected.length, changed, unchanged, failed, errors, foreignLayers };
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
  const stored = ctx.store.getTag(key);
  const platforms = img.platforms ? [...img.platforms].sort() : null;
  const samePlatforms = JSON.stringify(stored?.platforms ?? null) === JSON.stringify(platforms);
  const same = stored !== undefined && stored.digest === head.digest && samePlatforms && stored.target === img.target;
  // Layers an entry now set to fetch left out before: fetched now, and journaled so they travel.
  const contentAdded = same && lacksForeignLayers(ctx, run, head.digest);
  if (same && !contentAdded) return false;
  // Changed (or first seen): fetch by digest so what we store is exactly what HEAD announced.
  const top = await fetchManifest(ctx, client, repo, head.digest);
  let kept: Digest[] = [];
  if (top.parsed.kind === 'index') {
    const children = top.parsed.index.manifests.filter((d) => !platforms || platforms.some((p) => platformMatches(d.platform, p)));
    if (children.length === 0) {
      const have = top.parsed.index.manifests.map((d) => platformString(d.platform)).join(', ');
      throw new FerryError('NOT_FOUND', `${formatReference({ ...img.ref, tag })}: no platform matches ${platforms?.join(', ')} (index has ${have})`, {
        registry: img.ref.registry,
        repository: repo,
        reference: tag,
      });
    }
    await allSettledOrThrow(children.map((c) => syncImageManifest(ctx, run, client, repo, c)));
    kept = children.map((c) => c.digest);
    // The index's references are all its children, whatever this entry keeps (the tag row's
    // kept set says that): another entry may mirror the same index with other platforms.
    await ctx.store.putManifest({ digest: head.digest, mediaType: top.mediaType, bytes: top.bytes, references: top.parsed.index.manifests });
  } else {
    await storeImageContent(ctx, run, client, repo, head.digest, top);
  }
  const r = ctx.store.setTag({
    ...key,
    target: img.target,
    digest: head.digest,
    mediaType: top.mediaType,
    platforms,
    keptDigests: kept,
    contentAdded,
  });
  if (r.changed) ctx.emit({ type: 'tag-changed', image: img.name, tag, digest: head.digest, previous: stored?.digest });
  return r.changed || !stored;
}

/**
 * True when the entry fetches foreign layers and the stored manifest (or a stored child of it)
 * lacks one: left out while the entry was `skip`, so the content is fetched again.
 */
function lacksForeignLayers(ctx: SyncContext, run: ImageRun, digest: Digest, seen = new Set<string>()): boolean {
  if (run.img.foreignLayers !== 'fetch' || seen.has(digest)) return false;
  seen.add(digest);
  const m = ctx.store.getManifest(digest);
  if (!m) return false;
  return m.references.some((r) =>
    isNonDistributableMediaType(r.mediaType) ? !ctx.store.hasBlob(r.digest) : ctx.store.hasManifest(r.digest) && lacksForeignLayers(ctx, run, r.digest, seen),
  );
}

interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly parsed: ParsedManifest;
}

async function fetchManifest(ctx: SyncContext, client: RegistryClient, repo: string, digest: Digest): Promise<FetchedManifest> {
  const m = await ctx.queue.add(() => client.manifestGet(repo, digest, { signal: ctx.signal }));
  ctx.counters.manifestsFetched++;
  const parsed = parseManifest(m.bytes, m.mediaType);
  return { bytes: m.bytes, mediaType: parsed.mediaType, parsed };
}

/** Ensures a child manifest of an index and its blobs are stored (skipped when already complete). */
async function syncImageManifest(ctx: SyncContext, run: ImageRun, client: RegistryClient, repo: string, d: Descriptor): Promise<void> {
  // A manifest row exists only after all its blobs were stored, so its presence means complete
  // (but for foreign layers an entry now set to fetch left out before).
  if (ctx.store.hasManifest(d.digest) && !lacksForeignLayers(ctx, run, d.digest)) return;
  const m = await fetchManifest(ctx, client, repo, d.digest);
  if (m.parsed.kind === 'index') {
    // Nested indexes are rare but legal: keep all their children.
    await allSettledOrThrow(m.parsed.index.manifests.map((c) => syncImageManifest(ctx, run, client, repo, c)));
    await ctx.store.putManifest({ digest: d.digest, mediaType: m.mediaType, bytes: m.bytes, references: m.parsed.index.manifests });
    return;
  }
  await storeImageContent(ctx, run, client, repo, d.digest, m, d.platform ? platformString(d.platform) : undefined);
}

async function storeImageContent(
  ctx: SyncContext,
  run: ImageRun,
  client: RegistryClient,
  repo: string,
  digest: Digest,
  m: FetchedManifest,
  platform?: string,
): Promise<void> {
  const refs = referencedDescriptors(m.parsed);
  // Foreign layers are not in the registry (it accepted the manifest without them): left out by
  // default, as registries and skopeo do, or fetched from their urls without any credentials.
  const foreign = m.parsed.kind === 'image' ? m.parsed.manifest.layers.filter(isForeignLayer) : [];
  await ensureBlobs(ctx, client, repo, foreign.length > 0 ? refs.filter((d) => !foreign.includes(d)) : refs);
  if (foreign.length > 0) {
    if (run.img.foreignLayers === 'fetch') {
      const details = { registry: client.host, repository: repo };
      await ensureBlobs(ctx, client, repo, foreign, (d) => foreignBlobGet(d, { details, userAgent: 'ferry/0.1', ...(ctx.signal ? { signal: ctx.signal } : {}) }));
    }
    for (const d of foreign) {
      if (run.foreign.has(d.digest)) continue;
      const layer: ForeignLayerReport = { digest: d.digest, mediaType: d.mediaType, size: d.size, urls: [...(d.urls ?? [])], stored: ctx.store.hasBlob(d.digest) };
      run.foreign.set(d.digest, layer);
      ctx.emit({ type: 'foreign-layer', image: run.img.name, layer });
    }
  }
  await ctx.store.putManifest({ digest, mediaType: m.mediaType, bytes: m.bytes, references: refs, ...(platform ? { platform } : {}) });
}

/**
 * Fetches the blobs the store lacks, once each per pass, through the shared queue: from the
 * registry, or through `open` (a foreign layer's urls).
 */
export async function ensureBlobs(
  ctx: SyncContext,
  client: RegistryClient,
  repo: string,
  descs: readonly Descriptor[],
  open?: (d: Descriptor) => Promise<Readable>,
): Promise<void> {
  await allSettledOrThrow(
    descs.map((d) => {
      if (ctx.store.hasBlob(d.digest)) return Promise.resolve();
      let p = ctx.inflight.get(d.digest);
      if (!p) {
        p = ctx.queue
          .add(
            async () => {
              if (ctx.store.hasBlob(d.digest)) return;
              ctx.emit({ type: 'blob-start', digest: d.digest, size: d.size });
              // The store hashes and size-checks the bytes before they are trusted: hashing them
              // in the client too would double the CPU per byte on the sync's hot path.
              const body = open ? await open(d) : await client.blobGet(repo, d.digest, { size: d.size, verify: false, signal: ctx.signal });
              const counted = new Transform({
                transform(chunk: Buffer, _enc, cb) {
                  ctx.emit({ type: 'blob-progress', bytes: chunk.length });
                  cb(null, chunk);
                },
              });
              // pipeline keeps an error listener on both streams: a body that fails before the
              // store has attached its own pipeline must not become an uncaught exception.
              pipeline(body, counted, () => {});
              const r = await ctx.store.writeBlob(d.digest, counted, { size: d.size, mediaType: d.mediaType, signal: ctx.signal });
              if (r.written) {
                ctx.counters.blobsFetched++;
                ctx.counters.bytesFetched += r.size;
              }
              ctx.emit({ type: 'blob-done', digest: d.digest, size: d.size });
            },
          )
          .finally(() => ctx.inflight.delete(d.digest));
        ctx.inflight.set(d.digest, p);
      }
      return p;
    }),
  );
}
