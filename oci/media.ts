/**
 * The small interfaces every medium implements (types only): a source reads manifests and
 * streams blobs; a sink takes verified blobs, exact manifest bytes and tags. The registry client
 * (registry/), the store (store/), the bundle writer and reader (bundle/) and an OCI image layout
 * directory implement them; oci/copy.ts moves an image between any two, with the ordering rules
 * in one place.
 */
import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import type { Closure, FilteredIndex, GraphManifest, Selection } from './graph.js';
import type { Descriptor } from './manifest.js';
import type { Attachment } from './referrers.js';

/** Options every medium call takes. */
export interface MediaCallOptions {
  readonly signal?: AbortSignal;
}

/** A manifest read by tag or digest: its exact bytes. */
export interface FetchedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly bytes: Uint8Array;
}

/**
 * Opens a blob's bytes as a stream. A sink may call it again to retry an upload, unless the
 * source is one-pass (a tar entry): then a second call fails.
 */
export type BlobOpener = () => Readable | Promise<Readable>;

/** A medium images are read from, in any order (a registry repository, a store). */
export interface ImageSource {
  /** A manifest by tag or digest, exact bytes; undefined when the source does not have it. */
  manifest(ref: string, opts?: MediaCallOptions): Promise<FetchedManifest | undefined>;
  /**
   * A blob's bytes. Fails (at once, or at the stream's end) unless they have the descriptor's
   * digest and size, or the source says its consumer verifies them (the store's writes do).
   */
  blob(d: Descriptor, opts?: MediaCallOptions): Promise<Readable>;
  /** True when the source holds the blob. */
  hasBlob(d: Descriptor, opts?: MediaCallOptions): Promise<boolean>;
  /** True when the source holds the manifest. */
  hasManifest(d: Descriptor, opts?: MediaCallOptions): Promise<boolean>;
  /** The attachments of a manifest (signatures, SBOMs, referrers); a source without any leaves this out. */
  attachments?(subject: Descriptor, opts?: MediaCallOptions): Promise<readonly Attachment[]>;
}

/** How a blob got into a sink. */
export type PutBlobResult = 'exists' | 'mounted' | 'written';

/** A manifest to put: exact bytes, by digest. */
export interface ManifestPut {
  readonly manifest: GraphManifest;
  /**
   * For a root index whose selection left children out: the filtered index (graph.ts) that a sink
   * refusing the original for its absent children (a registry) holds instead. A sink that keeps
   * both (a bundle) puts it beside the original.
   */
  readonly fallback?: FilteredIndex;
}

/** An image whose content the sink holds, handed to putTag. */
export interface CopiedImage {
  /** The root as the source names it. */
  readonly root: Descriptor;
  /** The digest the sink holds for the root: the root's, or its fallback's. */
  readonly digest: Digest;
  readonly mediaType: string;
  /** The bytes of what `digest` names, when the copy read them (undefined for a root the sink already had). */
  readonly bytes: Uint8Array | undefined;
  readonly selection: Selection;
  readonly closure: Closure;
}

/**
 * A medium images are written to: a registry repository, a store, a bundle being written, an
 * OCI image layout directory. `T` names a tag the way the sink needs it (a tag name for a
 * registry repository, a `ref.name` for a layout, a tag row for a store). Writes of blobs and
 * manifests are invisible until a tag names them, so a copy that fails leaves nothing a client sees.
 */
export interface ImageSink<T = string> {
  /** True when the sink holds the blob (a copy does not send it again). */
  hasBlob(d: Descriptor, opts?: MediaCallOptions): Promise<boolean>;
  /** True when the sink holds the manifest and everything under it (a copy neither walks nor sends it). */
  hasManifest(d: Descriptor, opts?: MediaCallOptions): Promise<boolean>;
  /** Puts a blob from a stream, verified against the descriptor's digest and size before it is trusted. */
  putBlob(d: Descriptor, open: BlobOpener, opts?: MediaCallOptions): Promise<PutBlobResult>;
  /** Waits for blob puts still under way (called once every blob was put, before any manifest). */
  flush?(opts?: MediaCallOptions): Promise<void>;
  /** Puts a manifest's exact bytes under its digest (its blobs and children are there); returns the digest the sink now holds for it. */
  putManifest(p: ManifestPut, opts?: MediaCallOptions): Promise<Digest>;
  /**
   * Records attachments whose manifests (and subjects) are all in: digest tags, a fallback
   * referrers index, or rows. Called once per copy after every manifest and before any tag.
   */
  putAttachments?(attachments: readonly Attachment[], opts?: MediaCallOptions): Promise<void>;
  /** Points a tag at an image whose content is all there. */
  putTag(tag: T, image: CopiedImage, opts?: MediaCallOptions): Promise<void>;
}
