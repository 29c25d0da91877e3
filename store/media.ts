/**
 * The store as an image source and sink (oci/media.ts), over the tags and content parts only. A
 * manifest row is written after everything it references is stored, so a stored manifest is a
 * complete one; a tag row names the upstream root, its platforms and the kept children.
 */
import type { Readable } from 'node:stream';
import {
  MAX_MANIFEST_BYTES,
  isDigest,
  platformString,
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
  type ManifestReader,
  type MediaCallOptions,
  type PutBlobResult,
} from '../oci/index.js';
import type { Store } from './store.js';
import type { ChangeResult, SetTagInput, TagRow } from './types.js';

/** The parts of a store an image source or sink reads and writes. */
type ImageParts = Pick<Store, 'tags' | 'content' | 'attachments'>;

function sig(opts: MediaCallOptions | undefined): { signal?: AbortSignal } {
  return opts?.signal ? { signal: opts.signal } : {};
}

/** The tag of several sources' rows sent to one target that a reader sees: the latest change wins, as a later push would. */
export function latestRow(rows: Iterable<TagRow>): TagRow | undefined {
  let win: TagRow | undefined;
  for (const t of rows) if (!win || t.changedAt > win.changedAt) win = t;
  return win;
}

/** Options for StoreSource. */
export interface StoreSourceOptions {
  /** The intranet repository (tags' `target`) whose tags `manifest(tag)` resolves. */
  readonly target?: string;
  /** Hash blob bytes as they are read. False when the consumer verifies them (the bundle writer does). @default true */
  readonly verifyBlobs?: boolean;
}

/** A store as a source: manifests by digest (or by tag within one target), blobs as streams. */
export class StoreSource implements ImageSource {
  constructor(
    readonly store: ImageParts,
    private readonly opts: StoreSourceOptions = {},
  ) {}

  async manifest(ref: string, opts?: MediaCallOptions): Promise<FetchedManifest | undefined> {
    let digest: Digest | undefined;
    if (isDigest(ref)) digest = ref;
    else if (this.opts.target !== undefined) digest = latestRow(this.store.tags.list().filter((t) => t.target === this.opts.target && t.tag === ref))?.digest;
    const row = digest && this.store.content.getManifest(digest);
    if (!row || !digest) return undefined;
    const bytes = await this.store.content.readBlobBytes(digest, MAX_MANIFEST_BYTES, sig(opts));
    return { digest, mediaType: row.mediaType, size: bytes.length, bytes };
  }

  async blob(d: Descriptor, opts?: MediaCallOptions): Promise<Readable> {
    return this.store.content.readBlob(d.digest, { ...(this.opts.verifyBlobs === false ? { verify: false } : {}), ...sig(opts) });
  }

  async hasBlob(d: Descriptor): Promise<boolean> {
    return this.store.content.hasBlob(d.digest);
  }

  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.store.content.hasManifest(d.digest);
  }

  /** The attachments recorded for the subject (only those whose manifests are stored). */
  async attachments(subject: Descriptor): Promise<readonly Attachment[]> {
    return this.store.attachments.of(subject.digest).filter((a) => this.store.content.hasManifest(a.descriptor.digest));
  }
}

/** The graph's reader over a store: stored manifests by digest, undefined for the others. */
export function storeReader(store: ImageParts, opts: MediaCallOptions = {}): ManifestReader {
  const src = new StoreSource(store);
  return async (d) => {
    const m = await src.manifest(d.digest, opts);
    return m && { bytes: m.bytes, mediaType: m.mediaType };
  };
}

/** A tag row to record, less what the copy decides (digest, media type, platforms, kept children). */
export type StoreTag = Omit<SetTagInput, 'digest' | 'mediaType' | 'platforms' | 'keptDigests'>;

/** Options for StoreSink. */
export interface StoreSinkOptions {
  /** Called with each tag row recorded and whether it moved. */
  readonly onTag?: (row: SetTagInput, r: ChangeResult) => void;
}

/**
 * A store as a sink. Blobs are written temp → hash → verify → fsync → rename; a manifest is
 * recorded with every reference it makes (all children of an index, whatever a tag keeps: another
 * tag may keep others); the tag row names the upstream root (never a filtered stand-in), the
 * sorted platforms and the kept children.
 */
export class StoreSink implements ImageSink<StoreTag> {
  constructor(
    readonly store: ImageParts,
    private readonly opts: StoreSinkOptions = {},
  ) {}

  async hasBlob(d: Descriptor): Promise<boolean> {
    return this.store.content.hasBlob(d.digest);
  }

  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.store.content.hasManifest(d.digest);
  }

  async putBlob(d: Descriptor, open: BlobOpener, opts?: MediaCallOptions): Promise<PutBlobResult> {
    const r = await this.store.content.writeBlob(d.digest, await open(), { size: d.size, mediaType: d.mediaType, ...sig(opts) });
    return r.written ? 'written' : 'exists';
  }

  async putManifest(p: ManifestPut, opts?: MediaCallOptions): Promise<Digest> {
    const m = p.manifest;
    await this.store.content.putManifest({
      digest: m.digest,
      mediaType: m.mediaType,
      bytes: Buffer.isBuffer(m.bytes) ? m.bytes : Buffer.from(m.bytes),
      references: referencedDescriptors(m.parsed),
      ...(m.descriptor.platform ? { platform: platformString(m.descriptor.platform) } : {}),
      ...sig(opts),
    });
    return m.digest;
  }

  /** Records the attachments (their manifests are stored by now). */
  async putAttachments(attachments: readonly Attachment[]): Promise<void> {
    this.store.attachments.add(attachments.filter((a) => this.store.content.hasManifest(a.descriptor.digest)));
  }

  async putTag(tag: StoreTag, image: CopiedImage): Promise<void> {
    const platforms = image.selection.platforms;
    const row: SetTagInput = {
      ...tag,
      digest: image.root.digest,
      mediaType: image.mediaType,
      platforms: platforms === null ? null : [...platforms].sort(),
      keptDigests: (image.closure.kept ?? []).map((d) => d.digest).filter((d) => this.store.content.hasManifest(d)),
    };
    const r = this.store.tags.set(row);
    this.opts.onTag?.(row, r);
  }
}
