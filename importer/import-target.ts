/** The shape every import target (registry, Go module tree, store, OCI layout) implements, and what it reports. */
import type { Logger } from 'pino';
import type { BundleManifest } from '../bundle/index.js';
import type { Ledger } from '../store/index.js';
import type { EntrySource } from './import-util.js';

/** What a target gets for one bundle. */
export interface TargetContext {
  readonly manifest: BundleManifest;
  /** Undefined in a dry run: nothing may be recorded. */
  readonly ledger: Ledger | undefined;
  /** A temp directory for this bundle, removed when it is done. */
  readonly tmpDir: string;
  /** Re-reads the bundle's entries (for the rare blob a registry would not mount). */
  readonly reread: (paths: ReadonlySet<string>, each: (src: EntrySource) => Promise<void>) => Promise<void>;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

/** One tag an import set. */
export interface TagReport {
  readonly repository: string;
  readonly tag: string;
  /** The digest the tag now points at. */
  readonly digest: string;
  /** The upstream digest (differs only for platform-filtered indexes). */
  readonly upstreamDigest: string;
  /** Set when the tag names the filtered index (a registry refused the original, or a layout lacks its other children): the digest it was filtered from. */
  readonly filteredFrom?: string;
  /** True when the ledger already held this tag at this digest. */
  readonly skipped?: boolean;
}

/** The tags a target set: an array, or a TagReportList (a registry import of tens of thousands of tags). */
export interface TagReports extends Iterable<TagReport> {
  readonly length: number;
}

/** One image's tags in a TagReportList: what they have in common. */
interface TagImage {
  readonly repository: string;
  readonly digest: string;
  readonly upstreamDigest: string;
}

/**
 * The tags an import set, two numbers a tag (a position in the signed images[], which holds the
 * tag's name, and the image it names) instead of an object a tag: at 50,000 tags the objects
 * were megabytes held for the whole import. Each TagReport is made when it is read.
 */
export class TagReportList implements TagReports {
  /** Per tag: its position in `names`, negated minus one when the ledger already held it (skipped). */
  private readonly at: number[] = [];
  /** Per tag: the image it names. */
  private readonly image: TagImage[] = [];

  constructor(private readonly names: ReadonlyArray<{ readonly tag: string }>) {}

  get length(): number {
    return this.at.length;
  }

  /** One image's entry, shared by its tags. */
  static image(repository: string, digest: string, upstreamDigest: string): TagImage {
    return { repository, digest, upstreamDigest };
  }

  /** Adds the tag at position `at` of the images it was made with. */
  add(at: number, image: TagImage, skipped: boolean): void {
    this.at.push(skipped ? -at - 1 : at);
    this.image.push(image);
  }

  *[Symbol.iterator](): Iterator<TagReport> {
    for (let i = 0; i < this.at.length; i++) {
      const a = this.at[i]!;
      const skipped = a < 0;
      const im = this.image[i]!;
      const r: { -readonly [K in keyof TagReport]: TagReport[K] } = { repository: im.repository, tag: this.names[skipped ? -a - 1 : a]!.tag, digest: im.digest, upstreamDigest: im.upstreamDigest };
      if (im.digest !== im.upstreamDigest) r.filteredFrom = im.upstreamDigest;
      if (skipped) r.skipped = true;
      yield r;
    }
  }

  /** JSON.stringify writes it as the array it stands for. */
  toJSON(): TagReport[] {
    return [...this];
  }
}

/** What one target did with one bundle. */
export interface TargetReport {
  readonly target: string;
  readonly kind: 'registry' | 'gomod' | 'store' | 'oci-dir';
  readonly blobs: { uploaded: number; mounted: number; existing: number; skipped: number; bytes: number };
  readonly manifests: number;
  readonly tags: TagReports;
  readonly modules: number;
  readonly files: number;
  /** Checksum databases the bundle carried (names under gomod/sumdb/). */
  readonly sumdb: string[];
  /** Foreign (non-distributable) layers the manifests name and the bundle does not carry, by design. */
  readonly foreignLayers?: string[];
  /** Tags the bundle removes (`pruned`): what this target deleted, or why it left one. */
  readonly pruned?: PruneReport[];
}

/** One removed tag at a target. */
export interface PruneReport {
  readonly repository: string;
  readonly tag: string;
  /** The digest the tag named at the target. */
  readonly digest: string;
  /**
   * `tag`: the tag was deleted; `manifest`: the registry deletes no tags, so the manifest it
   * named was; `gone`: it was not there any more; `kept`: left, for the reason in `detail`.
   */
  readonly action: 'tag' | 'manifest' | 'gone' | 'kept';
  readonly detail?: string;
}

/** One line of a dry run's plan. */
export interface PlanLine {
  readonly target: string;
  readonly action: 'push-blob' | 'push-manifest' | 'set-tag' | 'delete-tag' | 'write-file' | 'store-blob' | 'record-module' | 'skip';
  readonly what: string;
  readonly size: number;
}

/** An import target. */
export interface ImportTarget {
  /** The ledger's name of the target, e.g. `registry:host:5000/prefix`. */
  readonly name: string;
  readonly kind: 'registry' | 'gomod' | 'store' | 'oci-dir';
  /** True when the target consumes this tar entry. */
  wants(path: string, mediaType: string | undefined): boolean;
  /** Digests of `requires` the target lacks (checked before anything is written). */
  missingRequires(m: BundleManifest, ledger: Ledger | undefined, signal?: AbortSignal): Promise<string[]>;
  /** What an import would do (dry run). */
  plan(m: BundleManifest, ledger: Ledger | undefined): PlanLine[];
  /** Starts a bundle. */
  begin(ctx: TargetContext): Promise<void>;
  /** Takes one verified-as-it-streams entry; invisible writes only (blobs, staged files). */
  take(src: EntrySource): Promise<void>;
  /** Called once every entry verified: waits for background work, then makes the bundle visible. */
  commit(): Promise<TargetReport>;
  /**
   * Called after a failure, unless the target committed: cancels background work and removes
   * staged files. Returns a sentence on what the failed import leaves at the target, or removed
   * from it, for the error message; undefined when there is nothing to say.
   */
  abort(): Promise<string | undefined>;
}

/** A zeroed report for a target. */
export function emptyReport(target: string, kind: TargetReport['kind']): TargetReport {
  return { target, kind, blobs: { uploaded: 0, mounted: 0, existing: 0, skipped: 0, bytes: 0 }, manifests: 0, tags: [], modules: 0, files: 0, sumdb: [] };
}
