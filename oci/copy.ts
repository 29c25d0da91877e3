/**
 * One copy, whatever the ends: sync (registry → store), export (store → bundle), import
 * (bundle → registry or store), and any later medium. The ordering rules live here only:
 *
 * 1. every root's closure is worked out first (graph.ts), and a manifest neither end has stops
 *    the copy before anything is written;
 * 2. blobs, each once (a blob the sink has is not sent again; concurrent copies sharing
 *    `inflight` send it once between them), all settled before anything else happens;
 * 3. manifests, children before the indexes that list them, attachments after their subjects;
 *    then the attachments are recorded (digest tags, fallback index: `putAttachments`);
 * 4. tags last, only once every manifest of every root is in: a failure leaves no tag moved.
 *
 * A manifest the sink already has is complete: its subtree is neither walked nor sent
 * (`trustSink`, on by default). A root is always read, since its selection decides what follows.
 */
import { FerryError } from '../errors/index.js';
import type { Digest } from './digest.js';
import { closure, type Closure, type GraphManifest, type ManifestReader, type Selection } from './graph.js';
import type { Descriptor } from './manifest.js';
import type { Attachment, AttachmentFinder } from './referrers.js';
import type { CopiedImage, ImageSink, ImageSource, MediaCallOptions, PutBlobResult } from './media.js';

/** One image to copy: its root, what it selects, and the tag the sink moves to it. */
export interface CopyRoot<T = string> {
  readonly descriptor: Descriptor;
  readonly selection: Selection;
  /** The tag to move once everything is in; none: the content only. */
  readonly tag?: T;
}

/** A queue of tasks (p-queue's `add`): a slot is held for the whole task, body consumed included. */
export interface TaskQueue {
  add<R>(fn: () => Promise<R>): Promise<R>;
}

/** What to do with foreign layers: leave them out, copy them, or copy those the source has. */
export type ForeignPolicy = 'skip' | 'copy' | 'if-present';

/** Progress of one blob. */
export type BlobEvent =
  | { readonly type: 'start'; readonly descriptor: Descriptor }
  | { readonly type: 'done'; readonly descriptor: Descriptor; readonly result: PutBlobResult };

/** Options for copy. */
export interface CopyOptions<T = string> {
  readonly signal?: AbortSignal;
  /** Blob transfers (and, with the default reader, manifest reads) run through it. @default none: all at once */
  readonly queue?: TaskQueue;
  /** Manifest puts run through `queue` too (a sink across the network). @default false */
  readonly queueManifests?: boolean;
  /** Blob transfers under way by digest, shared by copies running together so each blob moves once. */
  readonly inflight?: Map<string, Promise<unknown>>;
  /** @default 'skip' */
  readonly foreign?: ForeignPolicy;
  /**
   * A manifest the sink has is complete: not walked, not sent, its blobs not asked for. False:
   * every manifest is walked and every blob asked for (a bundle: the chain carried a manifest
   * but maybe not a foreign layer it names). @default true
   */
  readonly trustSink?: boolean;
  /** Reads manifests for the graph. @default the source's `manifest(digest)` */
  readonly read?: ManifestReader;
  /** Finds attachments for selections that follow them. @default the source's `attachments` */
  readonly attachments?: AttachmentFinder;
  /** The error for manifests neither end has. @default MANIFEST_UNKNOWN naming them */
  readonly missing?: (root: CopyRoot<T>, missing: readonly Descriptor[]) => Error;
  /** Runs once every closure is known, before anything is written: throw to refuse the copy. */
  readonly check?: (images: ReadonlyArray<{ readonly root: CopyRoot<T>; readonly closure: Closure }>) => void | Promise<void>;
  readonly onBlob?: (e: BlobEvent) => void;
}

/** What a copy did. */
export interface CopyResult<T = string> {
  readonly images: ReadonlyArray<{ readonly root: CopyRoot<T>; readonly image: CopiedImage }>;
  readonly blobs: { readonly written: number; readonly mounted: number; readonly exists: number };
  /** Manifests put (not counting those the sink had). */
  readonly manifests: number;
}

/** Waits for every promise, then throws the first failure: no write outlives the copy that started it. */
async function settleAll(ps: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const settled = await Promise.allSettled(ps);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The graph's reader over a source: manifests by digest. */
export function sourceReader(source: Pick<ImageSource, 'manifest'>, opts: MediaCallOptions = {}): ManifestReader {
  return async (d) => {
    const m = await source.manifest(d.digest, opts);
    return m && { bytes: m.bytes, mediaType: m.mediaType };
  };
}

/** Copies the roots' closures from `source` to `sink`: blobs, then manifests children first, then tags. */
export async function copy<T>(source: ImageSource, sink: ImageSink<T>, roots: ReadonlyArray<CopyRoot<T>>, opts: CopyOptions<T> = {}): Promise<CopyResult<T>> {
  const staged = await copyContent(source, sink, roots, opts);
  await staged.moveTags();
  return staged;
}

/** A copy whose content is in and whose tags have not moved yet. */
export interface StagedCopy<T = string> extends CopyResult<T> {
  /**
   * Moves the tags: in the roots' order, or, given a queue (a sink across the network), all at
   * once through it, waiting for every one before it fails.
   */
  moveTags(queue?: TaskQueue): Promise<void>;
}

/**
 * Steps 2 and 3 of copy: everything but the tags. For tags that must move together across several
 * sinks (one registry repository each): run copyContent into each, then moveTags of each.
 */
export async function copyContent<T>(source: ImageSource, sink: ImageSink<T>, roots: ReadonlyArray<CopyRoot<T>>, opts: CopyOptions<T> = {}): Promise<StagedCopy<T>> {
  return (await planCopy(source, sink, roots, opts)).run();
}

/** A copy whose closures are known and checked, before anything is written. */
export interface CopyPlan<T = string> {
  readonly closures: ReadonlyArray<{ readonly root: CopyRoot<T>; readonly closure: Closure }>;
  /** Steps 2 and 3: blobs, then manifests; the tags are left to the result's moveTags. */
  run(): Promise<StagedCopy<T>>;
}

/**
 * Step 1 of copy: the closures, and the `check`, with nothing written. Several sinks whose
 * copies must all be checked before any of them writes: plan each, then run each, then move tags.
 */
export async function planCopy<T>(source: ImageSource, sink: ImageSink<T>, roots: ReadonlyArray<CopyRoot<T>>, opts: CopyOptions<T> = {}): Promise<CopyPlan<T>> {
  const call: MediaCallOptions = opts.signal ? { signal: opts.signal } : {};
  const queue = opts.queue;
  const baseRead: ManifestReader =
    opts.read ?? (queue ? ((r) => (d) => queue.add(async () => r(d)))(sourceReader(source, call)) : sourceReader(source, call));
  const trust = opts.trustSink !== false;
  const known = new Map<Digest, Promise<boolean>>();
  const sinkHas = (d: Descriptor): Promise<boolean> => {
    let p = known.get(d.digest);
    if (!p) known.set(d.digest, (p = sink.hasManifest(d, call)));
    return p;
  };

  const fromSource = source.attachments?.bind(source);
  const sourceFind: AttachmentFinder | undefined =
    opts.attachments ?? (fromSource ? (d) => (queue ? queue.add(() => fromSource(d, call)) : fromSource(d, call)) : undefined);

  // 1. Closures. Roots with one digest and one selection (tags of one image) share one closure:
  // it is read and worked out once, and memory grows with the images, not with their tags.
  const closures: Array<{ root: CopyRoot<T>; closure: Closure }> = [];
  const shared = new Map<string, Promise<Closure>>();
  for (const root of roots) {
    const key = `${root.descriptor.digest} ${root.descriptor.mediaType} ${JSON.stringify(root.selection)}`;
    let pending = shared.get(key);
    if (!pending) {
      const read: ManifestReader = async (d) => (trust && d.digest !== root.descriptor.digest && (await sinkHas(d)) ? 'external' : baseRead(d));
      pending = closure(root.descriptor, read, root.selection, sourceFind);
      shared.set(key, pending);
    }
    const c = await pending;
    if (c.missing.length > 0) {
      throw opts.missing?.(root, c.missing) ??
        new FerryError('MANIFEST_UNKNOWN', `${root.descriptor.digest}: manifest ${c.missing.map((d) => d.digest).join(', ')} is in neither the source nor the destination`, {
          digest: c.missing[0]!.digest,
        });
    }
    closures.push({ root, closure: c });
  }
  await opts.check?.(closures);
  return { closures, run: () => runCopy(source, sink, closures, call, sinkHas, opts) };
}

async function runCopy<T>(
  source: ImageSource,
  sink: ImageSink<T>,
  closures: ReadonlyArray<{ readonly root: CopyRoot<T>; readonly closure: Closure }>,
  call: MediaCallOptions,
  sinkHas: (d: Descriptor) => Promise<boolean>,
  opts: CopyOptions<T>,
): Promise<StagedCopy<T>> {
  opts.signal?.throwIfAborted();
  const queue = opts.queue;

  // The manifests to put, each once (the first root's fallback for a shared root), and their blobs.
  const toPut = new Map<Digest, { m: GraphManifest; fallback: Closure['filtered'] }>();
  const present = new Set<Digest>();
  for (const { closure: c } of closures) {
    for (const m of c.manifests) {
      if (toPut.has(m.digest) || present.has(m.digest)) continue;
      if (await sinkHas(m.descriptor)) {
        present.add(m.digest);
        continue;
      }
      toPut.set(m.digest, { m, fallback: m.digest === c.root.digest ? c.filtered : undefined });
    }
  }
  for (const { closure: c } of closures) {
    if (c.filtered && toPut.has(c.root.digest) && toPut.get(c.root.digest)!.fallback === undefined) toPut.get(c.root.digest)!.fallback = c.filtered;
  }
  const blobs = new Map<Digest, Descriptor>();
  // Trusted, a manifest the sink has vouches for its blobs; untrusted, each blob answers for itself.
  const withBlobs = opts.trustSink !== false ? [...toPut.values()].map((e) => e.m) : closures.flatMap((c) => c.closure.manifests);
  for (const m of withBlobs) {
    for (const b of m.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
    for (const f of m.foreign) {
      if (blobs.has(f.digest) || opts.foreign === undefined || opts.foreign === 'skip') continue;
      if (opts.foreign === 'copy' || (await source.hasBlob(f, call))) blobs.set(f.digest, f);
    }
  }

  // 2. Blobs.
  const counts = { written: 0, mounted: 0, exists: 0 };
  const one = async (d: Descriptor): Promise<void> => {
    // Asked again inside the queue slot: another copy may have put it meanwhile.
    if (await sink.hasBlob(d, call)) {
      counts.exists++;
      return;
    }
    opts.onBlob?.({ type: 'start', descriptor: d });
    const r = await sink.putBlob(d, () => source.blob(d, call), call);
    counts[r]++;
    opts.onBlob?.({ type: 'done', descriptor: d, result: r });
  };
  await settleAll(
    [...blobs.values()].map(async (d) => {
      // A blob the sink has takes no queue slot.
      if (await sink.hasBlob(d, call)) {
        counts.exists++;
        return;
      }
      let p = opts.inflight?.get(d.digest);
      if (p) return p;
      p = (queue ? queue.add(() => one(d)) : one(d)).finally(() => opts.inflight?.delete(d.digest));
      opts.inflight?.set(d.digest, p);
      return p;
    }),
  );
  await sink.flush?.(call);
  opts.signal?.throwIfAborted();

  // 3. Manifests, children first: each waits for the children it lists, an attachment for its subject.
  const attachments = new Map<string, Attachment>();
  const subjectsOf = new Map<Digest, Digest[]>();
  for (const { closure: c } of closures) {
    for (const a of c.attachments) {
      attachments.set(`${a.subject} ${a.descriptor.digest} ${a.tag ?? ''}`, a);
      subjectsOf.set(a.descriptor.digest, [...(subjectsOf.get(a.descriptor.digest) ?? []), a.subject]);
    }
  }
  const held = new Map<Digest, Promise<Digest>>();
  const putOne = (digest: Digest): Promise<Digest> => {
    let p = held.get(digest);
    if (p) return p;
    const entry = toPut.get(digest)!;
    p = (async () => {
      const before = [...entry.m.children.map((c) => c.digest), ...(subjectsOf.get(digest) ?? [])];
      await settleAll(before.filter((d) => toPut.has(d)).map((d) => putOne(d)));
      // Queued only once its children are in, so a waiting index never holds a slot.
      const put = (): Promise<Digest> => sink.putManifest(entry.fallback ? { manifest: entry.m, fallback: entry.fallback } : { manifest: entry.m }, call);
      return queue && opts.queueManifests ? queue.add(put) : put();
    })();
    held.set(digest, p);
    return p;
  };
  await settleAll([...toPut.keys()].map(putOne));
  if (attachments.size > 0) await sink.putAttachments?.([...attachments.values()], call);

  // 4. Tags.
  const images: Array<{ root: CopyRoot<T>; image: CopiedImage }> = [];
  for (const { root, closure: c } of closures) {
    const top = c.manifests[c.manifests.length - 1];
    const digest = held.has(c.root.digest) ? await held.get(c.root.digest)! : c.root.digest;
    const bytes = digest === c.root.digest ? top?.bytes : c.filtered?.digest === digest ? c.filtered.bytes : undefined;
    const image: CopiedImage = { root: c.root, digest, mediaType: top?.mediaType ?? c.root.mediaType, bytes, selection: root.selection, closure: c };
    images.push({ root, image });
  }
  return {
    images,
    blobs: counts,
    manifests: toPut.size,
    async moveTags(tagQueue?: TaskQueue) {
      opts.signal?.throwIfAborted();
      if (tagQueue) {
        // After a failure, the tags not yet under way stay where they are.
        let failed = false;
        const one = async (tag: T, image: CopiedImage): Promise<void> => {
          if (failed) return;
          try {
            await sink.putTag(tag, image, call);
          } catch (err) {
            failed = true;
            throw err;
          }
        };
        await settleAll(
          images.flatMap(({ root: { tag }, image }) => (tag === undefined ? [] : [tagQueue.add(() => one(tag, image))])),
        );
        return;
      }
      for (const { root, image } of images) if (root.tag !== undefined) await sink.putTag(root.tag, image, call);
    },
  };
}

