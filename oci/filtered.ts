/**
 * The filtered index: what stands for an index whose selection left children out, where a
 * registry refuses the original with them absent. Which children are kept is the graph's rule
 * (graph.ts); this file only writes the bytes, the same whichever path makes them (sync, export,
 * verify, both importers, serve), so the filtered index has one digest.
 */
import { sha256Digest, type Digest } from './digest.js';

/** Annotation on a filtered index: the digest of the upstream index it was made from. */
export const ANNOTATION_FILTERED_FROM = 'io.ferry.filtered-from';

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
