/**
 * The bundle as an image medium (oci/media.ts): the writer's image side as a sink (what
 * `ferry export` carries), and the reader as a one-pass source (what `ferry import` takes).
 */
import { join } from 'node:path';
import {
  ALL_ATTACHMENTS,
  digestHex,
  formatReference,
  layoutBlobPath,
  type Attachment,
  type BlobOpener,
  type CopiedImage,
  type CopyRoot,
  type Descriptor,
  type Digest,
  type ImageSink,
  type ManifestPut,
  type ManifestReader,
  type PutBlobResult,
} from '../oci/index.js';
import { PLAN_FILE, type BundleAttachment, type BundleImage, type BundleManifest } from './format.js';
import { indexJsonHead, indexJsonLine, indexJsonTail, ociLayoutFile, referenceTag, type LayoutImage } from './layout.js';
import { attachmentsOf, checkImagePlan, imagePlanSteps, PLAN_HEADER, type CarriedPlan } from './plan.js';
import { bufferEntry, SpooledEntry, type BundleEntry } from './writer.js';

/** How a bundle names an image: the upstream reference, the intranet target and the tag. */
export interface BundleTag {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  readonly target: string;
}

/** Options for BundleImageSink. */
export interface BundleImageSinkOptions {
  /** Digests the parent's chain carried: left to `requires` instead of carried again. */
  readonly carriedBefore: ReadonlySet<Digest>;
  /**
   * Manifests carried even when the chain carried them (the indexes images name): an earlier
   * import may have pushed only the filtered form, so the original cannot be assumed inside.
   */
  readonly mustCarry: ReadonlySet<Digest>;
}

/** What the images of a bundle share per root: one of these per digest, media type, platforms. */
interface SinkRoot {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly platforms: readonly string[] | null;
  readonly filtered: Digest | undefined;
}

/**
 * `s` as one flat string: a string built by concatenation is a tree of its pieces in V8 (about
 * seven nodes of 32 bytes for a tag's record, 10 MB at 50,000 tags); a copy decoded from its bytes
 * is one piece.
 */
function flat(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/** Most roots whose plan steps are kept for the next tag of the same image. */
const PLAN_STEPS_KEPT = 1024;

/**
 * The images of a bundle being written, as a sink. A blob or manifest the parent's chain carried
 * is "there" (never sent) and lands in `requires` when an image's closure names it; everything
 * else is carried: blobs as lazily opened entries the writer streams and verifies, manifests as
 * their exact bytes with their media type, and each image's filtered index beside its index.
 * Nothing is written until the caller hands `entries()` to writeBundle with the signed manifest.
 *
 * Memory: content (carried blobs and manifests) is kept per digest; a tag is kept as one short
 * string (its reference, target and which root it names), so a bundle of many tags of few images
 * costs little. index.json and the image plan are written to files as entries() makes them, and
 * images[] is handed to the writer as a stream (`images()`). Several copies may put into one sink
 * (an export works through its tags a page at a time).
 */
export class BundleImageSink implements ImageSink<BundleTag> {
  private readonly carried = new Map<Digest, BundleEntry>();
  /** The bytes of the manifests carried: the image plan is the graph read from them. */
  private readonly manifestBytes = new Map<Digest, { bytes: Uint8Array; mediaType: string }>();
  private readonly required = new Set<Digest>();
  private readonly foreign = new Set<Digest>();
  private readonly attachments = new Map<string, Attachment>();
  private readonly roots: SinkRoot[] = [];
  private readonly rootIds = new Map<string, number>();
  /** One per image of images[], in the order their tags were put: `reference \0 target \0 root`. */
  private readonly tags: string[] = [];

  constructor(private readonly opts: BundleImageSinkOptions) {}

  /** How many images the bundle names (images[]). */
  get imageCount(): number {
    return this.tags.length;
  }

  async hasBlob(d: Descriptor): Promise<boolean> {
    return this.carried.has(d.digest) || this.opts.carriedBefore.has(d.digest);
  }

  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.carried.has(d.digest) || (this.opts.carriedBefore.has(d.digest) && !this.opts.mustCarry.has(d.digest));
  }

  async putBlob(d: Descriptor, open: BlobOpener): Promise<PutBlobResult> {
    // The writer opens it when its turn in the tar comes, and hashes it as it streams.
    this.carried.set(d.digest, { path: layoutBlobPath(d.digest), size: d.size, sha256: digestHex(d.digest), open: () => open() });
    return 'written';
  }

  async putManifest(p: ManifestPut): Promise<Digest> {
    const m = p.manifest;
    this.carried.set(m.digest, bufferEntry(layoutBlobPath(m.digest), m.bytes, m.mediaType));
    this.manifestBytes.set(m.digest, { bytes: m.bytes, mediaType: m.mediaType });
    if (p.fallback) this.carry(p.fallback.digest, p.fallback.bytes, p.fallback.mediaType);
    return m.digest;
  }

  private carry(digest: Digest, bytes: Uint8Array, mediaType: string): void {
    if (!this.carried.has(digest)) this.carried.set(digest, bufferEntry(layoutBlobPath(digest), bytes, mediaType));
  }

  /** Keeps the attachments for the signed manifest's `attachments` (their manifests are carried or required by now). */
  async putAttachments(list: readonly Attachment[]): Promise<void> {
    for (const a of list) this.attachments.set(`${a.subject} ${a.descriptor.digest} ${a.tag ?? ''}`, a);
  }

  /** The attachments for the signed manifest, sorted by subject, digest, tag. */
  attachmentList(): BundleAttachment[] {
    return [...this.attachments.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, a]) => ({
        subject: a.subject,
        digest: a.descriptor.digest,
        mediaType: a.descriptor.mediaType,
        size: a.descriptor.size,
        ...(a.descriptor.artifactType !== undefined ? { artifactType: a.descriptor.artifactType } : {}),
        ...(a.tag !== undefined ? { tag: a.tag } : {}),
      }));
  }

  async putTag(tag: BundleTag, image: CopiedImage): Promise<void> {
    const c = image.closure;
    const filtered = c.filtered;
    // Each image's filtered index travels, also when another image of the same index selected otherwise.
    if (filtered) this.carry(filtered.digest, filtered.bytes, filtered.mediaType);
    const named = [...c.manifests.map((m) => m.digest), ...c.external.map((d) => d.digest), ...c.blobs.map((d) => d.digest)];
    for (const d of named) if (!this.carried.has(d)) this.required.add(d);
    // A foreign layer travels when the store had it; else neither carried nor required, by design.
    for (const f of c.foreign) {
      if (this.carried.has(f.digest)) continue;
      if (this.opts.carriedBefore.has(f.digest)) this.required.add(f.digest);
      else this.foreign.add(f.digest);
    }
    const reference = formatReference({ registry: tag.registry, repository: tag.repository, tag: tag.tag });
    const top = c.manifests[c.manifests.length - 1];
    const root: SinkRoot = { digest: c.root.digest, mediaType: image.mediaType, size: top?.size ?? c.root.size, platforms: image.selection.platforms, filtered: filtered?.digest };
    const key = JSON.stringify([root.digest, root.mediaType, root.size, root.platforms, root.filtered ?? null]);
    let id = this.rootIds.get(key);
    if (id === undefined) {
      id = this.roots.push(root) - 1;
      this.rootIds.set(key, id);
    }
    this.tags.push(flat(`${reference}\0${tag.target}\0${id}`));
  }

  private tagAt(k: number): { reference: string; target: string; root: SinkRoot } {
    const [reference, target, id] = this.tags[k]!.split('\0') as [string, string, string];
    return { reference, target, root: this.roots[Number(id)]! };
  }

  private image(k: number): BundleImage {
    const { reference, target, root } = this.tagAt(k);
    return {
      reference,
      target,
      tag: referenceTag(reference),
      digest: root.digest,
      mediaType: root.mediaType,
      platforms: root.platforms,
      ...(root.filtered ? { filtered: root.filtered } : {}),
    };
  }

  /** The images[] of the signed manifest, in the order their tags were put, made one at a time. */
  *images(): Generator<BundleImage> {
    for (let k = 0; k < this.tags.length; k++) yield this.image(k);
  }

  /**
   * The OCI layout entries: oci-layout, index.json, every carried blob and manifest, and (with
   * images) the image plan import.sh follows: each image's closure as the bundle supports it,
   * its carried manifests read, what it requires standing in for itself. index.json and the plan
   * are written into `dir` (a directory the caller removes afterwards) and read from there.
   */
  async entries(dir: string): Promise<BundleEntry[]> {
    const out = [bufferEntry('oci-layout', ociLayoutFile()), await this.indexJson(join(dir, 'index.json')), ...this.carried.values()];
    if (this.tags.length === 0) return out;
    out.push(await this.plan(join(dir, PLAN_FILE)));
    return out;
  }

  /** index.json, as buildIndexJson makes it, from the tags sorted by reference and target. */
  private async indexJson(file: string): Promise<BundleEntry> {
    const order = Array.from(this.tags.keys());
    const at = this.tags.map((t) => t.slice(0, t.lastIndexOf('\0')));
    order.sort((a, b) => (at[a]! < at[b]! ? -1 : at[a]! > at[b]! ? 1 : 0));
    const spool = await SpooledEntry.create('index.json', file);
    try {
      await spool.write(indexJsonHead(order.length));
      const refOf = (i: number): string | undefined => (i >= 0 && i < order.length ? at[order[i]!]!.slice(0, at[order[i]!]!.indexOf('\0')) : undefined);
      for (let i = 0; i < order.length; i++) {
        const { reference, target, root } = this.tagAt(order[i]!);
        // Sorted, the images that share a reference are neighbours (layoutRefNames).
        const shared = refOf(i - 1) === reference || refOf(i + 1) === reference;
        const im: LayoutImage = { reference, target, digest: root.digest, mediaType: root.mediaType, size: root.size, platforms: root.platforms };
        await spool.write(`${i > 0 ? ',\n' : ''}${indexJsonLine(im, shared ? `${target}:${referenceTag(reference)}` : reference, i)}`);
      }
      await spool.write(indexJsonTail(order.length));
      return await spool.done();
    } catch (err) {
      await spool.abandon();
      throw err;
    }
  }

  /** The image plan, as buildImagePlan makes it, each root's steps worked out once. */
  private async plan(file: string): Promise<BundleEntry> {
    const required = new Set<string>(this.requires());
    const read: ManifestReader = (d) => this.manifestBytes.get(d.digest) ?? (required.has(d.digest) ? 'external' : undefined);
    const attachments = this.attachmentList();
    const steps = new Map<number, string[]>();
    const spool = await SpooledEntry.create(PLAN_FILE, file);
    try {
      await spool.write(`${PLAN_HEADER}\n`);
      for (let k = 0; k < this.tags.length; k++) {
        const id = Number(this.tags[k]!.slice(this.tags[k]!.lastIndexOf('\0') + 1));
        const im = this.image(k);
        let s = steps.get(id);
        if (s === undefined) {
          s = await imagePlanSteps(im, k, read, attachments, attachments.length > 0);
          if (steps.size >= PLAN_STEPS_KEPT) steps.clear();
          steps.set(id, s);
        }
        await spool.write(`${s.map((step) => `${k} ${step}\n`).join('')}${k} tag ${im.tag}\n`);
      }
      return await spool.done();
    } catch (err) {
      await spool.abandon();
      throw err;
    }
  }

  /** Digests carried under blobs/. */
  carriedDigests(): Digest[] {
    return [...this.carried.keys()];
  }

  /** Digests the images name that the chain carried and this bundle does not, sorted. */
  requires(): Digest[] {
    return [...this.required].filter((d) => !this.carried.has(d)).sort();
  }

  /** Foreign layers the images name that neither this bundle nor its chain carries, sorted. */
  foreignLayers(): Digest[] {
    return [...this.foreign].filter((d) => !this.carried.has(d)).sort();
  }
}

/**
 * A bundle as a one-pass image source: what `ferry import` reads images from.
 *
 * Contract. A bundle tar is read once, front to back (a second pass reads every byte again, so it
 * is only for the rare blob a sink turns out to need twice). Entries arrive in the canonical tar
 * order: index.json first, then blobs by digest (manifests among them, named by their media type
 * in the signed file list), each verified against the signed list only when its stream ends. So
 * a copy from it:
 * - takes blobs as they come, into the sink, as invisible writes (a large one straight from the
 *   tar into an upload): a blob whose manifest comes later cannot wait for it;
 * - keeps manifests (small, capped) here until the pass ends;
 * - puts manifests and moves tags only after the last entry verified: then `reader()` answers the
 *   graph from what the bundle carries, the target fills in what an earlier bundle carried, and
 *   `roots()` names the images of the signed images[] list.
 */
export class BundleImageSource {
  private readonly kept = new Map<Digest, { bytes: Buffer; mediaType: string }>();
  private plan: CarriedPlan | undefined;
  private readonly carriedSet: ReadonlySet<string>;
  private readonly requiredSet: ReadonlySet<string>;

  constructor(readonly manifest: BundleManifest) {
    this.carriedSet = new Set(manifest.files.filter((f) => f.path.startsWith('blobs/sha256/')).map((f) => `sha256:${f.sha256}`));
    this.requiredSet = new Set(manifest.requires);
  }

  /** Keeps a manifest entry's verified bytes (the pass calls it as the entry comes). */
  keep(digest: Digest, bytes: Buffer, mediaType: string): void {
    this.kept.set(digest, { bytes, mediaType });
  }

  /** Keeps the image plan: its bytes, or how to read them again (a spooled file), as the entry comes. */
  keepPlan(plan: CarriedPlan): void {
    this.plan = plan;
  }

  /**
   * Once the pass has ended: the carried image plan (what import.sh follows) must be the graph's
   * own of what the bundle carries, so both importers push the same. A bundle from a Ferry
   * that wrote no plan has none to check.
   */
  async checkPlan(): Promise<void> {
    if (this.plan !== undefined) await checkImagePlan(this.manifest.images, this.reader(), this.plan, this.manifest.attachments);
  }

  /** The bytes of a manifest the bundle carries, once the pass has read it. */
  carriedManifest(d: Digest): { bytes: Buffer; mediaType: string } | undefined {
    return this.kept.get(d);
  }

  /** True when the bundle carries the blob or manifest. */
  carries(d: string): boolean {
    return this.carriedSet.has(d);
  }

  /** True when the bundle carries it or lists it in requires (an earlier bundle carried it). */
  names(d: string): boolean {
    return this.carriedSet.has(d) || this.requiredSet.has(d);
  }

  /**
   * The graph's reader once the pass has ended: carried manifests by their bytes; the others
   * through `target` (what an import target holds), or, without one, a required manifest as
   * vouched for ('external') and any other as missing.
   */
  reader(target?: ManifestReader): ManifestReader {
    return async (d) => {
      const m = this.kept.get(d.digest);
      if (m) return m;
      if (target) return target(d);
      return this.requiredSet.has(d.digest) ? 'external' : undefined;
    };
  }

  /** The attachments the signed manifest records for a subject. */
  attachments(subject: Descriptor): Promise<readonly Attachment[]> {
    return Promise.resolve(bundleAttachments(this.manifest, subject.digest));
  }

  /** The roots of the signed images[], in its order, each with the index it sits at. */
  roots<T>(tag: (im: BundleImage, at: number) => T): Array<CopyRoot<T> & { readonly tag: T; readonly image: BundleImage; readonly at: number }> {
    return this.manifest.images.map((im, at) => ({
      descriptor: { digest: im.digest, mediaType: im.mediaType, size: this.kept.get(im.digest)?.bytes.length ?? 0 },
      selection: { platforms: im.platforms, attachments: ALL_ATTACHMENTS },
      tag: tag(im, at),
      image: im,
      at,
    }));
  }
}

/** The attachments a bundle manifest records for a subject, as the graph takes them. */
export function bundleAttachments(m: BundleManifest, subject: Digest): Attachment[] {
  return attachmentsOf(m.attachments ?? [], subject);
}
