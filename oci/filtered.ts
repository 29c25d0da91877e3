/**
 * What an image entry's `platforms` select from an index, and the filtered index that stands
 * for it where a registry refuses the original with children left out. One rule for sync,
 * export, verify and both importers, so the filtered index has the same bytes (and digest)
 * whichever of them made it.
 */
import { sha256Digest, type Digest } from './digest.js';
import { platformMatches, type Descriptor, type ImageIndex } from './manifest.js';

/** Annotation on a filtered index: the digest of the upstream index it was made from. */
export const ANNOTATION_FILTERED_FROM = 'io.ferry.filtered-from';

/** The children of an index that `platforms` keep (all of them when platforms is null), in index order. */
export function keptChildren(index: ImageIndex, platforms: readonly string[] | null): Descriptor[] {
  return index.manifests.filter((d) => platforms === null || platforms.some((p) => platformMatches(d.platform, p)));
}

/**
 * The index with only the kept children and an annotation naming the original digest. Its bytes
 * depend only on the original and the kept set, so an import that resumes, `ferry export` and
 * `ferry import` all produce the same digest.
 */
export function filteredIndex(original: Uint8Array, kept: readonly string[], originalDigest: string): { bytes: Buffer; digest: Digest } {
  const json = JSON.parse(Buffer.from(original).toString('utf8')) as { manifests: Array<{ digest: string }>; annotations?: Record<string, string> };
  const keep = new Set(kept);
  json.manifests = json.manifests.filter((m) => keep.has(m.digest));
  json.annotations = { ...(json.annotations ?? {}), [ANNOTATION_FILTERED_FROM]: originalDigest };
  const bytes = Buffer.from(JSON.stringify(json), 'utf8');
  return { bytes, digest: sha256Digest(bytes) };
}

/**
 * The filtered index an image entry needs: for an index of which `platforms` leave some children
 * out, filteredIndex of the kept ones; undefined when nothing is left out (or for an image
 * manifest), since the original then stands on its own.
 */
export function filteredIndexFor(
  original: Uint8Array,
  index: ImageIndex,
  platforms: readonly string[] | null,
  originalDigest: string,
): { bytes: Buffer; digest: Digest } | undefined {
  const kept = keptChildren(index, platforms);
  if (kept.length === index.manifests.length) return undefined;
  return filteredIndex(original, kept.map((d) => d.digest), originalDigest);
}
