/**
 * Attachments, pure: what a signature, attestation, SBOM or other referrer is and how it is named.
 *
 * - An OCI 1.1 referrer is a manifest whose `subject` names the image; a registry lists them at
 *   `GET /v2/<name>/referrers/<digest>` as an image index of descriptors carrying `artifactType`
 *   and the manifest's annotations (distribution-spec "Listing Referrers"). Where a registry lacks
 *   that API, clients keep the same index under the fallback tag `sha256-<hex>` (the "referrers tag
 *   schema").
 * - cosign's older scheme names an attachment by a digest tag `sha256-<hex>.sig`, `.att` or `.sbom`
 *   (its manifest has no `subject`).
 */
import { FerryError } from '../errors/index.js';
import { digestHex, isDigest, type Digest } from './digest.js';
import { MediaType, parseManifest, type Descriptor } from './manifest.js';

/** The cosign digest tag suffixes Ferry follows, in the order it asks for them. */
export const COSIGN_TAG_SUFFIXES = ['sig', 'att', 'sbom'] as const;
/** One cosign digest tag kind. */
export type CosignTagKind = (typeof COSIGN_TAG_SUFFIXES)[number];

/** The artifact type a cosign digest tag stands for (what `artifactTypes:` selects it by). */
export const COSIGN_ARTIFACT_TYPES: Readonly<Record<CosignTagKind, string>> = {
  sig: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  att: 'application/vnd.dev.cosign.artifact.att.v1+json',
  sbom: 'application/vnd.dev.cosign.artifact.sbom.v1+json',
};

/** The layer annotation a cosign simple-signing signature is kept in (base64). */
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

/** Attachments of attachments followed (a signature of an SBOM of an image is depth 2). */
export const MAX_ATTACHMENT_DEPTH = 3;

/** Most attachments one subject may have before a source is taken as hostile. */
export const MAX_ATTACHMENTS_PER_SUBJECT = 1000;

/** One attachment of a subject manifest. */
export interface Attachment {
  /** The manifest it is attached to. */
  readonly subject: Digest;
  /** The attachment manifest (with `artifactType` and annotations when a referrers list gave them). */
  readonly descriptor: Descriptor;
  /** The cosign digest tag it is found by; undefined for an OCI referrer (its `subject` names the subject). */
  readonly tag?: string;
}

/** Finds the attachments of a subject in a source. */
export type AttachmentFinder = (subject: Descriptor) => Promise<readonly Attachment[]>;

/** The fallback tag a registry without the referrers API keeps a subject's referrers index under: `sha256-<hex>`. */
export function fallbackTag(subject: Digest): string {
  return `sha256-${digestHex(subject)}`;
}

/** The cosign digest tag of a subject: `sha256-<hex>.sig|.att|.sbom`. */
export function cosignTag(subject: Digest, kind: CosignTagKind): string {
  return `${fallbackTag(subject)}.${kind}`;
}

/** The cosign digest tags of a subject, in COSIGN_TAG_SUFFIXES order. */
export function cosignTags(subject: Digest): string[] {
  return COSIGN_TAG_SUFFIXES.map((k) => cosignTag(subject, k));
}

/** What a digest-shaped tag names: the subject, and the cosign kind (none for a fallback tag). */
export interface DigestTag {
  readonly subject: Digest;
  readonly kind: CosignTagKind | undefined;
}

/** Parses a digest-shaped tag (`sha256-<64 hex>` with an optional `.sig|.att|.sbom`); undefined for any other tag. */
export function parseDigestTag(tag: string): DigestTag | undefined {
  const m = /^sha256-([0-9a-f]{64})(?:\.(sig|att|sbom))?$/.exec(tag);
  if (!m) return undefined;
  return { subject: `sha256:${m[1]!}`, kind: m[2] as CosignTagKind | undefined };
}

/** True for a tag shaped like an attachment's (a fallback tag or a cosign digest tag), not an image's own. */
export function isDigestTag(tag: string): boolean {
  return /^sha256-[0-9a-f]{64}(\..+)?$/.test(tag);
}

/** Which attachments a selection follows: all, or only those of some artifact types. */
export type AttachmentFilter = { readonly artifactTypes: readonly string[] | null };

/** The artifact type an attachment is selected by: its descriptor's, else its cosign tag's kind. */
export function attachmentArtifactType(a: Attachment): string | undefined {
  if (a.descriptor.artifactType !== undefined) return a.descriptor.artifactType;
  const kind = a.tag === undefined ? undefined : parseDigestTag(a.tag)?.kind;
  return kind === undefined ? undefined : COSIGN_ARTIFACT_TYPES[kind];
}

/** True when a filter keeps the attachment. */
export function attachmentSelected(a: Attachment, f: AttachmentFilter): boolean {
  if (f.artifactTypes === null) return true;
  const t = attachmentArtifactType(a);
  return t !== undefined && f.artifactTypes.includes(t);
}

/**
 * The descriptor a referrers list gives for a manifest (distribution-spec): its digest, media
 * type and size, `artifactType` (the manifest's, else its config's media type for an image
 * manifest), and the manifest's annotations.
 */
export function referrerDescriptor(bytes: Uint8Array, digest: Digest, mediaType?: string): Descriptor {
  const p = parseManifest(bytes, mediaType);
  const body = p.kind === 'index' ? p.index : p.manifest;
  // distribution-spec: an image manifest without `artifactType` is listed with its config's media type.
  const own = (body as { artifactType?: unknown }).artifactType;
  const artifactType = typeof own === 'string' ? own : p.kind === 'image' ? p.manifest.config.mediaType : undefined;
  return {
    mediaType: p.mediaType,
    digest,
    size: bytes.length,
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(body.annotations !== undefined ? { annotations: { ...body.annotations } } : {}),
  };
}

/** The subject digest a manifest names, if any. */
export function manifestSubject(bytes: Uint8Array, mediaType?: string): Digest | undefined {
  const p = parseManifest(bytes, mediaType);
  return (p.kind === 'index' ? p.index.subject : p.manifest.subject)?.digest;
}

/**
 * The referrers index (image spec index with the descriptors, as the API and the fallback tag
 * hold it), entries sorted by digest so equal sets give equal bytes.
 */
export function referrersIndex(descriptors: readonly Descriptor[]): Buffer {
  const seen = new Map<string, Descriptor>();
  for (const d of descriptors) if (!seen.has(d.digest)) seen.set(d.digest, d);
  const manifests = [...seen.values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
}

/**
 * The descriptors of a referrers index (an API page or a fallback tag's index), each checked:
 * a sha256 digest, a manifest media type, a size. `where` names the source in errors.
 */
export function parseReferrersIndex(bytes: Uint8Array, where: string): Descriptor[] {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new FerryError('REFERRERS_INVALID', `${where}: the referrers list is not JSON`);
  }
  const manifests = (json as { manifests?: unknown } | null)?.manifests;
  if (typeof json !== 'object' || json === null || !Array.isArray(manifests)) {
    throw new FerryError('REFERRERS_INVALID', `${where}: the referrers list is not an image index (no manifests array)`);
  }
  return manifests.map((d: unknown, i) => {
    const o = d as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || !isDigest(o['digest']) || typeof o['mediaType'] !== 'string' || !Number.isSafeInteger(o['size']) || (o['size'] as number) < 0) {
      throw new FerryError('REFERRERS_INVALID', `${where}: manifests[${i}] is not a descriptor with a sha256 digest, media type and size`);
    }
    const ann = o['annotations'];
    if (ann !== undefined && (typeof ann !== 'object' || ann === null || Object.values(ann).some((v) => typeof v !== 'string'))) {
      throw new FerryError('REFERRERS_INVALID', `${where}: manifests[${i}].annotations is not a map of strings`);
    }
    if (o['artifactType'] !== undefined && typeof o['artifactType'] !== 'string') {
      throw new FerryError('REFERRERS_INVALID', `${where}: manifests[${i}].artifactType is not a string`);
    }
    return {
      mediaType: o['mediaType'],
      digest: o['digest'],
      size: o['size'] as number,
      ...(o['artifactType'] !== undefined ? { artifactType: o['artifactType'] as string } : {}),
      ...(ann !== undefined ? { annotations: { ...(ann as Record<string, string>) } } : {}),
    };
  });
}
