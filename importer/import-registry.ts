/**
 * Import into an OCI registry. While the tar streams, blobs go up (a blob pushed under a digest
 * the registry verifies is invisible and harmless): large ones straight from the tar, small
 * ones spooled and pushed concurrently through a queue. Manifests (children before indexes)
 * and then tags are pushed only in commit(), after every entry of the bundle verified, so a
 * damaged bundle never leaves a tag behind.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import PQueue from 'p-queue';
import { BundleImageSource, checkFilteredImage, imageSelectionKey, MAX_PLAN_BYTES, PLAN_FILE, type BundleManifest } from '../bundle/index.js';
import { FerryError, isFerryError } from '../errors/index.js';
import {
  ALL_ATTACHMENTS,
  ANNOTATION_FILTERED_FROM,
  planCopy,
  MAX_MANIFEST_BYTES,
  isForeignLayer,
  isIndexMediaType,
  parseManifest,
  referencedDescriptors,
  type Attachment,
  type BlobOpener,
  type CopiedImage,
  type Descriptor,
  type Digest,
  type FetchedManifest,
  type ImageSink,
  type ImageSource,
  type ManifestPut,
  type ManifestRead,
  type PutBlobResult,
} from '../oci/index.js';
import { publishAttachments, refusedForMissingChildren, type BlobPutResult, type ManifestBody, type RegistryClient } from '../registry/index.js';
import type { Ledger, RecordItemInput } from '../store/index.js';
import { emptyReport, TagReportList, type ImportTarget, type PlanLine, type TargetContext, type TargetReport } from './import-target.js';
import { planPrune, pruneAtRegistry } from './import-prune.js';
import { openSource, spoolCapped, prefixed, readSmall, writeStreamFile, type EntrySource } from './import-util.js';

/** Options for a registry target. */
export interface RegistryTargetOptions {
  readonly client: RegistryClient;
  /** Intranet namespace put in front of every target path. */
  readonly prefix?: string;
  /** Concurrent blob uploads and mounts. @default 4 */
  readonly concurrency?: number;
  /** Concurrent tag moves (each a manifest PUT under the tag). @default twice `concurrency` */
  readonly tagConcurrency?: number;
  /** Blobs of at least this many bytes stream straight from the tar into the upload. @default 8 MiB */
  readonly streamThreshold?: number;
  /** Delete the tags the bundle removes (`pruned`) where Ferry placed them. @default true */
  readonly prune?: boolean;
}

const NEEDS_BYTES_OP = 'import: mount refused';

/** The tags of one repository that name one image (digest, media type, platforms): positions in the signed images[]. */
interface TagGroup {
  readonly repo: string;
  readonly ats: number[];
}
/** Moved tags recorded in the ledger per transaction (each commit syncs the ledger to disk). */
const TAG_RECORD_BATCH = 200;
/** Tags whose ledger records are read in one query before they move. */
const TAG_PAGE = 256;

/**
 * A refused image manifest that names foreign layers: says why a registry may refuse it (it
 * validates their urls; distribution accepts none unless validation.manifests.urls.allow is set).
 */
function withForeignHint(err: unknown, bytes: Buffer, mediaType: string): unknown {
  if (!isFerryError(err)) return err;
  let foreign: string[];
  try {
    const parsed = parseManifest(bytes, mediaType);
    foreign = parsed.kind === 'image' ? parsed.manifest.layers.filter(isForeignLayer).map((d) => d.digest) : [];
  } catch {
    return err;
  }
  if (foreign.length === 0) return err;
  return new FerryError(
    err.code,
    `${err.message} (the manifest names foreign layers ${foreign.join(', ')} by their urls: the registry must accept such urls, ` +
      'e.g. docker-registry with validation.manifests.urls.allow)',
    err.details,
  );
}

/** An OCI registry as an import target. */
export class RegistryTarget implements ImportTarget {
  readonly name: string;
  readonly kind = 'registry' as const;
  private readonly client: RegistryClient;
  private readonly prefix: string | undefined;
  private readonly threshold: number;
  private readonly queue: PQueue;
  private readonly tagConcurrency: number;
  private ctx: TargetContext | undefined;
  private jobs: Array<Promise<void>> = [];
  private errors: unknown[] = [];
  /** The bundle's images as a one-pass source: manifests kept as they stream. */
  private bundle: BundleImageSource | undefined;
  private tags: TagReportList | undefined;
  private readonly prune: boolean;
  /** The repository each blob went to in this run. */
  private placed = new Map<Digest, string>();
  private spooled = new Map<Digest, string>();
  /** Which repository a manifest or blob belongs to, learned from the images and parsed manifests. */
  private repoOf = new Map<Digest, string>();
  private home = '';
  private counts = { uploaded: 0, mounted: 0, existing: 0, skipped: 0, bytes: 0 };
  private manifestCount = 0;
  /** Upstream indexes this import pushed as their filtered index instead, by repository and digest. */
  private readonly filteredRoots = new Set<string>();
  private aborted = false;
  /** Foreign layers left out, by design (neither carried nor required). */
  private foreign = new Set<Digest>();
  /** Tags moved and not yet in the ledger: recorded in batches, one commit each. */
  private movedTags: RecordItemInput[] = [];

  constructor(opts: RegistryTargetOptions) {
    this.client = opts.client;
    this.prefix = opts.prefix;
    this.name = `registry:${opts.client.host}${opts.prefix ? `/${opts.prefix.replace(/^\/+|\/+$/g, '')}` : ''}`;
    this.threshold = opts.streamThreshold ?? 8 * 1024 * 1024;
    this.queue = new PQueue({ concurrency: opts.concurrency ?? 4 });
    // A tag PUT is small and the registry's work (it checks the manifest's blobs, writes the tag's
    // links): more of them at once than blob transfers.
    this.tagConcurrency = opts.tagConcurrency ?? 2 * (opts.concurrency ?? 4);
    this.prune = opts.prune !== false;
  }

  private repo(target: string): string {
    return prefixed(this.prefix, target);
  }

  private get c(): TargetContext {
    if (!this.ctx) throw new FerryError('INTERNAL', 'registry target used before begin()');
    return this.ctx;
  }

  private get source(): BundleImageSource {
    if (!this.bundle) throw new FerryError('INTERNAL', 'registry target used before begin()');
    return this.bundle;
  }

  /** True when this run or the ledger put the blob in the repository. */
  hasBlobIn(repo: string, digest: Digest): boolean {
    return this.placed.get(digest) === repo || this.ledger?.isDone(this.name, 'blob', repo, digest) === true;
  }

  /** True when the ledger says this image manifest is in the repository (an index is always pushed again). */
  manifestDone(repo: string, d: Descriptor): boolean {
    return !isIndexMediaType(d.mediaType) && this.ledger?.isDone(this.name, 'manifest', repo, d.digest) === true;
  }

  private get ledger(): Ledger | undefined {
    return this.ctx?.ledger;
  }

  private sig(): { signal?: AbortSignal } {
    return this.ctx?.signal ? { signal: this.ctx.signal } : {};
  }

  wants(path: string): boolean {
    return path.startsWith('blobs/') || path === PLAN_FILE;
  }

  async missingRequires(m: BundleManifest, ledger: Ledger | undefined, signal?: AbortSignal): Promise<string[]> {
    const repos = [...new Set(m.images.map((i) => this.repo(i.target)))].sort();
    const s = signal ? { signal } : {};
    const missing: string[] = [];
    await Promise.all(
      m.requires.map((d) =>
        this.queue.add(async () => {
          if (ledger && (ledger.scopesWith(this.name, d, 'blob').length > 0 || ledger.scopesWith(this.name, d, 'manifest').length > 0)) return;
          for (const repo of repos) {
            if (await this.client.blobHead(repo, d, s)) return;
            if (await this.client.manifestHead(repo, d, s)) return;
          }
          missing.push(d);
        }),
      ),
    );
    return missing.sort();
  }

  plan(m: BundleManifest, ledger: Ledger | undefined): PlanLine[] {
    const out: PlanLine[] = [];
    for (const f of m.files) {
      if (!f.path.startsWith('blobs/')) continue;
      const d = `sha256:${f.sha256}`;
      const done = ledger !== undefined && ledger.scopesWith(this.name, d, f.mediaType ? 'manifest' : 'blob').length > 0;
      out.push({ target: this.name, action: done ? 'skip' : f.mediaType ? 'push-manifest' : 'push-blob', what: f.mediaType ? `${d} (${f.mediaType})` : d, size: f.size });
    }
    for (const im of m.images) {
      out.push({ target: this.name, action: 'set-tag', what: `${this.repo(im.target)}:${im.tag} → ${im.digest}`, size: 0 });
    }
    if (this.prune) out.push(...planPrune(this.name, ledger, (t) => this.repo(t), m.pruned ?? []));
    return out;
  }

  async begin(ctx: TargetContext): Promise<void> {
    this.ctx = ctx;
    this.bundle = new BundleImageSource(ctx.manifest);
    this.tags = new TagReportList(ctx.manifest.images);
    // Walked in target order without a sorted copy of every image: a digest named in several
    // repositories belongs to the first of them.
    let first: string | undefined;
    for (const im of ctx.manifest.images) if (first === undefined || im.target < first) first = im.target;
    this.home = first !== undefined ? this.repo(first) : '';
    const firstTarget = new Map<Digest, string>();
    for (const im of ctx.manifest.images) {
      const t = firstTarget.get(im.digest);
      if (t === undefined || im.target < t) firstTarget.set(im.digest, im.target);
    }
    for (const [d, t] of firstTarget) if (!this.repoOf.has(d)) this.repoOf.set(d, this.repo(t));
  }

  private throwIfFailed(): void {
    if (this.errors.length > 0) throw this.errors[0];
  }

  async take(src: EntrySource): Promise<void> {
    this.throwIfFailed();
    if (src.path === PLAN_FILE) {
      this.source.keepPlan(await spoolCapped(src, this.c.tmpDir, MAX_PLAN_BYTES, this.c.signal));
      return;
    }
    const digest = `sha256:${src.sha256}` as Digest;
    if (src.mediaType !== undefined) {
      const bytes = await readSmall(openSource(src, this.c.signal), MAX_MANIFEST_BYTES, src.path);
      this.source.keep(digest, bytes, src.mediaType);
      this.learn(digest, bytes, src.mediaType);
      return;
    }
    const known = this.ledger?.scopesWith(this.name, digest, 'blob') ?? [];
    if (known.length > 0) {
      // Recorded as done: skipped without even a HEAD; commit() mounts it where it is needed.
      this.placed.set(digest, known[0]!);
      this.counts.skipped++;
      return;
    }
    const repo = this.repoOf.get(digest) ?? this.home;
    if (repo === '') return; // a blob no image needs: nothing to push it into
    if (src.file === undefined && src.stream && src.size >= this.threshold) {
      const stream = src.stream;
      let entryError: unknown;
      stream.once('error', (err: unknown) => (entryError = err));
      let used = false;
      const body = (): typeof stream => {
        if (used) {
          throw new FerryError('NETWORK', `${src.path} streams from the bundle and cannot be sent twice; run the import again to resume`, { file: src.path });
        }
        used = true;
        return stream;
      };
      try {
        await this.upload(repo, digest, src.size, body);
      } catch (err) {
        // A damaged entry is the real cause: name the file, not the aborted upload.
        throw entryError ?? err;
      }
      return;
    }
    let file = src.file;
    if (file === undefined) {
      file = join(this.c.tmpDir, `blob-${src.sha256}`);
      await writeStreamFile(openSource(src, this.c.signal), file, this.c.signal);
    }
    this.spooled.set(digest, file);
    const f = file;
    this.enqueue(() => this.upload(repo, digest, src.size, () => createReadStream(f)));
  }

  /** Records which repository the children and blobs of a parsed manifest belong to. */
  private learn(digest: Digest, bytes: Buffer, mediaType: string): void {
    const repo = this.repoOf.get(digest);
    if (repo === undefined) return;
    try {
      for (const d of referencedDescriptors(parseManifest(bytes, mediaType))) if (!this.repoOf.has(d.digest)) this.repoOf.set(d.digest, repo);
    } catch {
      // commit() parses again and reports the error with its context
    }
  }

  private enqueue(fn: () => Promise<unknown>): void {
    this.jobs.push(
      // Queued work is skipped once the import failed (p-queue's clear() would leave its promises pending forever).
      this.queue.add(() => (this.aborted ? undefined : fn())).then(
        () => undefined,
        (err: unknown) => {
          this.errors.push(err);
        },
      ),
    );
  }

  private async upload(repo: string, digest: Digest, size: number, body: () => Readable, mountFrom?: string): Promise<BlobPutResult> {
    const r = await this.client.blobPut(repo, digest, size, body, { ...this.sig(), ...(mountFrom ? { mountFrom } : {}) });
    this.counts[r === 'exists' ? 'existing' : r]++;
    if (r === 'uploaded') this.counts.bytes += size;
    if (!this.placed.has(digest) || r !== 'mounted') this.placed.set(digest, repo);
    this.ledger?.recordItem({ target: this.name, kind: 'blob', scope: repo, key: digest, digest, state: 'done', bundleId: this.c.manifest.id, detail: null });
    return r;
  }

  /**
   * After every entry verified: one copy per repository (sorted), from what the bundle carries
   * (and what the repository or, through the ledger, another repository already holds) into
   * the repository, through the graph. Every repository's copy is planned and checked before any
   * of them pushes: every image's closure is complete and its carried filtered index is the one
   * the graph makes. Tags move last, only once every repository has its manifests.
   */
  async commit(): Promise<TargetReport> {
    await this.drain();
    await this.source.checkPlan();
    // One root per repository and distinct image (digest, media type, platforms): its tags are
    // positions in the signed images[], so per tag nothing is held but a number.
    const all = this.c.manifest.images;
    const byRepo = new Map<string, Map<string, TagGroup>>();
    for (const [at, im] of all.entries()) {
      const repo = this.repo(im.target);
      let groups = byRepo.get(repo);
      if (!groups) byRepo.set(repo, (groups = new Map()));
      const key = imageSelectionKey(im);
      const g = groups.get(key);
      if (g) g.ats.push(at);
      else groups.set(key, { repo, ats: [at] });
    }
    const needBytes = new Map<Digest, string[]>();
    const plans = [];
    for (const repo of [...byRepo.keys()].sort()) {
      const sink = new RepoSink(this, repo, needBytes);
      const roots = [...byRepo.get(repo)!.values()].map((g) => {
        const im = all[g.ats[0]!]!;
        return {
          descriptor: { digest: im.digest, mediaType: im.mediaType, size: this.source.carriedManifest(im.digest)?.bytes.length ?? 0 },
          selection: { platforms: im.platforms, attachments: ALL_ATTACHMENTS },
          tag: g,
        };
      });
      plans.push(
        await planCopy(this.stagedSource(repo), sink, roots, {
          ...this.sig(),
          // Mounts, HEADs and uploads share the target's bound on concurrent registry requests.
          queue: this.queue,
          queueManifests: true,
          read: this.source.reader((d) => this.queue.add(() => this.fromTarget(repo, d))),
          attachments: (d) => this.source.attachments(d),
          // A foreign layer left out upstream stays out: the registry accepts the manifest without it.
          foreign: 'if-present',
          missing: (root, lost) => {
            const d = lost[0]!;
            return d.digest === root.descriptor.digest
              ? new FerryError('REQUIRES_MISSING', `${repo}:${all[root.tag!.ats[0]!]!.tag}: manifest ${d.digest} is neither carried nor at the target`, { repository: repo, digest: d.digest })
              : new FerryError('REQUIRES_MISSING', `${this.client.host}/${repo}: manifest ${d.digest} is neither in the bundle nor at the target`, {
                  registry: this.client.host,
                  repository: repo,
                  digest: d.digest,
                });
          },
          check: (closures) => {
            for (const { root, closure } of closures) {
              // Checked before anything is pushed, for every image of the group: the carried bytes are the ones both importers push.
              for (const at of root.tag!.ats) checkFilteredImage(all[at]!, at, closure);
              for (const f of closure.foreign) if (!this.source.names(f.digest)) this.foreign.add(f.digest);
            }
          },
        }),
      );
    }
    // Every repository's closures are known and checked: now blobs and manifests, repository by
    // repository, and the tags last.
    const staged = [];
    for (const p of plans) staged.push(await p.run());
    // Tags move concurrently: a tag is a PUT of its manifest's bytes under the tag, the only way
    // the distribution API sets one.
    try {
      await this.moveTags(staged.flatMap((st) => st.images.map(({ root, image }) => ({ group: root.tag!, image }))));
    } finally {
      this.recordMovedTags();
    }
    // Removals after the tags moved: what the bundle removes, where Ferry placed it.
    const pruned =
      this.prune && this.ledger && this.c.manifest.pruned
        ? await pruneAtRegistry({ client: this.client, ledger: this.ledger, target: this.name, repo: (t) => this.repo(t), pruned: this.c.manifest.pruned, ...this.sig() })
        : [];
    return {
      ...emptyReport(this.name, 'registry'),
      blobs: { ...this.counts },
      manifests: this.manifestCount,
      tags: this.tags ?? [],
      foreignLayers: [...this.foreign].sort(),
      ...(pruned.length > 0 ? { pruned } : {}),
    };
  }

  /**
   * Moves every group's tags with `tagConcurrency` workers, each taking the next tag when its
   * last one is done (nothing queued per tag). The ledger is read a page of tags at a time; a
   * tag it holds at the image's digest is skipped. After a failure (or an abort) no tag is
   * started; every one under way settles before the first failure is thrown.
   */
  async moveTags(groups: ReadonlyArray<{ readonly group: TagGroup; readonly image: CopiedImage }>): Promise<void> {
    const next = this.tagsToMove(groups);
    let failure: { err: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (!failure) {
        try {
          this.c.signal?.throwIfAborted();
          const n = next.next();
          if (n.done) return;
          await this.pushTag(n.value.repo, n.value.tag, n.value.image, n.value.body);
          this.tags?.add(n.value.at, n.value.reported, false);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: this.tagConcurrency }, worker));
    if (failure) throw failure.err;
  }

  /** The tags to move, group by group, reading the ledger a page at a time (those it holds at the image's digest are reported as skipped). */
  private *tagsToMove(
    groups: ReadonlyArray<{ readonly group: TagGroup; readonly image: CopiedImage }>,
  ): Generator<{ repo: string; tag: string; at: number; image: CopiedImage; reported: ReturnType<typeof TagReportList.image>; body: () => Promise<ManifestBody> }> {
    const all = this.c.manifest.images;
    for (const { group, image } of groups) {
      const reported = TagReportList.image(group.repo, image.digest, image.root.digest);
      // One body for every tag of the image, its digest checked once: the bytes the copy read,
      // or one GET of the manifest the repository already had, made only when a tag needs it.
      let made: Promise<ManifestBody> | undefined;
      const body = (): Promise<ManifestBody> => (made ??= this.tagBody(group.repo, image));
      for (let from = 0; from < group.ats.length; from += TAG_PAGE) {
        const page = group.ats.slice(from, from + TAG_PAGE);
        const done = this.ledger?.tagsDone(
          this.name,
          group.repo,
          page.map((at) => all[at]!.tag),
        );
        for (const at of page) {
          const tag = all[at]!.tag;
          if (done?.get(tag) === image.digest) this.tags?.add(at, reported, true);
          else yield { repo: group.repo, tag, at, image, reported, body };
        }
      }
    }
  }

  /** The body the tags of an image are PUT with: the bytes the copy read, else one GET from the repository. */
  private async tagBody(repo: string, image: CopiedImage): Promise<ManifestBody> {
    const bytes = image.bytes
      ? Buffer.isBuffer(image.bytes)
        ? image.bytes
        : Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength)
      : Buffer.from((await this.client.manifestGet(repo, image.digest, this.sig())).bytes);
    const body = this.client.manifestBody(bytes, image.mediaType);
    if (body.digest !== image.digest) {
      throw new FerryError('DIGEST_MISMATCH', `import: ${this.client.host}/${repo}: the manifest for the tags of ${image.digest} has digest ${body.digest}`, {
        registry: this.client.host,
        repository: repo,
        digest: image.digest,
      });
    }
    return body;
  }

  /**
   * A manifest the bundle does not carry (an earlier bundle did): already in this repository
   * (a leaf: complete there), or copied from where the ledger put it.
   */
  private async fromTarget(repo: string, d: Descriptor): Promise<ManifestRead> {
    if (await this.client.manifestHead(repo, d.digest, this.sig())) return 'external';
    for (const from of this.ledger?.scopesWith(this.name, d.digest, 'manifest') ?? []) {
      try {
        const got = await this.client.manifestGet(from, d.digest, this.sig());
        return { bytes: got.bytes, mediaType: got.mediaType };
      } catch (err) {
        if (!isFerryError(err, 'MANIFEST_UNKNOWN') && !isFerryError(err, 'NOT_FOUND')) throw err;
      }
    }
    return undefined;
  }

  /** What this import holds of the bundle for one repository: carried manifests, spooled blobs. */
  private stagedSource(repo: string): ImageSource {
    return {
      manifest: async (ref): Promise<FetchedManifest | undefined> => {
        const got = this.source.carriedManifest(ref as Digest);
        return got && { digest: ref as Digest, mediaType: got.mediaType, size: got.bytes.length, bytes: got.bytes };
      },
      blob: async (d) => this.spoolOrNothing(repo, d.digest)(),
      hasBlob: async (d) => this.source.names(d.digest),
      hasManifest: async (d) => this.source.carries(d.digest),
    };
  }

  /** The bytes of a blob this run spooled, else a body that says they are not at hand (a second pass reads them). */
  spoolOrNothing(repo: string, digest: Digest): () => Readable {
    const spool = this.spooled.get(digest);
    return spool ? () => createReadStream(spool) : () => this.noBytes(repo, digest);
  }

  private noBytes(repo: string, digest: Digest): never {
    throw new FerryError('BLOB_UNKNOWN', `import: ${this.client.host}/${repo} refused to mount ${digest} and its bytes are not at hand`, {
      op: NEEDS_BYTES_OP,
      repository: repo,
      digest,
    });
  }

  private async drain(): Promise<void> {
    await this.queue.onIdle();
    await Promise.all(this.jobs);
    this.jobs = [];
    this.throwIfFailed();
  }

  /** Uploads the blobs a repository refused to mount, reading them from a second pass over the bundle. */
  async rereadFor(needBytes: Map<Digest, string[]>): Promise<void> {
    await this.drain();
    if (needBytes.size === 0) return;
    const paths = new Set([...needBytes.keys()].map((d) => `blobs/sha256/${d.slice(7)}`));
    await this.c.reread(paths, async (src) => {
      const d = `sha256:${src.sha256}` as Digest;
      const [first, ...rest] = needBytes.get(d) ?? [];
      if (first === undefined) return;
      await this.upload(first, d, src.size, () => openSource(src, this.c.signal));
      for (const r of rest) await this.upload(r, d, src.size, () => this.noBytes(r, d), first);
    });
    needBytes.clear();
  }

  /** Makes sure a repository has a blob: mounted from where it went, found by HEAD, or uploaded from its spool. */
  async ensureBlob(repo: string, digest: Digest, size: number, needBytes: Map<Digest, string[]>): Promise<PutBlobResult> {
    const from = this.placed.get(digest) ?? this.ledger?.scopesWith(this.name, digest, 'blob')[0];
    const spool = this.spooled.get(digest);
    if (from === undefined || from === repo) {
      if (await this.client.blobHead(repo, digest, this.sig())) {
        this.counts.existing++;
        this.ledger?.recordItem({ target: this.name, kind: 'blob', scope: repo, key: digest, digest, state: 'done', bundleId: this.c.manifest.id, detail: null });
        return 'exists';
      }
      if (spool) return toPut(await this.upload(repo, digest, size, () => createReadStream(spool)));
      throw new FerryError('REQUIRES_MISSING', `${this.client.host}/${repo}: blob ${digest} is neither in the bundle nor at the target`, {
        registry: this.client.host,
        repository: repo,
        digest,
      });
    }
    try {
      return toPut(await this.upload(repo, digest, size, this.spoolOrNothing(repo, digest), from));
    } catch (err) {
      if (!isFerryError(err) || err.details.op !== NEEDS_BYTES_OP) throw err;
      const list = needBytes.get(digest) ?? [];
      list.push(repo);
      needBytes.set(digest, list);
      return 'written';
    }
  }

  /** Pushes a manifest; an index refused for the children its platforms leave out goes up as its filtered index. */
  async pushManifest(repo: string, p: ManifestPut): Promise<Digest> {
    const n = p.manifest;
    const bytes = Buffer.from(n.bytes);
    let detail: string | null = null;
    let pushed = n.digest;
    try {
      await this.client.manifestPut(repo, n.digest, bytes, n.mediaType, this.sig());
    } catch (err) {
      if (n.parsed.kind === 'image') throw withForeignHint(err, bytes, n.mediaType);
      if (!p.fallback || !refusedForMissingChildren(err)) throw err;
      // The registry insists on every child (distribution 2.8 answers MANIFEST_BLOB_UNKNOWN): push
      // the index with only the platforms carried, annotated with the upstream digest: the bytes
      // the bundle carries (checked equal to the graph's before anything was pushed), which
      // import.sh pushes too.
      const f = p.fallback;
      await this.client.manifestPut(repo, f.digest, f.bytes, n.mediaType, this.sig());
      pushed = f.digest;
      this.filteredRoots.add(`${repo}@${n.digest}`);
      detail = `${ANNOTATION_FILTERED_FROM} ${n.digest}`;
      this.c.logger?.warn({ repository: repo, upstream: n.digest, pushed: f.digest }, 'registry refused an index with platforms left out: pushed a filtered index');
    }
    this.manifestCount++;
    this.ledger?.recordItem({ target: this.name, kind: 'manifest', scope: repo, key: n.digest, digest: pushed, state: 'done', bundleId: this.c.manifest.id, detail });
    return pushed;
  }

  /**
   * Attachments, once every manifest of the repository is in and before any tag moves: digest
   * tags pushed as tags; referrers indexed by a registry with the referrers API (seen from
   * `OCI-Subject` on their PUT), else listed in the fallback tag's index, merged with its entries.
   */
  async pushAttachments(repo: string, attachments: readonly Attachment[]): Promise<void> {
    const r = await publishAttachments(
      this.client,
      repo,
      attachments,
      async (d) => this.source.carriedManifest(d.digest) ?? (await this.client.manifestGet(repo, d.digest, this.sig())),
      this.sig(),
    );
    this.c.logger?.info({ repository: repo, attachments: attachments.length, digestTags: r.tags, fallbackIndexes: r.fallbackIndexes, referrersApi: r.referrersApi }, 'attachments published');
    // A signature over an upstream index names its digest: against the filtered index the tag
    // names here it cannot verify; those of the per-platform manifests (same digests) still do.
    const unverifiable = attachments.filter((a) => this.filteredRoots.has(`${repo}@${a.subject}`));
    if (unverifiable.length > 0) {
      this.c.logger?.warn(
        { repository: repo, subjects: [...new Set(unverifiable.map((a) => a.subject))], attachments: unverifiable.map((a) => a.descriptor.digest) },
        'attachments of an index the registry took only filtered: they travel, but verify only against the upstream index; the per-platform manifests keep their digests and their signatures',
      );
    }
  }

  /** Moves a tag (moveTags skips those the ledger already holds at this digest); `body` gives the manifest, shared by the image's tags. */
  async pushTag(repo: string, tag: string, image: CopiedImage, body: () => Promise<ManifestBody>): Promise<void> {
    await this.client.manifestPutBody(repo, tag, await body(), this.sig());
    const filteredFrom = image.digest !== image.root.digest ? image.root.digest : undefined;
    this.movedTags.push({
      target: this.name,
      kind: 'tag',
      scope: repo,
      key: tag,
      digest: image.digest,
      state: 'done',
      bundleId: this.c.manifest.id,
      detail: filteredFrom ? `${ANNOTATION_FILTERED_FROM} ${filteredFrom}` : null,
    });
    if (this.movedTags.length >= TAG_RECORD_BATCH) this.recordMovedTags();
  }

  /**
   * Writes the moved tags to the ledger in one transaction. A kill before it loses at most one
   * batch of records: those tags are moved again by the next import (the same bytes).
   */
  private recordMovedTags(): void {
    const batch = this.movedTags;
    this.movedTags = [];
    this.ledger?.recordItems(batch);
  }

  /**
   * Stops the queued uploads and waits for those under way. Blobs already pushed stay: the
   * distribution API gives a client no general way to delete them (DELETE is optional and mostly
   * disabled), and they are harmless: untagged, no manifest names them, no client sees them. An
   * import of the bundle again reuses them (the ledger knows them); otherwise the registry's own
   * garbage collection removes them. The error message says so.
   */
  async abort(): Promise<string | undefined> {
    this.aborted = true;
    await this.queue.onIdle().catch(() => undefined);
    await Promise.all(this.jobs).catch(() => undefined);
    this.jobs = [];
    const pushed = this.counts.uploaded + this.counts.mounted;
    if (pushed === 0) return undefined;
    return (
      `${pushed} blob(s) already pushed to ${this.name} stay there untagged (no tag or manifest refers to them, so no client sees them): ` +
      `importing the bundle again reuses them; otherwise the registry's garbage collection removes them`
    );
  }
}

/** BlobPutResult in the words of a sink. */
function toPut(r: BlobPutResult): PutBlobResult {
  return r === 'uploaded' ? 'written' : r;
}

/** One repository of the registry target as a sink: the target's placement, ledger and counts. */
class RepoSink implements ImageSink<TagGroup> {
  constructor(
    private readonly target: RegistryTarget,
    private readonly repo: string,
    private readonly needBytes: Map<Digest, string[]>,
  ) {}

  async hasBlob(d: Descriptor): Promise<boolean> {
    return this.target.hasBlobIn(this.repo, d.digest);
  }

  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.target.manifestDone(this.repo, d);
  }

  /** The body is this run's spool of the blob (or a second pass), never the copy's opener. */
  async putBlob(d: Descriptor, _open: BlobOpener): Promise<PutBlobResult> {
    return this.target.ensureBlob(this.repo, d.digest, d.size, this.needBytes);
  }

  async flush(): Promise<void> {
    await this.target.rereadFor(this.needBytes);
  }

  putManifest(p: ManifestPut): Promise<Digest> {
    return this.target.pushManifest(this.repo, p);
  }

  putAttachments(attachments: readonly Attachment[]): Promise<void> {
    return this.target.pushAttachments(this.repo, attachments);
  }

  putTag(group: TagGroup, image: CopiedImage): Promise<void> {
    return this.target.moveTags([{ group, image }]);
  }
}
