/** The row and option types of the store: what callers read and write, free of SQL. */
import type { Descriptor, Digest } from '../oci/index.js';

/** The minimal logger the store writes to; a pino logger fits. */
export interface StoreLogger {
  debug?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  warn?(obj: object, msg?: string): void;
}

/** Options for `Store.open`. */
export interface StoreOpenOptions {
  /**
   * Open without writing anything: no directories created, no migrations, no tmp cleanup.
   * @default false
   */
  readonly readonly?: boolean;
  /**
   * Create the store when `dir` holds none. Commands that only read or check a store pass
   * false: a mistyped path is then STORE_NOT_FOUND instead of a new, empty, "healthy" store.
   * Read-only opens never create. @default true
   */
  readonly create?: boolean;
  /** Where the store reports cleanups and repairs. */
  readonly logger?: StoreLogger;
  /**
   * The clock for every recorded time; tests pass their own.
   * @default () => new Date()
   */
  readonly now?: () => Date;
  /**
   * How long SQLite waits for another process's write lock before STORE_LOCKED.
   * @default 5000
   */
  readonly busyTimeoutMs?: number;
}

/** A blob's index row. */
export interface BlobRow {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string | null;
  readonly createdAt: string;
}

/** Options for `writeBlob`. */
export interface WriteBlobOptions {
  /** The exact size the content must have; more bytes fail at once. */
  readonly size?: number;
  /** Recorded on the blob row (kept from the first writer that knew it). */
  readonly mediaType?: string;
  readonly signal?: AbortSignal;
  /**
   * False: put the file in place but leave its index row to a later call that records it
   * together with what refers to it (`putModuleVersion`'s `blobs`), saving a commit.
   * @default true
   */
  readonly index?: boolean;
}

/** Options for `importFile`. */
export interface ImportFileOptions {
  /** Recorded on the blob row (kept from the first writer that knew it). */
  readonly mediaType?: string;
  readonly signal?: AbortSignal;
  /**
   * False: leave the index row to a later call (see WriteBlobOptions.index).
   * @default true
   */
  readonly index?: boolean;
}

/** A blob whose file is in place but not yet indexed (written with `index: false`). */
export interface UnindexedBlob {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType?: string;
}

/** Options for `putModuleVersion`. */
export interface PutModuleVersionOptions {
  /**
   * Blobs written with `index: false` to record in the same commit as the version; each file
   * must be in place with this size.
   */
  readonly blobs?: readonly UnindexedBlob[];
}

/** The outcome of a blob write. */
export interface WriteBlobResult {
  readonly digest: Digest;
  readonly size: number;
  /** False when the blob was already stored (the source was destroyed unread). */
  readonly written: boolean;
}

/** Options for `readBlob`. */
export interface ReadBlobOptions {
  /**
   * Hash the bytes as they stream and fail at the end on damage.
   * @default true
   */
  readonly verify?: boolean;
  readonly signal?: AbortSignal;
}

/** What a manifest references, as recorded (children of an index, or config + layers). */
export interface ManifestReference {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** `os/arch[/variant]` when the descriptor carried a platform. */
  readonly platform?: string;
}

/** A manifest to record: its exact bytes and its references. */
export interface PutManifestInput {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
  /** Children of an index, or config + layers of an image manifest, in order. */
  readonly references: readonly Descriptor[];
  /** `os/arch[/variant]` of this manifest when it is a child of an index. */
  readonly platform?: string;
  readonly signal?: AbortSignal;
}

/** A recorded manifest. */
export interface ManifestRow {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly platform?: string;
  readonly references: ManifestReference[];
}

/** Identifies one upstream tag. */
export interface TagKey {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
}

/** Identifies one image entry's (source's) row of an upstream tag: several entries may mirror one tag. */
export interface SourceTagKey extends TagKey {
  /** The config's image entry name. */
  readonly source: string;
}

/** The state of one mirrored tag, as one image entry (source) mirrors it. */
export interface TagRow extends SourceTagKey {
  /** The intranet path the tag is carried to. */
  readonly target: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** Platforms kept from an index; null keeps all. */
  readonly platforms: string[] | null;
  /** The index children kept (sorted, unique); empty for a single-image manifest. */
  readonly keptDigests: Digest[];
  /** When the tag was last seen upstream. */
  readonly checkedAt: string;
  /** When its digest, kept set or target last changed. */
  readonly changedAt: string;
}

/** What `setTag` records: a tag row without its times. */
export type SetTagInput = Omit<TagRow, 'checkedAt' | 'changedAt'> & {
  /**
   * The tag's closure gained content it lacked (foreign layers fetched after an entry left
   * them out): journal the tag again although it did not move, so the next bundle carries it.
   * @default false
   */
  readonly contentAdded?: boolean;
};

/** The outcome of `setTag` / `putModuleVersion`. */
export interface ChangeResult {
  readonly changed: boolean;
  /** The journal entry written, when something changed. */
  readonly seq?: number;
}

/** Filter for `listTags`. */
export interface TagFilter {
  readonly source?: string;
  readonly registry?: string;
  readonly repository?: string;
}

/** One journal entry: a tag moved or a module version appeared or changed. */
export interface JournalEntry {
  readonly seq: number;
  readonly at: string;
  readonly kind: 'tag' | 'module';
  readonly registry?: string;
  readonly repository?: string;
  readonly tag?: string;
  /** Absent on a tag entry: the tag left the live tags (pruned); `previousDigest` is what it named. */
  readonly digest?: Digest;
  readonly previousDigest?: Digest;
  /** The image entry (tags) or module root (module versions) the change belongs to. */
  readonly source?: string;
  readonly target?: string;
  readonly module?: string;
  readonly version?: string;
}

/** A Go module version whose files are stored as blobs. */
export interface ModuleVersionInput {
  readonly module: string;
  readonly version: string;
  /** The `.info` Time. */
  readonly time: string;
  readonly infoDigest: Digest;
  readonly modDigest: Digest;
  /** Null when only the .mod is carried (a version MVS visits but nothing builds). */
  readonly zipDigest: Digest | null;
  readonly h1Zip: string | null;
  readonly h1Mod: string;
  /** The configured root module this version was fetched for. */
  readonly root: string;
  /** The retraction rationale, when the version is retracted. */
  readonly retracted?: string | null;
}

/** A stored Go module version. */
export interface ModuleVersionRow extends Required<ModuleVersionInput> {
  readonly retracted: string | null;
  readonly updatedAt: string;
}

/** A module version as catalog pages list it (StoreModules.listWithSizes). */
export interface ModuleVersionSized {
  readonly module: string;
  readonly version: string;
  readonly time: string;
  readonly retracted: string | null;
  /** The zip's size; null for a version stored without its zip (go.mod only). */
  readonly zipSize: number | null;
}

/** A recorded manifest and the bytes it references directly (StoreContent.manifestSummaries). */
export interface ManifestSummary {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly platform: string | null;
  /** The sum of its references' sizes: config and layers for an image, children for an index. */
  readonly refsSize: number;
  /** How many references it has. */
  readonly refs: number;
}

/** Filter for `listModuleVersions`. */
export interface ModuleVersionFilter {
  readonly module?: string;
  /** True: only versions with a zip; false: only versions without. */
  readonly withZip?: boolean;
}

/** The last `@v/list` seen for a module. */
export interface ModuleListRow {
  readonly listDigest: string;
  readonly checkedAt: string;
}

/** The kind of a recorded run. */
export type RunKind = 'sync' | 'export' | 'import';
/** How a run ended ('running' while it has not). */
export type RunStatus = 'running' | 'ok' | 'failed' | 'partial' | 'aborted';

/** One sync, export or import run. */
export interface RunRow {
  readonly id: number;
  readonly kind: RunKind;
  readonly status: RunStatus;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly meta: unknown;
  readonly summary: unknown;
  readonly error: string | null;
}

/** How a run ended, for `finishRun`. */
export interface FinishRunInput {
  readonly status: Exclude<RunStatus, 'running'>;
  readonly summary?: object;
  readonly error?: string;
  /** Sources' outcomes (and module roots' list digests), recorded in the same commit. */
  readonly sources?: readonly SourceResultInput[];
}

/** The last result of one configured source. */
export interface SourceState {
  readonly source: string;
  readonly lastRun: string;
  /** True when the last run of this source succeeded. */
  readonly ok: boolean;
  readonly lastOk?: string;
  readonly lastError?: string;
  readonly lastErrorAt?: string;
}

/** One source's outcome, recorded with the end of a run (FinishRunInput.sources). */
export interface SourceResultInput {
  readonly source: string;
  readonly ok: boolean;
  readonly error?: string | undefined;
  /** ISO time. @default now */
  readonly at?: string | undefined;
  /** A module root's `@v/list` digest, recorded with the outcome (only for a root that succeeded). */
  readonly moduleList?: { readonly module: string; readonly listDigest: string } | undefined;
}

/** Who holds a store lock (recorded in the index, so a killed holder is recognised). */
export interface LockHolder {
  readonly pid: number;
  /** The holder's process start time (see processStartTime), when the host tells it. */
  readonly startTime?: string;
  readonly host: string;
  /** Unique per taking: a lock is released only by the one that took it. */
  readonly token: string;
  /** ISO time the lock was taken. */
  readonly since: string;
}

/** A lock on the store, held until released. */
export interface StoreLock {
  readonly holder: LockHolder;
  /** Releases the lock (idempotent). */
  release(): void;
}

/** A bundle to record. */
export interface AddBundleInput {
  readonly id: string;
  readonly sequence: number;
  readonly parentId: string | null;
  readonly createdAt: string;
  readonly seqFrom: number;
  readonly seqTo: number;
  /**
   * The sources (image names, module roots) whose journal entries up to `seqTo` the bundle
   * carried, for an `export --only`; null or absent: every source.
   */
  readonly sources?: readonly string[] | null;
  /** The bundle's file list, as the bundle format defines it (stored as JSON). */
  readonly files: unknown;
  /** The blobs this bundle carried. */
  readonly blobs: readonly Digest[];
  /** The Go module files (relative paths) this bundle carried. */
  readonly moduleFiles?: readonly string[];
  /**
   * An export's lifecycle announcement, as a canonical string (bundle/export.ts lifecycleKey):
   * remembered as the newest exported, so a lifecycle-only change is known to be due. Absent for
   * a bundle imported into this store.
   */
  readonly lifecycle?: string;
}

/** A recorded bundle. */
export interface BundleRow {
  readonly id: string;
  readonly sequence: number;
  readonly parentId: string | null;
  readonly createdAt: string;
  readonly seqFrom: number;
  readonly seqTo: number;
  /** The sources an `export --only` carried up to `seqTo`; null: every source. */
  readonly sources: string[] | null;
  readonly files: unknown;
  readonly moduleFiles: string[];
  readonly blobCount: number;
}

/** Counts for status pages. */
export interface StoreStats {
  readonly blobs: number;
  readonly bytes: number;
  readonly manifests: number;
  readonly tags: number;
  readonly sources: number;
  readonly moduleVersions: number;
  readonly journalSeq: number;
}

/** The kinds of problem fsck reports. */
export type FsckProblemKind =
  | 'missing'
  | 'corrupt'
  | 'size'
  | 'dangling-ref'
  | 'orphan-file'
  | 'tag-missing-manifest'
  | 'module-missing-blob';

/** One problem fsck found. */
export interface FsckProblem {
  readonly kind: FsckProblemKind;
  readonly digest?: string;
  readonly detail: string;
}

/** Progress of an fsck, reported after each blob. */
export interface FsckProgress {
  readonly checked: number;
  readonly total: number;
  readonly bytes: number;
}

/** Options for `fsck`. */
export interface FsckOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: FsckProgress) => void;
}

/** What fsck found. */
export interface FsckResult {
  /** Blob files re-hashed. */
  readonly checked: number;
  readonly problems: FsckProblem[];
  /** Foreign (non-distributable) layers manifests name and the store lacks by design. */
  readonly foreignLayers: readonly string[];
  /**
   * Indexed blobs nothing in the index uses (no manifest, reference, tag, module version or
   * checksum-database file names them): left by an interrupted sync or import. Not damage.
   */
  readonly unreferenced: ReadonlyArray<{ readonly digest: Digest; readonly size: number }>;
}

/** What `removeUnreferencedBlobs` removed. */
export interface RemovedBlobs {
  readonly removed: ReadonlyArray<{ readonly digest: Digest; readonly size: number }>;
  readonly bytes: number;
}
