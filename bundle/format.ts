/**
 * The bundle's signed metadata files, `ferry-bundle.json` and `NAME.parts.json`: types, a strict
 * parser with BUNDLE_INVALID errors that name the field, and a deterministic serialiser.
 *
 * Layout decision (public contract, read by import.sh line by line): the top-level object is
 * written with 2-space indentation in a fixed key order; every array element sits on its own
 * line as compact JSON with its keys in a fixed order; nested objects are compact; the file
 * ends with one newline. Signatures are over these exact bytes, so nothing ever re-serialises
 * a parsed file to check it: readers keep the bytes they read.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { FerryError } from '../errors/index.js';
import { digestHex, isDigest, isIndexMediaType, type Digest } from '../oci/index.js';

/** The only bundle format version this code reads and writes. */
export const FORMAT_VERSION = 1;
/** Name of the signed bundle manifest inside the tar (first entry). */
export const MANIFEST_FILE = 'ferry-bundle.json';
/** Name of the manifest's signature inside the tar (second entry). */
export const SIGNATURE_FILE = 'ferry-bundle.json.sig';
/** Name of the import script inside the tar (third entry) and beside the bundle. */
export const IMPORT_SCRIPT_FILE = 'import.sh';
/** The OCI image layout marker file. */
export const OCI_LAYOUT_FILE = 'oci-layout';
/** The OCI image layout index. */
export const INDEX_FILE = 'index.json';
/** The image plan import.sh follows: each image's closure as the graph gives it (bundle/plan.ts). */
export const PLAN_FILE = 'image-plan.txt';
/** Folder of the Go module tree (a GOPROXY layout) inside the tar. */
export const GOMOD_DIR = 'gomod';

/** One image (one tag) a bundle carries. */
export interface BundleImage {
  /** Full upstream reference `registry/repo:tag`. */
  readonly reference: string;
  /** Intranet repository path the image is pushed to. */
  readonly target: string;
  readonly tag: string;
  /** Digest of the top-level manifest or index. */
  readonly digest: Digest;
  readonly mediaType: string;
  /** Platforms kept (`os/arch[/variant]`), or null when all platforms are carried. */
  readonly platforms: readonly string[] | null;
  /**
   * Present when `platforms` leave children of the index `digest` out: the digest of the filtered
   * index (only the kept children, annotated `io.ferry.filtered-from`) that the bundle carries
   * beside the original, for registries that refuse the original with children missing. Both
   * importers push these exact bytes, so they tag the same digest.
   */
  readonly filtered?: Digest;
}

/**
 * What an image's closure depends on: its root (digest, media type) and the platforms it keeps.
 * Tags with one key share one closure, worked out once (export's plan, verify, import's copy roots).
 */
export function imageSelectionKey(im: Pick<BundleImage, 'digest' | 'mediaType' | 'platforms'>): string {
  return `${im.digest} ${im.mediaType} ${JSON.stringify(im.platforms)}`;
}

/** One Go module version a bundle carries. */
export interface BundleModule {
  /** Module path, unescaped. */
  readonly path: string;
  /** Version, unescaped. */
  readonly version: string;
  /** h1 hash of the zip, or null when the bundle carries only .info and .mod for this version. */
  readonly h1: string | null;
  /** h1 hash of the .mod file. */
  readonly goModH1: string;
  /** Time from the .info file (RFC 3339). */
  readonly time: string;
}

/**
 * A source whose lifecycle is not `active` when the bundle was made: importers announce a
 * deprecated one (with its note) and record both kinds in the ledger.
 */
export interface BundleLifecycle {
  /** `image` (an image entry) or `module` (a Go module root). */
  readonly kind: 'image' | 'module';
  /** The source's name on the DMZ (image entry name, module root). */
  readonly name: string;
  /** Where users inside meet it: the intranet repository of an image, the module path of a root (null for a go.mod root). */
  readonly target: string | null;
  readonly state: 'deprecated' | 'archived';
  /** What users should know, e.g. the replacement to use. */
  readonly note?: string;
}

/**
 * A tag that left the store's live tags (an image entry with `prune: true`: gone upstream or no
 * longer selected): importers delete it where Ferry itself placed it.
 */
export interface BundlePrunedTag {
  /** Intranet repository path. */
  readonly target: string;
  readonly tag: string;
  /** The upstream digest the tag named when it left. */
  readonly digest: Digest;
}

/** One file of the tar after the signature, with its exact size and content hash. */
export interface BundleFile {
  /** Path inside the tar. */
  readonly path: string;
  readonly size: number;
  /** Lowercase hex sha256 of the content (no `sha256:` prefix, so it works with sha256sum). */
  readonly sha256: string;
  /**
   * The manifest media type, present exactly for blobs that are manifests or indexes, so
   * import.sh can push them with the right Content-Type without parsing JSON.
   */
  readonly mediaType?: string;
}

/**
 * One attachment the bundle carries (a signature, attestation, SBOM or referrer manifest): the
 * manifest it is attached to, and the cosign digest tag that names it, if a tag does.
 */
export interface BundleAttachment {
  /** The manifest it is attached to: carried, or listed in requires. */
  readonly subject: Digest;
  /** The attachment manifest: carried, or listed in requires. */
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** The artifact type a referrers list gives it, when one does. */
  readonly artifactType?: string;
  /** The cosign digest tag (`sha256-<hex>.sig|.att|.sbom`) that names it; absent for an OCI referrer. */
  readonly tag?: string;
}

/** The content of `ferry-bundle.json`. */
export interface BundleManifest {
  readonly formatVersion: 1;
  readonly id: string;
  readonly sequence: number;
  /** Id of the previous bundle of the same store, or null for the first. */
  readonly parent: string | null;
  /** Ids of all ancestors, nearest last (so the last equals `parent`). */
  readonly chain: readonly string[];
  /** Creation time, RFC 3339 UTC. */
  readonly created: string;
  readonly store: { readonly id: string };
  /**
   * Present only on a bundle made with `export --only`: the sources (image entry names, module
   * roots) whose changes it carried. Every other source's changes since the parent are not in
   * it; a later bundle of the chain carries them.
   */
  readonly sources?: readonly string[];
  readonly images: readonly BundleImage[];
  readonly modules: readonly BundleModule[];
  /** Every tar entry after the signature, in tar order. */
  readonly files: readonly BundleFile[];
  /** Blob digests that manifests reference but this bundle does not carry (an earlier bundle did). */
  readonly requires: readonly Digest[];
  /** Present only when images carry attachments: each with its subject, sorted by subject, digest, tag. */
  readonly attachments?: readonly BundleAttachment[];
  /** Present only when some source of the store's configuration is deprecated or archived. */
  readonly lifecycle?: readonly BundleLifecycle[];
  /** Present only when tags left the live tags since the parent (`prune: true`). */
  readonly pruned?: readonly BundlePrunedTag[];
}

/** One part file of a bundle tar. */
export interface BundlePart {
  /** File name (no directory), e.g. `ferry-20250101-0001.tar.002`. */
  readonly file: string;
  readonly size: number;
  /** Lowercase hex sha256. */
  readonly sha256: string;
}

/** The content of `NAME.parts.json`. */
export interface PartsManifest {
  readonly formatVersion: 1;
  readonly bundleId: string;
  /** The bundle name, `ferry-YYYYMMDD-NNNN`; part files are `NAME.tar` or `NAME.tar.001`... */
  readonly name: string;
  /** Size of the whole (reassembled) tar. */
  readonly totalSize: number;
  /** Lowercase hex sha256 of the whole tar. */
  readonly sha256: string;
  readonly parts: readonly BundlePart[];
}

const HEX64 = /^[a-f0-9]{64}$/;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const H1_RE = /^h1:[A-Za-z0-9+/]{43}=$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
// Tar paths are restricted to characters that need no JSON or shell escaping, so import.sh can
// read them with sed: escaped Go module paths, semver versions, sumdb tiles and blob names fit.
const PATH_SEGMENT = /^[A-Za-z0-9._~!+@=,-]+$/;

/** Why `p` is not an acceptable tar path, or undefined when it is. */
export function tarPathError(p: string): string | undefined {
  if (p.length === 0 || p.length > 1024) return 'must be 1 to 1024 characters';
  const segments = p.split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') return 'must be a clean relative path (no empty, "." or ".." elements)';
    if (!PATH_SEGMENT.test(s)) return 'may contain only letters, digits and ._~!+@=,- between slashes';
  }
  if (p === MANIFEST_FILE || p === SIGNATURE_FILE) return 'is reserved for the signed manifest';
  if (p === IMPORT_SCRIPT_FILE || p === OCI_LAYOUT_FILE || p === INDEX_FILE || p === PLAN_FILE) return undefined;
  if (segments[0] === 'blobs') {
    if (segments.length !== 3 || segments[1] !== 'sha256' || !HEX64.test(segments[2] ?? '')) {
      return 'blobs must be blobs/sha256/<64 lowercase hex>';
    }
    return undefined;
  }
  if (segments[0] === GOMOD_DIR && segments.length >= 2) return undefined;
  return `must be import.sh, oci-layout, index.json, ${PLAN_FILE}, blobs/sha256/<hex> or under gomod/`;
}

/** The group a path sorts in: import.sh, oci-layout, index.json, the image plan, blobs, then the Go module tree. */
function pathRank(p: string): number {
  if (p === IMPORT_SCRIPT_FILE) return 0;
  if (p === OCI_LAYOUT_FILE) return 1;
  if (p === INDEX_FILE) return 2;
  if (p === PLAN_FILE) return 3;
  if (p.startsWith('blobs/')) return 4;
  return 5;
}

/**
 * Canonical tar order after the signature: import.sh, oci-layout, index.json and the image plan
 * (so a streaming reader knows the layout before its blobs), blobs/ bytewise, then gomod/ bytewise.
 */
export function compareTarPaths(a: string, b: string): number {
  const ra = pathRank(a);
  const rb = pathRank(b);
  if (ra !== rb) return ra - rb;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const digestSchema = z.string().refine((s) => isDigest(s), 'must be sha256:<64 lowercase hex>');
const hexSchema = z.string().regex(HEX64, 'must be 64 lowercase hex characters');
const sizeSchema = z.number().int('must be an integer').nonnegative('must not be negative').refine(Number.isSafeInteger, 'is too large');

const imageSchema = z.strictObject({
  reference: z.string().min(1).max(512),
  target: z.string().min(1).max(255).regex(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/, 'must be a repository path'),
  tag: z.string().regex(/^[\w][\w.-]{0,127}$/, 'must be a valid tag'),
  digest: digestSchema,
  mediaType: z.string().min(1).max(255),
  platforms: z.array(z.string().regex(/^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/, 'must be os/arch[/variant]')).nullable(),
  filtered: digestSchema.optional(),
});

const moduleSchema = z.strictObject({
  path: z.string().min(1).max(512),
  version: z.string().min(1).max(256),
  h1: z.string().regex(H1_RE, 'must be h1:<base64 sha256>').nullable(),
  goModH1: z.string().regex(H1_RE, 'must be h1:<base64 sha256>'),
  time: z.string().regex(RFC3339, 'must be an RFC 3339 time'),
});

// One line of text: no control characters (C0, DEL, C1), so import.sh can print it as it is.
const noteSchema = z.string().min(1).max(1024).regex(/^[^\p{Cc}]*$/u, 'must be one line of text without control characters');

const lifecycleSchema = z.strictObject({
  kind: z.enum(['image', 'module']),
  name: z.string().min(1).max(1024).regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
  target: z.string().min(1).max(512).regex(/^[^\p{Cc}]*$/u, 'must not contain control characters').nullable(),
  state: z.enum(['deprecated', 'archived']),
  note: noteSchema.optional(),
});

const prunedSchema = z.strictObject({
  target: imageSchema.shape.target,
  tag: imageSchema.shape.tag,
  digest: digestSchema,
});

const fileSchema = z.strictObject({
  path: z.string().superRefine((p, ctx) => {
    const why = tarPathError(p);
    if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
  }),
  size: sizeSchema,
  sha256: hexSchema,
  mediaType: z.string().min(1).max(255).optional(),
});

const attachmentSchema = z.strictObject({
  subject: digestSchema,
  digest: digestSchema,
  mediaType: z.string().min(1).max(255),
  size: sizeSchema,
  artifactType: z.string().min(1).max(255).optional(),
  tag: z.string().regex(/^sha256-[a-f0-9]{64}\.(sig|att|sbom)$/, 'must be a cosign digest tag sha256-<hex>.sig|.att|.sbom').optional(),
});

/**
 * z.array(element) for the lists that grow with the mirror (one element per tag, module version,
 * file): each element is checked in place by element.safeParse and zod's checked copy of it
 * dropped at once, so the manifest is not held twice (the JSON tree and a validated copy, tens of
 * megabytes at 50,000 tags). The first bad element's issues come out under its index, where
 * z.array(element) puts them. The output holds the input's own elements: the element schemas are
 * strict objects without defaults or transforms, so what passes them is what they would return.
 */
function eachOf(element: z.ZodType): z.ZodType<unknown[]> {
  return z.array(z.unknown()).superRefine((items, ctx) => {
    for (let i = 0; i < items.length; i++) {
      const res = element.safeParse(items[i]);
      if (res.success) continue;
      for (const issue of res.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: [i, ...issue.path] });
      return;
    }
  });
}

const manifestSchema = z.strictObject({
  formatVersion: z.literal(FORMAT_VERSION, { error: `must be ${FORMAT_VERSION} (this Ferry reads format version ${FORMAT_VERSION} only)` }),
  id: z.string().regex(ID_RE, 'must be 1-128 letters, digits, . _ -'),
  sequence: z.number().int().positive(),
  parent: z.string().regex(ID_RE, 'must be a bundle id').nullable(),
  chain: z.array(z.string().regex(ID_RE, 'must be a bundle id')),
  created: z.string().regex(RFC3339, 'must be an RFC 3339 time'),
  store: z.strictObject({ id: z.string().min(1).max(128) }),
  sources: z.array(z.string().min(1).max(1024)).min(1).max(100_000).optional(),
  images: eachOf(imageSchema),
  modules: eachOf(moduleSchema),
  files: eachOf(fileSchema),
  requires: z.array(digestSchema),
  attachments: z.array(attachmentSchema).min(1).max(1_000_000).optional(),
  lifecycle: z.array(lifecycleSchema).min(1).max(100_000).optional(),
  pruned: z.array(prunedSchema).min(1).max(1_000_000).optional(),
});

const partSchema = z.strictObject({
  file: z.string().regex(NAME_RE, 'must be a plain file name'),
  size: sizeSchema,
  sha256: hexSchema,
});

const partsSchema = z.strictObject({
  formatVersion: z.literal(FORMAT_VERSION, { error: `must be ${FORMAT_VERSION}` }),
  bundleId: z.string().regex(ID_RE, 'must be a bundle id'),
  name: z.string().regex(NAME_RE, 'must be a plain bundle name'),
  totalSize: sizeSchema,
  sha256: hexSchema,
  parts: z.array(partSchema).min(1, 'must list at least one part'),
});

function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(root)' : out;
}

function invalid(file: string, field: string, why: string): FerryError {
  return new FerryError('BUNDLE_INVALID', `${file}: ${field} ${why}`, { file });
}

function parseJson(bytesOrText: Uint8Array | string, file: string): unknown {
  // A view of the bytes, not Buffer.from(bytes), which copies them.
  const text = typeof bytesOrText === 'string' ? bytesOrText : Buffer.from(bytesOrText.buffer, bytesOrText.byteOffset, bytesOrText.byteLength).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FerryError('BUNDLE_INVALID', `${file}: not valid JSON: ${(err as Error).message}`, { file, cause: err });
  }
}

function validate<T>(schema: z.ZodType, json: unknown, file: string): T {
  const res = schema.safeParse(json);
  if (!res.success) {
    const issue = res.error.issues[0];
    if (!issue) throw invalid(file, '(root)', 'is invalid');
    throw invalid(file, fieldPath(issue.path), issue.message);
  }
  return res.data as T;
}

/** Checks the rules that span fields: chain/parent agreement, file order, blob names, uniqueness. */
function checkManifestRules(m: BundleManifest, file: string): void {
  if (m.parent === null && m.chain.length > 0) throw invalid(file, 'chain', 'must be empty when parent is null');
  if (m.parent !== null && m.chain[m.chain.length - 1] !== m.parent) {
    throw invalid(file, 'chain', `must end with the parent "${m.parent}"`);
  }
  if (m.chain.includes(m.id)) throw invalid(file, 'chain', `must not contain the bundle's own id "${m.id}"`);
  for (let i = 0; i < m.files.length; i++) {
    const f = m.files[i]!;
    if (f.path.startsWith('blobs/') && f.path !== `blobs/sha256/${f.sha256}`) {
      throw invalid(file, `files[${i}].sha256`, `does not match the blob's name ${f.path}`);
    }
    if (f.mediaType !== undefined && !f.path.startsWith('blobs/')) {
      throw invalid(file, `files[${i}].mediaType`, 'is allowed only on blobs (manifests)');
    }
    if (i > 0) {
      const prev = m.files[i - 1]!.path;
      const c = compareTarPaths(prev, f.path);
      if (c === 0) throw invalid(file, `files[${i}].path`, `"${f.path}" is listed twice`);
      if (c > 0) throw invalid(file, `files[${i}].path`, `"${f.path}" is out of order (must follow canonical tar order)`);
    }
  }
  m.sources?.forEach((x, i) => {
    if (i > 0 && m.sources![i - 1]! >= x) throw invalid(file, `sources[${i}]`, `"${x}" is out of order or listed twice (sources are sorted and unique)`);
  });
  const req = new Set<string>();
  m.requires.forEach((d, i) => {
    if (req.has(d)) throw invalid(file, `requires[${i}]`, `"${d}" is listed twice`);
    req.add(d);
  });
  // Every attachment and its subject travel here or came before: an attachment is never pushed without its subject.
  const manifestTypes = new Map(m.files.filter((f) => f.mediaType !== undefined).map((f) => [f.path, f.mediaType]));
  const named = (d: Digest): boolean => req.has(d) || manifestTypes.has(`blobs/sha256/${digestHex(d)}`);
  m.attachments?.forEach((a, i) => {
    const key = `${a.subject} ${a.digest} ${a.tag ?? ''}`;
    if (i > 0) {
      const p = m.attachments![i - 1]!;
      if (`${p.subject} ${p.digest} ${p.tag ?? ''}` >= key) throw invalid(file, `attachments[${i}]`, 'is out of order or listed twice (sorted by subject, digest, tag)');
    }
    if (a.tag !== undefined && !a.tag.startsWith(`sha256-${digestHex(a.subject)}.`)) throw invalid(file, `attachments[${i}].tag`, `"${a.tag}" does not name the subject ${a.subject}`);
    if (!named(a.subject)) throw invalid(file, `attachments[${i}].subject`, `${a.subject} is neither a carried manifest nor listed in requires`);
    if (!named(a.digest)) throw invalid(file, `attachments[${i}].digest`, `${a.digest} is neither a carried manifest nor listed in requires`);
  });
  const sourcesSeen = new Set<string>();
  m.lifecycle?.forEach((l, i) => {
    const key = `${l.kind}\0${l.name}`;
    if (sourcesSeen.has(key)) throw invalid(file, `lifecycle[${i}]`, `${l.kind} ${JSON.stringify(l.name)} is listed twice`);
    sourcesSeen.add(key);
  });
  if (m.pruned !== undefined) {
    // One key per tag: built only when some tag was pruned.
    const carried = new Set(m.images.map((im) => `${im.target}:${im.tag}`));
    const prunedSeen = new Set<string>();
    m.pruned.forEach((p, i) => {
      const key = `${p.target}:${p.tag}`;
      if (prunedSeen.has(key)) throw invalid(file, `pruned[${i}]`, `${key} is listed twice`);
      if (carried.has(key)) throw invalid(file, `pruned[${i}]`, `${key} is also in images (a tag is either carried or removed)`);
      prunedSeen.add(key);
    });
  }
  const seen = new Set<string>();
  const manifestType = new Map(m.files.filter((f) => f.mediaType !== undefined).map((f) => [f.path, f.mediaType]));
  m.images.forEach((im, i) => checkImageRules(im, i, seen, manifestType, file));
}

/** The rules one images[] element must meet beside the others: listed once by target and tag, and a filtered image's two indexes carried. */
function checkImageRules(im: BundleImage, i: number, seen: Set<string>, manifestType: ReadonlyMap<string, string | undefined>, file: string): void {
  const key = `${im.target}:${im.tag}`;
  if (seen.has(key)) throw invalid(file, `images[${i}]`, `target ${key} is listed twice`);
  seen.add(key);
  if (im.filtered === undefined) return;
  const where = `images[${i}].filtered`;
  if (im.platforms === null) throw invalid(file, where, 'is set but platforms is null (nothing is filtered)');
  if (!isIndexMediaType(im.mediaType)) throw invalid(file, where, `is set but the image is not an index (${im.mediaType})`);
  if (im.filtered === im.digest) throw invalid(file, where, 'must differ from digest');
  // The original and its filtered form travel together, so either can be pushed from this bundle alone.
  for (const d of [im.digest, im.filtered]) {
    const path = `blobs/sha256/${digestHex(d)}`;
    if (manifestType.get(path) !== im.mediaType) throw invalid(file, where, `needs ${path} carried as ${im.mediaType} (the files list has ${manifestType.get(path) ?? 'no such manifest'})`);
  }
}

/**
 * Checks images[] one element at a time, with the rules parseBundleManifest applies to the whole
 * list (the element schema, target and tag listed once, filtered images, none also pruned): what
 * a writer streaming a long images[] uses so it never signs what a reader would refuse, while
 * parseBundleManifest checks the rest of the manifest (written with an empty images[]).
 * Holds one key per image.
 */
export class BundleImageCheck {
  private readonly seen = new Set<string>();
  private readonly manifestType: ReadonlyMap<string, string | undefined>;
  private readonly pruned: ReadonlyMap<string, number>;
  private count = 0;

  constructor(m: Pick<BundleManifest, 'files' | 'pruned'>) {
    this.manifestType = new Map(m.files.filter((f) => f.mediaType !== undefined).map((f) => [f.path, f.mediaType]));
    this.pruned = new Map((m.pruned ?? []).map((p, i) => [`${p.target}:${p.tag}`, i]));
  }

  /** Checks the next element; throws BUNDLE_INVALID naming it. */
  add(im: BundleImage): void {
    const i = this.count++;
    const res = imageSchema.safeParse(im);
    if (!res.success) {
      const issue = res.error.issues[0];
      throw invalid(MANIFEST_FILE, issue ? fieldPath(['images', i, ...issue.path]) : `images[${i}]`, issue?.message ?? 'is invalid');
    }
    const p = this.pruned.get(`${im.target}:${im.tag}`);
    if (p !== undefined) throw invalid(MANIFEST_FILE, `pruned[${p}]`, `${im.target}:${im.tag} is also in images (a tag is either carried or removed)`);
    checkImageRules(im, i, this.seen, this.manifestType, MANIFEST_FILE);
  }
}

/**
 * Shares, in place, the strings the elements of images[] repeat: the target, digest, media type,
 * platforms and filtered digest of the tags of one image become one string (one array) each, not
 * one per tag as JSON.parse makes them. At 50,000 tags of 50 images that is about 10 MB less heap.
 * The elements are JSON.parse's own objects (eachOf keeps them), so no second list is built.
 */
function shareImageStrings(images: readonly BundleImage[]): void {
  const strings = new Map<string, string>();
  const one = <T extends string>(x: T): T => {
    const got = strings.get(x);
    if (got !== undefined) return got as T;
    strings.set(x, x);
    return x;
  };
  const platforms = new Map<string, readonly string[]>();
  for (const im of images as Array<{ -readonly [K in keyof BundleImage]: BundleImage[K] }>) {
    im.target = one(im.target);
    im.digest = one(im.digest);
    im.mediaType = one(im.mediaType);
    if (im.platforms !== null) {
      const key = im.platforms.join('\n');
      const got = platforms.get(key);
      if (got !== undefined) im.platforms = got;
      else platforms.set(key, im.platforms);
    }
    if (im.filtered !== undefined) im.filtered = one(im.filtered);
  }
}

/**
 * Parses and validates `ferry-bundle.json` (its bytes, or their text: a caller done with the bytes
 * can let them go before the tree is built); throws BUNDLE_INVALID naming the field.
 */
export function parseBundleManifest(bytesOrText: Uint8Array | string): BundleManifest {
  const m = validate<BundleManifest>(manifestSchema, parseJson(bytesOrText, MANIFEST_FILE), MANIFEST_FILE);
  shareImageStrings(m.images);
  checkManifestRules(m, MANIFEST_FILE);
  return m;
}

/** Parses and validates `NAME.parts.json` bytes; throws BUNDLE_INVALID naming the field. */
export function parsePartsManifest(bytes: Uint8Array, file = 'parts.json'): PartsManifest {
  const p = validate<PartsManifest>(partsSchema, parseJson(bytes, file), file);
  if (p.parts.length === 1) {
    const only = p.parts[0]!;
    if (only.file !== `${p.name}.tar` && only.file !== partFileName(p.name, 1)) {
      throw invalid(file, 'parts[0].file', `must be ${p.name}.tar or ${partFileName(p.name, 1)}`);
    }
  } else {
    p.parts.forEach((part, i) => {
      if (part.file !== partFileName(p.name, i + 1)) throw invalid(file, `parts[${i}].file`, `must be ${partFileName(p.name, i + 1)}`);
    });
  }
  const total = p.parts.reduce((n, part) => n + part.size, 0);
  if (total !== p.totalSize) throw invalid(file, 'totalSize', `is ${p.totalSize} but the parts add up to ${total}`);
  return p;
}

/** The file name of part `n` (1-based): `NAME.tar.001`. Three digits; writers refuse more than 999 parts. */
export function partFileName(name: string, n: number): string {
  return `${name}.tar.${String(n).padStart(3, '0')}`;
}

/** Maximum number of parts: three-digit suffixes keep `cat NAME.tar.*` in order. */
export const MAX_PARTS = 999;

function line(obj: unknown): string {
  return JSON.stringify(obj);
}

function arrayBlock(items: readonly unknown[]): string {
  return lineBlock(items.map(line));
}

function lineBlock(lines: readonly string[]): string {
  if (lines.length === 0) return '[]';
  return `[\n${lines.map((l) => `    ${l}`).join(',\n')}\n  ]`;
}

function topLevel(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const body = fields.map(([k, v]) => `  ${JSON.stringify(k)}: ${v}`).join(',\n');
  return Buffer.from(`{\n${body}\n}\n`, 'utf8');
}

/** One images[] element as its line of ferry-bundle.json (without the indentation and comma). */
export function bundleImageLine(i: BundleImage): string {
  return line({
    reference: i.reference,
    target: i.target,
    tag: i.tag,
    digest: i.digest,
    mediaType: i.mediaType,
    platforms: i.platforms === null ? null : [...i.platforms],
    // Last, and only when present: import.sh reads each line with a fixed key order.
    ...(i.filtered !== undefined ? { filtered: i.filtered } : {}),
  });
}

/** The marker serializeBundleManifestParts leaves where the images[] block goes. */
const IMAGES_SLOT = '\u0000images\u0000';

/**
 * The canonical bytes of a manifest whose images[] is written apart (it may be long): the text
 * before the images[] block and the text after it, so a writer can stream the block between them
 * (`[]` when empty, else `[`, each line indented by 4 and joined by `,\n`, then `\n  ]`).
 */
export function serializeBundleManifestParts(m: Omit<BundleManifest, 'images'>): { readonly head: string; readonly tail: string } {
  const text = serializeManifest({ ...m, images: [] }, IMAGES_SLOT).toString('utf8');
  const at = text.indexOf(IMAGES_SLOT);
  return { head: text.slice(0, at), tail: text.slice(at + IMAGES_SLOT.length) };
}

/** Serialises a bundle manifest in the canonical layout (see the file comment). */
export function serializeBundleManifest(m: BundleManifest): Buffer {
  return serializeManifest(m);
}

function serializeManifest(m: BundleManifest, imagesSlot?: string): Buffer {
  const images = imagesSlot ?? lineBlock(m.images.map(bundleImageLine));
  const modules = m.modules.map((x) => ({ path: x.path, version: x.version, h1: x.h1, goModH1: x.goModH1, time: x.time }));
  const files = m.files.map((f) =>
    f.mediaType === undefined
      ? { path: f.path, size: f.size, sha256: f.sha256 }
      : { path: f.path, size: f.size, sha256: f.sha256, mediaType: f.mediaType },
  );
  return topLevel([
    ['formatVersion', line(m.formatVersion)],
    ['id', line(m.id)],
    ['sequence', line(m.sequence)],
    ['parent', line(m.parent)],
    ['chain', arrayBlock(m.chain)],
    ['created', line(m.created)],
    ['store', line({ id: m.store.id })],
    ...(m.sources !== undefined ? [['sources', arrayBlock(m.sources)] as const] : []),
    ['images', images],
    ['modules', arrayBlock(modules)],
    ['files', arrayBlock(files)],
    ['requires', arrayBlock(m.requires)],
    ...(m.attachments !== undefined && m.attachments.length > 0
      ? [
          [
            'attachments',
            arrayBlock(
              m.attachments.map((a) => ({
                subject: a.subject,
                digest: a.digest,
                mediaType: a.mediaType,
                size: a.size,
                ...(a.artifactType !== undefined ? { artifactType: a.artifactType } : {}),
                ...(a.tag !== undefined ? { tag: a.tag } : {}),
              })),
            ),
          ] as const,
        ]
      : []),
    // Only when some source is not active: import.sh reads each line with a fixed key order.
    ...(m.lifecycle !== undefined && m.lifecycle.length > 0
      ? [['lifecycle', arrayBlock(m.lifecycle.map((l) => ({ kind: l.kind, name: l.name, target: l.target, state: l.state, ...(l.note !== undefined ? { note: l.note } : {}) })))] as const]
      : []),
    ...(m.pruned !== undefined && m.pruned.length > 0
      ? [['pruned', arrayBlock(m.pruned.map((p) => ({ target: p.target, tag: p.tag, digest: p.digest })))] as const]
      : []),
  ]);
}

/** Serialises a parts manifest in the canonical layout (one part object per line). */
export function serializePartsManifest(p: PartsManifest): Buffer {
  return topLevel([
    ['formatVersion', line(p.formatVersion)],
    ['bundleId', line(p.bundleId)],
    ['name', line(p.name)],
    ['totalSize', line(p.totalSize)],
    ['sha256', line(p.sha256)],
    ['parts', arrayBlock(p.parts.map((x) => ({ file: x.file, size: x.size, sha256: x.sha256 })))],
  ]);
}

function yyyymmdd(date: Date): string {
  const y = String(date.getUTCFullYear()).padStart(4, '0');
  const m = String(date.getUTCMonth() + 1).padStart(2, '0');
  const d = String(date.getUTCDate()).padStart(2, '0');
  return `${y}${m}${d}`;
}

/**
 * The bundle name `ferry-YYYYMMDD-NNNN` (UTC date; the sequence zero-padded to four digits,
 * wider when it outgrows them, so names sort by sequence within a day).
 */
export function bundleFileName(date: Date, seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new FerryError('USAGE', `bundle sequence must be a positive integer, got ${seq}`);
  return `ferry-${yyyymmdd(date)}-${String(seq).padStart(4, '0')}`;
}

/** A bundle id: the bundle name plus 8 random hex digits, unique even when two stores share a name. */
export function newBundleId(date: Date, seq: number, random: Uint8Array = randomBytes(4)): string {
  return `${bundleFileName(date, seq)}-${Buffer.from(random).subarray(0, 4).toString('hex')}`;
}
