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
import { imageSelectionKey, MANIFEST_FILE, PLAN_FILE, type BundleAttachment, type BundleImage } from './format.js';

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

/** Distinct images whose plan steps are kept for the images that share them (tags of one image). */
const PLAN_MEMO = 1024;

/**
 * The plan's lines (without their `\n`), header first, each image's closure read through `read`:
 * the bundle's carried manifests, with what it requires standing in for itself ('external'). A
 * manifest neither carried nor required is BUNDLE_INVALID (ferry verify names the image first).
 * Images with one root and one selection (tags of one image) share one closure, worked out once:
 * the lines come one image at a time, so memory grows with the distinct images, not the tags.
 */
export async function* imagePlanLines(images: readonly BundleImage[], read: ManifestReader, attachments: readonly BundleAttachment[] = []): AsyncGenerator<string, void, undefined> {
  yield PLAN_HEADER;
  const follow = attachments.length > 0;
  const memo = new Map<string, string[]>();
  for (const [k, im] of images.entries()) {
    const key = imageSelectionKey(im);
    let steps = memo.get(key);
    if (!steps) {
      steps = await imagePlanSteps(im, k, read, attachments, follow);
      if (memo.size >= PLAN_MEMO) memo.clear();
      memo.set(key, steps);
    }
    for (const l of steps) yield `${k} ${l}`;
    yield `${k} tag ${im.tag}`;
  }
}

/** The plan of `images` as bytes (imagePlanLines, each line ended by `\n`). */
export async function buildImagePlan(images: readonly BundleImage[], read: ManifestReader, attachments: readonly BundleAttachment[] = []): Promise<Buffer> {
  const lines: string[] = [];
  for await (const l of imagePlanLines(images, read, attachments)) lines.push(l);
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

/** A carried plan: its bytes, or a way to read them again in chunks (a spooled file). */
export type CarriedPlan = Buffer | (() => AsyncIterable<Buffer>);

/** Longest carried line shown in an error. */
const SHOWN = 400;

/**
 * Compares the carried plan with the graph's lines, byte for byte, one line at a time (no more of
 * the carried plan held than the line it must equal). Resolves undefined when they are equal,
 * else the first line that differs: its number, the carried line (cut short) and the graph's.
 */
async function firstDifference(want: AsyncIterable<string>, carried: CarriedPlan): Promise<{ n: number; got: string | undefined; want: string | undefined } | undefined> {
  const chunks: AsyncIterable<Buffer> = Buffer.isBuffer(carried)
    ? (async function* one() {
        yield carried;
      })()
    : carried();
  const it = chunks[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let ended = false;
  /** Reads until `buf` holds a `\n` within its first `max + 1` bytes, or more than that, or the carried plan ended. */
  const fill = async (max: number): Promise<void> => {
    while (!ended && buf.indexOf(0x0a) < 0 && buf.length <= max) {
      // A copy of the rest (less than a line) first: the chunk's buffer may be read into again (readFileChunks).
      const rest = buf.length === 0 ? buf : Buffer.from(buf);
      const r = await it.next();
      if (r.done) ended = true;
      buf = r.done || r.value.length === 0 ? rest : rest.length === 0 ? r.value : Buffer.concat([rest, r.value]);
    }
  };
  const shown = (): string | undefined => {
    if (buf.length === 0) return undefined;
    const nl = buf.indexOf(0x0a);
    return buf.subarray(0, Math.min(nl < 0 ? buf.length : nl, SHOWN)).toString('utf8');
  };
  let n = 0;
  try {
    for await (const line of want) {
      n++;
      const w = Buffer.from(line, 'utf8');
      await fill(w.length);
      const nl = buf.indexOf(0x0a);
      if (nl !== w.length || !buf.subarray(0, nl).equals(w)) return { n, got: shown(), want: line };
      buf = buf.subarray(nl + 1);
    }
    // Past the graph's last line the carried plan must end too.
    await fill(0);
    return buf.length === 0 ? undefined : { n: n + 1, got: shown(), want: undefined };
  } finally {
    await it.return?.();
  }
}

/**
 * Checks a carried plan (its bytes, or a way to read them: a spooled file, read line by line)
 * against the one the graph makes of what the bundle carries; BUNDLE_INVALID names the first
 * line that differs.
 */
export async function checkImagePlan(images: readonly BundleImage[], read: ManifestReader, carried: CarriedPlan, attachments: readonly BundleAttachment[] = []): Promise<void> {
  const diff = await firstDifference(imagePlanLines(images, read, attachments), carried);
  if (diff === undefined) return;
  // A Ferry from before attachment steps wrote the plan without them (its import.sh pushes no attachments).
  if (attachments.length > 0 && (await firstDifference(imagePlanLines(images, read), carried)) === undefined) return;
  throw invalid(`line ${diff.n} is ${JSON.stringify(diff.got ?? '(the end)')}, but the image graph of what the bundle carries gives ${JSON.stringify(diff.want ?? '(the end)')}`);
}
