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
import { checkFilteredImage, type BundleManifest } from '../bundle/index.js';
import { FerryError, isFerryError } from '../errors/index.js';
import {
  ANNOTATION_FILTERED_FROM,
  filteredIndex,
  MAX_MANIFEST_BYTES,
  isForeignLayer,
  parseManifest,
  platformMatches,
  referencedDescriptors,
  type Digest,
} from '../oci/index.js';
import type { BlobPutResult, RegistryClient } from '../registry/index.js';
import type { Ledger } from '../store/index.js';
import { emptyReport, type ImportTarget, type PlanLine, type TagReport, type TargetContext, type TargetReport } from './import-target.js';
import { openSource, prefixed, readSmall, writeStreamFile, type EntrySource } from './import-util.js';

/** Options for a registry target. */
export interface RegistryTargetOptions {
  readonly client: RegistryClient;
  /** Intranet namespace put in front of every target path. */
  readonly prefix?: string;
  /** Concurrent blob uploads and mounts. @default 4 */
  readonly concurrency?: number;
  /** Blobs of at least this many bytes stream straight from the tar into the upload. @default 8 MiB */
  readonly streamThreshold?: number;
}

const NEEDS_BYTES_OP = 'import: mount refused';

interface ManifestNode {
  readonly repo: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** Undefined for a required manifest already in the repository (fetched only when a tag needs it). */
  bytes: Buffer | undefined;
  readonly kind: 'index' | 'image' | 'present';
  readonly kept: Digest[];
  readonly missingChildren: boolean;
  /** The ledger says this image manifest is already in the repository. */
  readonly skip: boolean;
  pushedDigest?: Digest;
  pushedBytes?: Buffer;
  filteredFrom?: Digest;
  /** The filtered index the bundle carries for this index (images[].filtered), pushed where the original is refused. */
  filtered?: Digest;
}

/** True when a registry refused an index because some children are not in the repository. */
function refusedForMissingChildren(err: unknown): boolean {
  if (!isFerryError(err)) return false;
  const codes = (err.details.registryCodes ?? []).map((c) => c.toUpperCase());
  if (codes.some((c) => c === 'MANIFEST_BLOB_UNKNOWN' || c === 'BLOB_UNKNOWN' || c === 'MANIFEST_UNKNOWN')) return true;
  return err.details.status === 400 && (err.code === 'MANIFEST_INVALID' || err.code === 'BLOB_UNKNOWN' || err.code === 'MANIFEST_UNKNOWN');
}

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
  private ctx: TargetContext | undefined;
  private jobs: Array<Promise<void>> = [];
  private errors: unknown[] = [];
  private manifests = new Map<Digest, { bytes: Buffer; mediaType: string }>();
  /** The repository each blob went to in this run. */
  private placed = new Map<Digest, string>();
  private spooled = new Map<Digest, string>();
  /** Which repository a manifest or blob belongs to, learned from the images and parsed manifests. */
  private repoOf = new Map<Digest, string>();
  private home = '';
  private counts = { uploaded: 0, mounted: 0, existing: 0, skipped: 0, bytes: 0 };
  private manifestCount = 0;
  private aborted = false;
  /** Foreign layers left out, by design (neither carried nor required). */
  private foreign = new Set<Digest>();
  private carried: Set<string> | undefined;

  constructor(opts: RegistryTargetOptions) {
    this.client = opts.client;
    this.prefix = opts.prefix;
    this.name = `registry:${opts.client.host}${opts.prefix ? `/${opts.prefix.replace(/^\/+|\/+$/g, '')}` : ''}`;
    this.threshold = opts.streamThreshold ?? 8 * 1024 * 1024;
    this.queue = new PQueue({ concurrency: opts.concurrency ?? 4 });
  }

  private repo(target: string): string {
    return prefixed(this.prefix, target);
  }

  private get c(): TargetContext {
    if (!this.ctx) throw new FerryError('INTERNAL', 'registry target used before begin()');
    return this.ctx;
  }

  private get ledger(): Ledger | undefined {
    return this.ctx?.ledger;
  }

  private sig(): { signal?: AbortSignal } {
    return this.ctx?.signal ? { signal: this.ctx.signal } : {};
  }

  wants(path: string): boolean {
    return path.startsWith('blobs/');
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
    return out;
  }

  async begin(ctx: TargetContext): Promise<void> {
    this.ctx = ctx;
    const images = [...ctx.manifest.images].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
    this.home = images[0] ? this.repo(images[0].target) : '';
    for (const im of images) if (!this.repoOf.has(im.digest)) this.repoOf.set(im.digest, this.repo(im.target));
  }

  private throwIfFailed(): void {
    if (this.errors.length > 0) throw this.errors[0];
  }

  async take(src: EntrySource): Promise<void> {
    this.throwIfFailed();
    const digest = `sha256:${src.sha256}` as Digest;
    if (src.mediaType !== undefined) {
      const bytes = await readSmall(openSource(src, this.c.signal), MAX_MANIFEST_BYTES, src.path);
      this.manifests.set(digest, { bytes, mediaType: src.mediaType });
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

  async commit(): Promise<TargetReport> {
    await this.drain();
    const m = this.c.manifest;
    const nodes: ManifestNode[] = [];
    const memo = new Map<string, ManifestNode | undefined>();
    const blobNeeds = new Map<string, { repo: string; digest: Digest; size: number }>();
    const images = [...m.images].sort((a, b) => (a.target + a.tag < b.target + b.tag ? -1 : 1));
    const tops: Array<{ repo: string; tag: string; upstream: Digest; node: ManifestNode }> = [];
    for (const im of images) {
      const repo = this.repo(im.target);
      const node = await this.resolve(repo, im.digest, im.mediaType, im.platforms, nodes, memo, blobNeeds);
      if (!node) throw new FerryError('REQUIRES_MISSING', `${repo}:${im.tag}: manifest ${im.digest} is neither carried nor at the target`, { repository: repo, digest: im.digest });
      if (im.filtered !== undefined) {
        // Checked before anything is pushed: the carried bytes are the ones both importers push.
        if (node.bytes === undefined) throw new FerryError('BUNDLE_INVALID', `${repo}:${im.tag}: the index ${im.digest} of a filtered image is not carried`, { repository: repo, digest: im.digest });
        checkFilteredImage(im, m.images.indexOf(im), node.bytes, node.mediaType);
        node.filtered = im.filtered;
      }
      tops.push({ repo, tag: im.tag, upstream: im.digest, node });
    }

    // Blobs into every repository that needs them: mounts from where they went, HEAD for required ones.
    const needBytes = new Map<Digest, string[]>();
    for (const need of blobNeeds.values()) this.enqueue(() => this.ensureBlob(need.repo, need.digest, need.size, needBytes));
    await this.drain();
    if (needBytes.size > 0) {
      const paths = new Set([...needBytes.keys()].map((d) => `blobs/sha256/${d.slice(7)}`));
      await this.c.reread(paths, async (src) => {
        const d = `sha256:${src.sha256}` as Digest;
        const [first, ...rest] = needBytes.get(d) ?? [];
        if (first === undefined) return;
        await this.upload(first, d, src.size, () => openSource(src, this.c.signal));
        for (const r of rest) await this.upload(r, d, src.size, () => this.noBytes(r, d), first);
      });
    }

    // Manifests, children first (nodes are in post-order).
    for (const n of nodes) await this.pushManifest(n);

    // Tags last.
    const tags: TagReport[] = [];
    for (const t of tops) {
      const n = t.node;
      const digest = n.pushedDigest ?? n.digest;
      const prev = this.ledger?.getItem(this.name, 'tag', t.repo, t.tag);
      const base = { repository: t.repo, tag: t.tag, digest, upstreamDigest: t.upstream, ...(n.filteredFrom ? { filteredFrom: n.filteredFrom } : {}) };
      if (prev?.state === 'done' && prev.digest === digest) {
        tags.push({ ...base, skipped: true });
        continue;
      }
      let bytes = n.pushedBytes ?? n.bytes;
      if (bytes === undefined) bytes = (await this.client.manifestGet(t.repo, n.digest, this.sig())).bytes;
      await this.client.manifestPut(t.repo, t.tag, bytes, n.mediaType, this.sig());
      this.ledger?.recordItem({
        target: this.name,
        kind: 'tag',
        scope: t.repo,
        key: t.tag,
        digest,
        state: 'done',
        bundleId: m.id,
        detail: n.filteredFrom ? `${ANNOTATION_FILTERED_FROM} ${n.filteredFrom}` : null,
      });
      tags.push(base);
    }
    return { ...emptyReport(this.name, 'registry'), blobs: { ...this.counts }, manifests: this.manifestCount, tags, foreignLayers: [...this.foreign].sort() };
  }

  /** True when this bundle carries the blob or names it in requires (an earlier bundle carried it). */
  private carries(digest: Digest): boolean {
    const m = this.c.manifest;
    this.carried ??= new Set([...m.files.filter((f) => f.path.startsWith('blobs/sha256/')).map((f) => `sha256:${f.sha256}`), ...m.requires]);
    return this.carried.has(digest);
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

  /** Works out the manifests to push for one digest in one repository, post-order, with the blobs they need. */
  private async resolve(
    repo: string,
    digest: Digest,
    mediaTypeHint: string,
    platforms: readonly string[] | null,
    nodes: ManifestNode[],
    memo: Map<string, ManifestNode | undefined>,
    blobNeeds: Map<string, { repo: string; digest: Digest; size: number }>,
  ): Promise<ManifestNode | undefined> {
    const key = `${repo}\0${digest}`;
    if (memo.has(key)) return memo.get(key);
    let bytes: Buffer | undefined;
    let mediaType = mediaTypeHint;
    const carried = this.manifests.get(digest);
    if (carried) {
      bytes = carried.bytes;
      mediaType = carried.mediaType;
    } else {
      // Required (an earlier bundle carried it): already in this repository, or copied from where the ledger put it.
      const head = await this.client.manifestHead(repo, digest, this.sig());
      if (head) {
        const node: ManifestNode = { repo, digest, mediaType: head.mediaType, bytes: undefined, kind: 'present', kept: [], missingChildren: false, skip: true };
        memo.set(key, node);
        return node;
      }
      for (const from of this.ledger?.scopesWith(this.name, digest, 'manifest') ?? []) {
        try {
          const got = await this.client.manifestGet(from, digest, this.sig());
          bytes = got.bytes;
          mediaType = got.mediaType;
          break;
        } catch (err) {
          if (!isFerryError(err, 'MANIFEST_UNKNOWN') && !isFerryError(err, 'NOT_FOUND')) throw err;
        }
      }
      if (bytes === undefined) {
        memo.set(key, undefined);
        throw new FerryError('REQUIRES_MISSING', `${this.client.host}/${repo}: manifest ${digest} is neither in the bundle nor at the target`, {
          registry: this.client.host,
          repository: repo,
          digest,
        });
      }
    }
    const parsed = parseManifest(bytes, mediaType);
    const kept: Digest[] = [];
    let missingChildren = false;
    let skip = false;
    if (parsed.kind === 'index') {
      for (const child of parsed.index.manifests) {
        const wanted = platforms === null || platforms.some((p) => platformMatches(child.platform, p));
        if (!wanted) {
          // Left out by the image's platforms, even when the bundle carries it for another
          // image entry of the same upstream tag: a filtered target gets only its platforms.
          missingChildren = true;
          continue;
        }
        const r = await this.resolve(repo, child.digest, child.mediaType, null, nodes, memo, blobNeeds);
        if (r) kept.push(child.digest);
        else missingChildren = true;
      }
    } else {
      skip = this.ledger?.isDone(this.name, 'manifest', repo, digest) === true;
      if (!skip) {
        for (const d of referencedDescriptors(parsed)) {
          // A foreign layer left out upstream stays out: the registry accepts the manifest without it.
          if (isForeignLayer(d) && !this.carries(d.digest)) {
            this.foreign.add(d.digest);
            continue;
          }
          blobNeeds.set(`${repo}\0${d.digest}`, { repo, digest: d.digest, size: d.size });
        }
      }
    }
    const node: ManifestNode = { repo, digest, mediaType, bytes, kind: parsed.kind, kept, missingChildren, skip };
    memo.set(key, node);
    nodes.push(node);
    return node;
  }

  private async ensureBlob(repo: string, digest: Digest, size: number, needBytes: Map<Digest, string[]>): Promise<void> {
    if (this.placed.get(digest) === repo || this.ledger?.isDone(this.name, 'blob', repo, digest)) return;
    const from = this.placed.get(digest) ?? this.ledger?.scopesWith(this.name, digest, 'blob')[0];
    const spool = this.spooled.get(digest);
    if (from === undefined || from === repo) {
      if (await this.client.blobHead(repo, digest, this.sig())) {
        this.counts.existing++;
        this.ledger?.recordItem({ target: this.name, kind: 'blob', scope: repo, key: digest, digest, state: 'done', bundleId: this.c.manifest.id, detail: null });
        return;
      }
      if (spool) {
        await this.upload(repo, digest, size, () => createReadStream(spool));
        return;
      }
      throw new FerryError('REQUIRES_MISSING', `${this.client.host}/${repo}: blob ${digest} is neither in the bundle nor at the target`, {
        registry: this.client.host,
        repository: repo,
        digest,
      });
    }
    try {
      await this.upload(repo, digest, size, spool ? () => createReadStream(spool) : () => this.noBytes(repo, digest), from);
    } catch (err) {
      if (!isFerryError(err) || err.details.op !== NEEDS_BYTES_OP) throw err;
      const list = needBytes.get(digest) ?? [];
      list.push(repo);
      needBytes.set(digest, list);
    }
  }

  private async pushManifest(n: ManifestNode): Promise<void> {
    if (n.skip || n.kind === 'present' || n.bytes === undefined) return;
    let detail: string | null = null;
    try {
      await this.client.manifestPut(n.repo, n.digest, n.bytes, n.mediaType, this.sig());
    } catch (err) {
      if (n.kind === 'image') throw withForeignHint(err, n.bytes, n.mediaType);
      if (n.kind !== 'index' || !n.missingChildren || !refusedForMissingChildren(err)) throw err;
      // The registry insists on every child (distribution 2.8 answers MANIFEST_BLOB_UNKNOWN): push
      // the index with only the platforms carried, annotated with the upstream digest: the bytes
      // the bundle carries (checked equal to these in commit), which import.sh pushes too.
      const carried = n.filtered !== undefined ? this.manifests.get(n.filtered) : undefined;
      const f = carried && n.filtered !== undefined ? { bytes: carried.bytes, digest: n.filtered } : filteredIndex(n.bytes, n.kept, n.digest);
      await this.client.manifestPut(n.repo, f.digest, f.bytes, n.mediaType, this.sig());
      n.pushedDigest = f.digest;
      n.pushedBytes = f.bytes;
      n.filteredFrom = n.digest;
      detail = `${ANNOTATION_FILTERED_FROM} ${n.digest}`;
      this.c.logger?.warn({ repository: n.repo, upstream: n.digest, pushed: f.digest }, 'registry refused an index with platforms left out: pushed a filtered index');
    }
    this.manifestCount++;
    this.ledger?.recordItem({
      target: this.name,
      kind: 'manifest',
      scope: n.repo,
      key: n.digest,
      digest: n.pushedDigest ?? n.digest,
      state: 'done',
      bundleId: this.c.manifest.id,
      detail,
    });
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
