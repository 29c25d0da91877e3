/**
 * OCI image layout metadata for a bundle: the `oci-layout` marker and `index.json` with one
 * descriptor per tag. index.json is written one descriptor per line with a fixed key order, so
 * import.sh can read it with sed (the same contract as ferry-bundle.json).
 */
import { FerryError } from '../errors/index.js';
import { isDigest, isManifestMediaType, MediaType, type Closure, type Digest } from '../oci/index.js';
import { MANIFEST_FILE, type BundleImage } from './format.js';

/** Annotation holding the image's name in an OCI layout (skopeo's `oci:DIR:NAME`). */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** Annotation containerd's importer reads for the image name. */
export const ANNOTATION_CONTAINERD_NAME = 'io.containerd.image.name';
/** Ferry's annotation: the intranet repository the image is pushed to. */
export const ANNOTATION_TARGET = 'io.ferry.target';
/** Ferry's annotation: the platforms kept, comma-separated, when the image was filtered. */
export const ANNOTATION_PLATFORMS = 'io.ferry.platforms';

/** One tag to list in index.json. */
export interface LayoutImage {
  /** Full upstream reference `registry/repo:tag`; the ref.name annotation (see layoutRefNames). */
  readonly reference: string;
  /** Intranet repository path. */
  readonly target: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** Platforms kept, or null for all. */
  readonly platforms: readonly string[] | null;
}

/** The bytes of the `oci-layout` file. */
export function ociLayoutFile(): Buffer {
  return Buffer.from('{"imageLayoutVersion":"1.0.0"}', 'utf8');
}

/**
 * The name of each image in index.json (`org.opencontainers.image.ref.name`): the full upstream
 * reference, unless several images of the bundle share it (one repository split into image
 * entries by platform, tags or target). Layout readers take the first descriptor of a name
 * (skopeo's `oci:DIR:NAME` does, silently), so each of those is named by where it goes,
 * `<target>:<tag>`, which is unique in a bundle.
 */
export function layoutRefNames(images: readonly Pick<LayoutImage, 'reference' | 'target'>[]): string[] {
  const count = new Map<string, number>();
  for (const im of images) count.set(im.reference, (count.get(im.reference) ?? 0) + 1);
  return images.map((im) => ((count.get(im.reference) ?? 0) > 1 ? `${im.target}:${referenceTag(im.reference)}` : im.reference));
}

/** The tag of a `registry/repo:tag` reference. */
export function referenceTag(reference: string): string {
  return reference.slice(reference.lastIndexOf(':') + 1);
}

/**
 * The annotations of an image's index.json descriptor, in fixed (sorted) key order (a bundle's
 * index.json bytes are signed and parsed by import.sh): its name for layout readers (skopeo,
 * containerd), its intranet target and, when filtered, its platforms. `ferry import --oci-dir`
 * writes the same.
 */
export function layoutAnnotations(im: Pick<LayoutImage, 'target' | 'platforms'>, name: string): Record<string, string> {
  const annotations: Record<string, string> = { [ANNOTATION_CONTAINERD_NAME]: name };
  if (im.platforms !== null) annotations[ANNOTATION_PLATFORMS] = [...im.platforms].sort().join(',');
  annotations[ANNOTATION_TARGET] = im.target;
  annotations[ANNOTATION_REF_NAME] = name;
  return annotations;
}

/**
 * Builds index.json: one descriptor per image, sorted by reference then target so the bytes
 * depend only on the set of images; names as layoutRefNames gives them.
 */
export function buildIndexJson(images: readonly LayoutImage[]): Buffer {
  const sorted = [...images].sort(compareLayoutImages);
  const names = layoutRefNames(sorted);
  const lines = sorted.map((im, i) => indexJsonLine(im, names[i]!, i));
  return Buffer.from(`${indexJsonHead(lines.length)}${lines.join(',\n')}${indexJsonTail(lines.length)}`, 'utf8');
}

/** index.json's order of images: by reference, then target. */
export function compareLayoutImages(a: Pick<LayoutImage, 'reference' | 'target'>, b: Pick<LayoutImage, 'reference' | 'target'>): number {
  return cmp(a.reference, b.reference) || cmp(a.target, b.target);
}

/** The text of index.json before its first descriptor line (given how many there are). */
export function indexJsonHead(count: number): string {
  return `{\n  "schemaVersion": 2,\n  "mediaType": ${JSON.stringify(MediaType.OciIndex)},\n  "manifests": ${count === 0 ? '[]' : '[\n'}`;
}

/** The text of index.json after its last descriptor line. */
export function indexJsonTail(count: number): string {
  return `${count === 0 ? '' : '\n  ]'}\n}\n`;
}

/**
 * The line of index.json for image `i` (in index.json's order) named `name`, indented, without
 * the comma that separates lines: `indexJsonHead`, the lines joined by `,\n`, `indexJsonTail`
 * make the file, so a writer can stream a long list.
 */
export function indexJsonLine(im: LayoutImage, name: string, i: number): string {
  if (!isDigest(im.digest)) throw new FerryError('DIGEST_INVALID', `index.json image ${i} (${im.reference}): bad digest "${String(im.digest)}"`);
  if (!isManifestMediaType(im.mediaType)) {
    throw new FerryError('UNSUPPORTED_MEDIA_TYPE', `index.json image ${im.reference}: "${im.mediaType}" is not a manifest media type`, { reference: im.reference });
  }
  if (!Number.isSafeInteger(im.size) || im.size < 0) throw new FerryError('USAGE', `index.json image ${im.reference}: bad size ${im.size}`);
  const annotations = layoutAnnotations(im, name);
  for (const v of Object.values(annotations)) {
    if (/["\\\s]/.test(v)) throw new FerryError('REFERENCE_INVALID', `index.json image ${im.reference}: "${v}" contains quotes, backslashes or spaces`);
  }
  return `    ${JSON.stringify({ mediaType: im.mediaType, digest: im.digest, size: im.size, annotations })}`;
}

/**
 * Checks the filtered index an image carries (`images[at].filtered`) against the graph's closure
 * of the image (read from what the bundle carries): it must be exactly the filtered index the
 * graph makes of the original, the bytes `ferry import` would make itself. Throws BUNDLE_INVALID
 * naming the image.
 */
export function checkFilteredImage(im: BundleImage, at: number, c: Closure): void {
  if (im.filtered === undefined) return;
  const bad = (why: string): FerryError =>
    new FerryError('BUNDLE_INVALID', `${MANIFEST_FILE}: images[${at}].filtered (${im.target}:${im.tag}) ${why}`, { file: MANIFEST_FILE, digest: im.filtered });
  const top = c.manifests[c.manifests.length - 1];
  if (top === undefined || top.digest !== im.digest) throw bad(`is set but the index ${im.digest} is not carried`);
  if (top.parsed.kind !== 'index') throw bad(`is set but ${im.digest} is not an index`);
  if (c.filtered === undefined) throw bad(`is ${im.filtered}, but platforms ${String(im.platforms?.join(','))} keep every child of ${im.digest}: nothing is filtered`);
  if (c.filtered.digest !== im.filtered) {
    throw bad(`is ${im.filtered}, but the index ${im.digest} with only ${String(im.platforms?.join(','))} kept is ${c.filtered.digest}`);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
