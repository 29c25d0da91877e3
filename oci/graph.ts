/**
 * The image graph: what a tag selects, defined once for every path (sync, export, verify, both
 * importers, serve, and the plan import.sh follows). Given a root descriptor, a way to read a
 * manifest and a selection, `closure` yields the manifests (children before parents), the blobs,
 * the foreign layers, which children of the root index were kept, and the filtered index that
 * stands for the root when the selection left children out.
 *
 * Pure: the only I/O is through the reader passed in. The rules, each written here once:
 * - A platform selection applies to the root index only: a child is kept when its platform
 *   matches one wanted (`platformMatches`: a wanted platform without a variant matches any
 *   variant). Nested indexes keep all their children.
 * - A buildx attestation manifest (annotations `vnd.docker.reference.type: attestation-manifest`
 *   and `vnd.docker.reference.digest: <image>`) follows the image it describes: kept when that
 *   image is kept, dropped otherwise, whatever its own platform (`unknown/unknown`). When the
 *   source lacks a kept attestation it is dropped too (`absent`): attachments are never
 *   required, and stores and bundles made before this rule left them out.
 * - With no platform selection every child is kept (attestations included), and nothing is
 *   filtered.
 * - The filtered index (oci/filtered.ts, byte-exact) holds the kept children, in index order,
 *   and names the original in `io.ferry.filtered-from`; it exists when the selection left some
 *   child of the root index out.
 * - An image manifest's blobs are its config and layers; a foreign layer (`isForeignLayer`:
 *   non-distributable media type with `urls`) is reported apart and never required. `subject`
 *   is not followed upward.
 * - Attachments (oci/referrers.ts), when the selection follows them and the caller passes a
 *   finder: every manifest the root reaches (the root, kept children, nested ones) is asked for
 *   its attachments, the selection's filter keeps some, and each kept one joins the closure with
 *   its blobs (listed before the root, which stays last; copy.ts puts each after its subject);
 *   attachments of attachments follow up to MAX_ATTACHMENT_DEPTH.
 *   A referrer whose `subject` names another manifest is refused (MANIFEST_INVALID); one the
 *   source lacks is dropped (`absent`); a manifest already in the closure is not attached again
 *   (no cycles through digest tags).
 * - A manifest the reader lacks is reported in `missing` (the root included), never thrown: an
 *   incremental bundle's `requires` and a store's holes are the caller's decision. A manifest
 *   the reader vouches for without its bytes (`'external'`: required by an incremental bundle,
 *   or already complete at the target) is a leaf, reported in `external`.
 */
import { FerryError } from '../errors/index.js';
import { sha256Digest, type Digest } from './digest.js';
import { filteredIndex } from './filtered.js';
import { isForeignLayer, parseManifest, platformMatches, type Descriptor, type ParsedManifest } from './manifest.js';
import { attachmentSelected, MAX_ATTACHMENT_DEPTH, type Attachment, type AttachmentFilter, type AttachmentFinder } from './referrers.js';

/** Annotation buildx puts on an attestation manifest in an index: what kind of reference it is. */
export const ANNOTATION_REFERENCE_TYPE = 'vnd.docker.reference.type';
/** Annotation buildx puts on an attestation manifest: the digest of the image manifest it describes. */
export const ANNOTATION_REFERENCE_DIGEST = 'vnd.docker.reference.digest';
/** The value of ANNOTATION_REFERENCE_TYPE on an attestation manifest. */
export const ATTESTATION_MANIFEST = 'attestation-manifest';

/** Deepest nesting of indexes followed; deeper is refused as hostile (real images nest one level at most). */
export const MAX_GRAPH_DEPTH = 16;

/** Attachments a selection follows: none, or those the filter keeps (`artifactTypes: null`: all). */
export type AttachmentSelection = 'none' | AttachmentFilter;

/** Every attachment the source has. */
export const ALL_ATTACHMENTS: AttachmentFilter = { artifactTypes: null };

/** What a tag selects from its root. */
export interface Selection {
  /** Platforms (`os/arch[/variant]`) kept from the root index; null keeps every child. */
  readonly platforms: readonly string[] | null;
  /** Attachments to follow (signatures, SBOMs, referrers). @default 'none' */
  readonly attachments?: AttachmentSelection;
}

/** Every child, nothing attached. */
export const SELECT_ALL: Selection = { platforms: null };

/** A manifest's exact bytes as a source holds them. */
export interface ManifestBytes {
  readonly bytes: Uint8Array;
  /** The media type the source recorded (the body's own `mediaType` wins when it has one). */
  readonly mediaType: string;
}

/**
 * What a reader answers for a manifest: its bytes; `'external'` when the source vouches that it
 * is there, complete, without handing its bytes (walked no further); undefined when it lacks it.
 */
export type ManifestRead = ManifestBytes | 'external' | undefined;

/** Reads one manifest by its descriptor (digest, and a media type hint). */
export type ManifestReader = (d: Descriptor) => ManifestRead | Promise<ManifestRead>;

/** One manifest of a closure. */
export interface GraphManifest {
  readonly digest: Digest;
  /** The media type it declares (the body's, else the source's). */
  readonly mediaType: string;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly parsed: ParsedManifest;
  /** The descriptor it was first reached by: the root's, or its parent's entry (platform, annotations). */
  readonly descriptor: Descriptor;
  /** For an index: the children this closure keeps (the selection's, for the root; all, nested). */
  readonly children: readonly Descriptor[];
  /** For an image manifest: config and layers, foreign layers left out. */
  readonly blobs: readonly Descriptor[];
  /** For an image manifest: its foreign layers. */
  readonly foreign: readonly Descriptor[];
}

/** The filtered index that stands for a root index whose selection left children out. */
export interface FilteredIndex {
  readonly digest: Digest;
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly size: number;
}

/** What a root selects. */
export interface Closure {
  readonly root: Descriptor;
  /** The root index's kept children, in index order; undefined when the root is an image manifest or was not read. */
  readonly kept: readonly Descriptor[] | undefined;
  /** The root index's children left out (by the selection, or absent attachments). */
  readonly dropped: readonly Descriptor[];
  /** Every manifest read, each once, children before parents, attachments before the root, the root last. */
  readonly manifests: readonly GraphManifest[];
  /** Configs and layers, each once, in the order their manifests come. */
  readonly blobs: readonly Descriptor[];
  /** Foreign layers, each once: reported, never required. */
  readonly foreign: readonly Descriptor[];
  /** Manifests the reader vouched for without bytes (leaves). */
  readonly external: readonly Descriptor[];
  /** Manifests the reader lacks (the root, when it lacks that). */
  readonly missing: readonly Descriptor[];
  /** Attachments the selection keeps but the reader lacks: dropped. */
  readonly absent: readonly Descriptor[];
  /** Set when the selection left some child of the root index out. */
  readonly filtered: FilteredIndex | undefined;
  /** Attachments kept, in the order found; their manifests are in `manifests` (before the root) or `external`. */
  readonly attachments: readonly Attachment[];
}

/** True for a buildx attestation manifest entry of an index. */
export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.[ANNOTATION_REFERENCE_TYPE] === ATTESTATION_MANIFEST && typeof d.annotations[ANNOTATION_REFERENCE_DIGEST] === 'string';
}

/**
 * The children of a root index a selection keeps, by rule alone (whether the source has them is
 * the closure's business): platform matches, and attestations of kept images.
 */
export function selectChildren(children: readonly Descriptor[], selection: Selection): Descriptor[] {
  const platforms = selection.platforms;
  if (platforms === null) return [...children];
  const images = new Set<string>(children.filter((d) => !isAttestation(d) && platforms.some((p) => platformMatches(d.platform, p))).map((d) => d.digest));
  return children.filter((d) => (isAttestation(d) ? images.has(d.annotations![ANNOTATION_REFERENCE_DIGEST]!) : images.has(d.digest)));
}

type Node =
  | { readonly kind: 'manifest'; readonly m: GraphManifest; readonly kids: readonly Descriptor[] }
  | { readonly kind: 'external' }
  | { readonly kind: 'missing' };

function bad(d: Descriptor, why: string): FerryError {
  return new FerryError('MANIFEST_INVALID', `manifest ${d.digest}: ${why}`, { digest: d.digest });
}

/**
 * The closure of `root` under `selection`, reading manifests through `read`. Children of an index
 * are read concurrently; the result's order depends only on the graph.
 */
export async function closure(root: Descriptor, read: ManifestReader, selection: Selection = SELECT_ALL, find?: AttachmentFinder): Promise<Closure> {
  const nodes = new Map<string, Promise<Node>>();
  const absent: Descriptor[] = [];
  let kept: Descriptor[] | undefined;
  let dropped: Descriptor[] = [];

  const load = async (d: Descriptor): Promise<{ bytes: Uint8Array; mediaType: string; parsed: ParsedManifest } | 'external' | undefined> => {
    const got = await read(d);
    if (got === undefined || got === 'external') return got;
    if (sha256Digest(got.bytes) !== d.digest) {
      throw new FerryError('DIGEST_MISMATCH', `manifest ${d.digest}: the bytes read have digest ${sha256Digest(got.bytes)}`, { digest: d.digest });
    }
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(got.bytes, got.mediaType);
    } catch (err) {
      if (err instanceof FerryError) throw new FerryError(err.code, `manifest ${d.digest}: ${err.message}`, { ...err.details, digest: d.digest, cause: err });
      throw err;
    }
    return { bytes: got.bytes, mediaType: parsed.mediaType, parsed };
  };

  const visit = (d: Descriptor, depth: number, isRoot: boolean): Promise<Node> => {
    let p = nodes.get(d.digest);
    if (p) return p;
    p = (async (): Promise<Node> => {
      if (depth > MAX_GRAPH_DEPTH) throw bad(d, `indexes nest deeper than ${MAX_GRAPH_DEPTH} levels`);
      const got = await load(d);
      if (got === undefined) return { kind: 'missing' };
      if (got === 'external') return { kind: 'external' };
      const base = { digest: d.digest, mediaType: got.mediaType, size: got.bytes.length, bytes: got.bytes, parsed: got.parsed, descriptor: d };
      if (got.parsed.kind === 'image') {
        const refs = [got.parsed.manifest.config, ...got.parsed.manifest.layers];
        const foreign = got.parsed.manifest.layers.filter(isForeignLayer);
        const m: GraphManifest = { ...base, children: [], blobs: refs.filter((r) => !foreign.includes(r)), foreign };
        return { kind: 'manifest', m, kids: [] };
      }
      const all = got.parsed.index.manifests;
      let kids: Descriptor[] = [...all];
      if (isRoot && selection.platforms !== null) {
        const selected = selectChildren(all, selection);
        // An attachment the source lacks is dropped, not missing: read it first to know.
        const present = await Promise.all(
          selected.map(async (c) => {
            if (!isAttestation(c)) return true;
            const n = await visit(c, depth + 1, false);
            if (n.kind === 'missing') absent.push(c);
            return n.kind !== 'missing';
          }),
        );
        kids = selected.filter((_c, i) => present[i]);
      }
      await Promise.all(kids.map((c) => visit(c, depth + 1, false)));
      if (isRoot) {
        kept = kids;
        dropped = all.filter((c) => !kids.includes(c));
      }
      return { kind: 'manifest', m: { ...base, children: kids, blobs: [], foreign: [] }, kids };
    })();
    nodes.set(d.digest, p);
    return p;
  };

  await visit(root, 0, true);

  // Attachments, level by level: the subjects of the first are every manifest the root reaches.
  const attachments: Attachment[] = [];
  const filter = selection.attachments;
  if (find !== undefined && filter !== undefined && filter !== 'none') {
    const reached: Descriptor[] = [];
    const walk = async (d: Descriptor): Promise<void> => {
      if (reached.some((r) => r.digest === d.digest)) return;
      const n = await nodes.get(d.digest);
      if (n === undefined || n.kind === 'missing') return;
      reached.push(d);
      if (n.kind === 'manifest') for (const c of n.kids) await walk(c);
    };
    await walk(root);
    let subjects = reached;
    for (let level = 1; level <= MAX_ATTACHMENT_DEPTH && subjects.length > 0; level++) {
      const found = await Promise.all(subjects.map((s) => find(s)));
      const next: Descriptor[] = [];
      for (const a of found.flat()) {
        if (!attachmentSelected(a, filter)) continue;
        const known = nodes.has(a.descriptor.digest);
        if (known && !attachments.some((b) => b.descriptor.digest === a.descriptor.digest)) continue;
        if (attachments.some((b) => b.subject === a.subject && b.descriptor.digest === a.descriptor.digest && b.tag === a.tag)) continue;
        const n = await visit(a.descriptor, 1, false);
        if (n.kind === 'missing') {
          absent.push(a.descriptor);
          continue;
        }
        if (n.kind === 'manifest' && a.tag === undefined) {
          const p = n.m.parsed;
          const subject = (p.kind === 'index' ? p.index.subject : p.manifest.subject)?.digest;
          if (subject !== a.subject) throw bad(a.descriptor, `listed as a referrer of ${a.subject} but its subject is ${subject ?? 'absent'}`);
        }
        attachments.push(a);
        if (!known) next.push(a.descriptor);
      }
      subjects = next;
    }
  }

  // Flatten deterministically: post-order from the root, each digest once.
  const manifests: GraphManifest[] = [];
  const external: Descriptor[] = [];
  const missing: Descriptor[] = [];
  const blobs = new Map<string, Descriptor>();
  const foreign = new Map<string, Descriptor>();
  const done = new Set<string>();
  const flatten = async (d: Descriptor): Promise<void> => {
    if (done.has(d.digest)) return;
    done.add(d.digest);
    const n = await nodes.get(d.digest)!;
    if (n.kind === 'missing') {
      missing.push(d);
      return;
    }
    if (n.kind === 'external') {
      external.push(d);
      return;
    }
    for (const c of n.kids) await flatten(c);
    manifests.push(n.m);
    for (const b of n.m.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
    for (const f of n.m.foreign) if (!foreign.has(f.digest)) foreign.set(f.digest, f);
  };
  await flatten(root);
  if (attachments.length > 0) {
    // The root stays last (what a tag names): attachments come before it, after every other subject.
    const rootEntry = manifests.length > 0 && manifests[manifests.length - 1]!.digest === root.digest ? manifests.pop() : undefined;
    for (const a of attachments) await flatten(a.descriptor);
    if (rootEntry) manifests.push(rootEntry);
  }

  const top = manifests[manifests.length - 1];
  let filtered: FilteredIndex | undefined;
  if (top !== undefined && top.digest === root.digest && top.parsed.kind === 'index' && selection.platforms !== null && dropped.length > 0) {
    const f = filteredIndex(top.bytes, (kept ?? []).map((c) => c.digest), root.digest);
    filtered = { digest: f.digest, bytes: f.bytes, mediaType: top.mediaType, size: f.bytes.length };
  }
  const rootIsIndex = top !== undefined && top.digest === root.digest && top.parsed.kind === 'index';
  // A blob that is also a foreign layer elsewhere travels as a blob.
  for (const d of blobs.keys()) foreign.delete(d);
  return {
    root,
    kept: rootIsIndex ? (kept ?? []) : undefined,
    dropped: rootIsIndex ? dropped : [],
    manifests,
    blobs: [...blobs.values()],
    foreign: [...foreign.values()],
    external,
    missing,
    absent,
    filtered,
    attachments,
  };
}

/** Every digest a closure names (manifests, external manifests, blobs, foreign layers, the filtered index). */
export function closureDigests(c: Closure): Set<Digest> {
  const out = new Set<Digest>();
  for (const m of c.manifests) out.add(m.digest);
  for (const d of c.external) out.add(d.digest);
  for (const d of c.blobs) out.add(d.digest);
  for (const d of c.foreign) out.add(d.digest);
  if (c.filtered) out.add(c.filtered.digest);
  return out;
}
