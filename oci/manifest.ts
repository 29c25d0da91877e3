/** Media types, descriptors, manifests and indexes (OCI image-spec and Docker v2.2). */
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { isDigest, type Digest } from './digest.js';

/** Media types Ferry understands. */
export const MediaType = {
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayout: 'application/vnd.oci.image.layer.v1.tar+gzip',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/**
 * Layer media types a registry need not hold (Windows base layers, older MCR tags): clients
 * fetch them from the descriptor's `urls` (Docker "foreign" layers, OCI "non-distributable").
 */
export const NON_DISTRIBUTABLE_MEDIA_TYPES: readonly string[] = [
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
];

/** True for a foreign (Docker) or non-distributable (OCI) layer media type. */
export function isNonDistributableMediaType(mt: string): boolean {
  return NON_DISTRIBUTABLE_MEDIA_TYPES.includes(mt);
}

/**
 * A foreign layer: a non-distributable media type with `urls` to fetch it from. Registries accept
 * a manifest without its blob and clients skip it (skopeo, regclient); so does Ferry by default,
 * and a store, bundle or import may lack it by design.
 */
export function isForeignLayer(d: Pick<Descriptor, 'mediaType' | 'urls'>): boolean {
  return isNonDistributableMediaType(d.mediaType) && Array.isArray(d.urls) && d.urls.length > 0;
}

/** Manifest media types that are indexes (lists of manifests). */
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];
/** Manifest media types that are single-image manifests. */
export const IMAGE_MEDIA_TYPES: readonly string[] = [MediaType.OciManifest, MediaType.DockerManifest];
/** Every manifest media type, in Accept order. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [...INDEX_MEDIA_TYPES, ...IMAGE_MEDIA_TYPES];

/**
 * Docker image manifest schema 1 (signed and unsigned): deprecated since 2017 and never carried.
 * Its digest is over the payload without the signatures, so its bytes never match the digest the
 * registry reports: it must be recognised before any digest check blames the registry.
 */
export const SCHEMA1_MEDIA_TYPES: readonly string[] = [
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
];

/** True when the media type, or (when given) the body's `schemaVersion: 1`, says Docker schema 1. */
export function isSchema1(mediaType: string | undefined, bytes?: Uint8Array): boolean {
  if (mediaType !== undefined && SCHEMA1_MEDIA_TYPES.includes(mediaType)) return true;
  if (bytes === undefined) return false;
  try {
    const o = JSON.parse(Buffer.from(bytes).toString('utf8')) as { schemaVersion?: unknown } | null;
    return typeof o === 'object' && o !== null && o.schemaVersion === 1;
  } catch {
    return false;
  }
}

/** The MANIFEST_UNSUPPORTED error for a schema 1 manifest; `where` names it (registry/repo:tag). */
export function schema1Error(where: string, details: ErrorDetails = {}): FerryError {
  return new FerryError(
    'MANIFEST_UNSUPPORTED',
    `${where}: a Docker schema 1 manifest; Ferry does not support schema 1 (deprecated since 2017, and its digest cannot be ` +
      'checked against its bytes). The registry must serve a schema 2 or OCI manifest for it: re-push the image with a current ' +
      'client (e.g. skopeo copy --format v2s2, or docker pull and docker push)',
    { ...details, temporary: false },
  );
}

/** Largest manifest Ferry will buffer (the distribution spec suggests registries accept at least 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** True when the media type is an index or Docker manifest list. */
export function isIndexMediaType(mt: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mt);
}

/** True when the media type is any manifest Ferry understands. */
export function isManifestMediaType(mt: string): boolean {
  return MANIFEST_MEDIA_TYPES.includes(mt);
}

/** An image platform. */
export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
  readonly 'os.version'?: string;
  readonly 'os.features'?: readonly string[];
}

/** A content descriptor. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly artifactType?: string;
  readonly urls?: readonly string[];
}

/** An image manifest (OCI or Docker v2 schema 2). */
export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An image index (OCI) or manifest list (Docker). */
export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A parsed manifest, tagged by kind. */
export type ParsedManifest =
  | { readonly kind: 'index'; readonly mediaType: string; readonly index: ImageIndex }
  | { readonly kind: 'image'; readonly mediaType: string; readonly manifest: ImageManifest };

function checkDescriptor(d: unknown, where: string): Descriptor {
  if (typeof d !== 'object' || d === null) throw invalid(`${where} is not an object`);
  const o = d as Record<string, unknown>;
  if (typeof o['mediaType'] !== 'string') throw invalid(`${where}.mediaType is missing`);
  if (!isDigest(o['digest'])) throw invalid(`${where}.digest "${String(o['digest'])}" is not a sha256 digest`);
  if (typeof o['size'] !== 'number' || !Number.isSafeInteger(o['size']) || o['size'] < 0) {
    throw invalid(`${where}.size is not a non-negative integer`);
  }
  if (o['urls'] !== undefined && (!Array.isArray(o['urls']) || !o['urls'].every((u) => typeof u === 'string'))) {
    throw invalid(`${where}.urls is not a list of strings`);
  }
  return o as unknown as Descriptor;
}

function invalid(msg: string): FerryError {
  return new FerryError('MANIFEST_INVALID', `manifest invalid: ${msg}`);
}

/**
 * Parses manifest bytes. `mediaType` is the Content-Type the registry sent (or the
 * descriptor's); the body's own `mediaType` wins when present, and an index is
 * recognised by its `manifests` array when neither says.
 */
export function parseManifest(bytes: Uint8Array, mediaType?: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new FerryError('MANIFEST_INVALID', `manifest is not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('not a JSON object');
  const o = json as Record<string, unknown>;
  if (o['schemaVersion'] === 1) throw schema1Error('manifest');
  if (o['schemaVersion'] !== 2) throw invalid(`schemaVersion ${String(o['schemaVersion'])} is not supported (need 2)`);
  const bodyType = typeof o['mediaType'] === 'string' ? (o['mediaType'] as string) : undefined;
  let mt = bodyType ?? mediaType ?? '';
  if (!isManifestMediaType(mt)) {
    if (Array.isArray(o['manifests'])) mt = MediaType.OciIndex;
    else if (o['config'] !== undefined) mt = MediaType.OciManifest;
    else throw invalid(`unsupported media type "${mt}"`);
  }
  if (isIndexMediaType(mt)) {
    if (!Array.isArray(o['manifests'])) throw invalid('index has no manifests array');
    (o['manifests'] as unknown[]).forEach((d, i) => checkDescriptor(d, `manifests[${i}]`));
    if (o['subject'] !== undefined) checkDescriptor(o['subject'], 'subject');
    return { kind: 'index', mediaType: mt, index: o as unknown as ImageIndex };
  }
  checkDescriptor(o['config'], 'config');
  if (!Array.isArray(o['layers'])) throw invalid('manifest has no layers array');
  (o['layers'] as unknown[]).forEach((d, i) => checkDescriptor(d, `layers[${i}]`));
  if (o['subject'] !== undefined) checkDescriptor(o['subject'], 'subject');
  return { kind: 'image', mediaType: mt, manifest: o as unknown as ImageManifest };
}

/** The descriptors a parsed manifest references directly: children of an index, or config + layers. */
export function referencedDescriptors(m: ParsedManifest): Descriptor[] {
  if (m.kind === 'index') return [...m.index.manifests];
  return [m.manifest.config, ...m.manifest.layers];
}

/** `os/arch[/variant]` of a platform. */
export function platformString(p: Platform | undefined): string {
  if (!p) return 'unknown';
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * True when `p` matches the wanted `os/arch[/variant]`; a wanted platform without a variant
 * matches any variant (linux/arm64 matches linux/arm64/v8).
 */
export function platformMatches(p: Platform | undefined, wanted: string): boolean {
  if (!p) return false;
  const [os, arch, variant] = wanted.split('/');
  if (p.os !== os || p.architecture !== arch) return false;
  return variant === undefined || p.variant === variant;
}
