/**
 * The image plan: the graph's closure of each image, written by `ferry export` into the signed
 * bundle as lines import.sh follows (sh cannot run the graph), and checked by `ferry verify` and
 * `ferry import` against the graph read from what the bundle carries. import.sh pushes exactly
 * what ferry import pushes because both come from one walker.
 *
 * Format (public contract; one step a line, fields separated by one space, `\n` ends each line):
 *
 *     ferry image plan 1
 *     IMAGE blob DIGEST                  a config or layer
 *     IMAGE foreign DIGEST               a foreign layer: pushed when carried, else left out by design
 *     IMAGE manifest DIGEST MEDIATYPE    a manifest below the root (children before parents)
 *     IMAGE root DIGEST MEDIATYPE FILTERED|-
 *     IMAGE digest-tag TAG DIGEST MEDIATYPE     an attachment's cosign digest tag (sha256-<hex>.sig|.att|.sbom)
 *     IMAGE referrer SUBJECT DIGEST DESCRIPTOR  an OCI referrer of SUBJECT, DESCRIPTOR its referrers-list
 *                                               entry as one line of JSON (the rest of the line)
 *     IMAGE tag TAG
 *
 * IMAGE is the image's position in `images[]` (from 0); the images come in that order, each
 * ending with its root and its tag. Each manifest's blobs come just before it. The closure is the
 * one the bundle itself supports: a manifest it only requires (an earlier bundle carried it) is
 * a `manifest` line with nothing below it, since its content is already at the target.
 * Attachments (the signed manifest's `attachments[]`) are manifests of the closure like any other,
 * before the root; their `digest-tag` and `referrer` lines come after the root and before the
 * image's tag, so they are recorded after their subjects are in and before any tag moves.
 */
import { FerryError } from '../errors/index.js';
import { ALL_ATTACHMENTS, closure, referrerDescriptor, type Attachment, type ManifestReader } from '../oci/index.js';
import { MANIFEST_FILE, PLAN_FILE, type BundleAttachment, type BundleImage } from './format.js';

/** The plan's first line: its format and version. */
export const PLAN_HEADER = 'ferry image plan 1';
/** Largest plan accepted (about 80 bytes a line). */
export const MAX_PLAN_BYTES = 64 * 1024 * 1024;

function invalid(why: string): FerryError {
  return new FerryError('BUNDLE_INVALID', `${PLAN_FILE}: ${why}`, { file: PLAN_FILE });
}

/** The attachments of `subject` a signed `attachments[]` lists, as the image graph takes them. */
export function attachmentsOf(list: readonly BundleAttachment[], subject: string): Attachment[] {
  return list
    .filter((a) => a.subject === subject)
    .map((a) => ({
      subject: a.subject,
      descriptor: { mediaType: a.mediaType, digest: a.digest, size: a.size, ...(a.artifactType !== undefined ? { artifactType: a.artifactType } : {}) },
      ...(a.tag !== undefined ? { tag: a.tag } : {}),
    }));
}

/**
 * The plan of `images`, each image's closure read through `read`: the bundle's carried manifests,
 * with what it requires standing in for itself ('external'). A manifest neither carried nor
 * required is BUNDLE_INVALID (ferry verify names the image first).
 */
export async function buildImagePlan(images: readonly BundleImage[], read: ManifestReader, attachments: readonly BundleAttachment[] = []): Promise<Buffer> {
  const lines = [PLAN_HEADER];
  const follow = attachments.length > 0;
  for (const [k, im] of images.entries()) {
    for (const step of await imagePlanSteps(im, k, read, attachments, follow)) lines.push(`${k} ${step}`);
    lines.push(`${k} tag ${im.tag}`);
  }
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

/**
 * One image's lines of the plan before its `tag` line, without the `IMAGE ` that begins each:
 * they depend only on the image's digest, media type and platforms (and what the bundle
 * carries), so a writer streaming a long plan can reuse them for every tag of one image. `k`
 * names the image in errors; `follow` is whether the bundle has any attachments at all.
 */
export async function imagePlanSteps(im: BundleImage, k: number, read: ManifestReader, attachments: readonly BundleAttachment[], follow: boolean): Promise<string[]> {
  const find = async (s: { digest: string }): Promise<Attachment[]> => attachmentsOf(attachments, s.digest);
  const steps: string[] = [];
  const c = await closure({ digest: im.digest, mediaType: im.mediaType, size: 0 }, read, { platforms: im.platforms, attachments: follow ? ALL_ATTACHMENTS : 'none' }, find);
  const lost = c.missing[0];
  if (lost) throw new FerryError('BUNDLE_INVALID', `${MANIFEST_FILE}: images[${k}] (${im.target}:${im.tag}) reaches manifest ${lost.digest}, which is neither carried nor listed in requires`, { file: MANIFEST_FILE, digest: lost.digest });
  const seen = new Set<string>();
  const once = (line: string): void => {
    if (seen.has(line)) return;
    seen.add(line);
    steps.push(line);
  };
  for (const d of c.external) if (d.digest !== im.digest) once(`manifest ${d.digest} ${d.mediaType}`);
  for (const m of c.manifests) {
    for (const b of m.blobs) once(`blob ${b.digest}`);
    for (const f of m.foreign) once(`foreign ${f.digest}`);
    if (m.digest !== im.digest) once(`manifest ${m.digest} ${m.mediaType}`);
  }
  steps.push(`root ${im.digest} ${im.mediaType} ${c.filtered?.digest ?? '-'}`);
  for (const a of c.attachments) {
    const d = a.descriptor;
    if (a.tag !== undefined) {
      once(`digest-tag ${a.tag} ${d.digest} ${d.mediaType}`);
      continue;
    }
    // The entry ferry import lists it with: from the carried bytes (annotations too), else what the signed list says.
    const m = c.manifests.find((x) => x.digest === d.digest);
    once(`referrer ${a.subject} ${d.digest} ${JSON.stringify(m ? referrerDescriptor(m.bytes, m.digest, m.mediaType) : d)}`);
  }
  return steps;
}

/** Checks a carried plan against the one the graph makes of what the bundle carries; BUNDLE_INVALID names the first line that differs. */
export async function checkImagePlan(images: readonly BundleImage[], read: ManifestReader, carried: Buffer, attachments: readonly BundleAttachment[] = []): Promise<void> {
  const want = await buildImagePlan(images, read, attachments);
  if (want.equals(carried)) return;
  // A Ferry from before attachment steps wrote the plan without them (its import.sh pushes no attachments).
  if (attachments.length > 0 && (await buildImagePlan(images, read)).equals(carried)) return;
  const a = want.toString('utf8').split('\n');
  const b = carried.toString('utf8').split('\n');
  const at = a.findIndex((l, i) => l !== b[i]);
  const n = at < 0 ? a.length : at;
  throw invalid(`line ${n + 1} is ${JSON.stringify(b[n] ?? '(the end)')}, but the image graph of what the bundle carries gives ${JSON.stringify(a[n] ?? '(the end)')}`);
}
