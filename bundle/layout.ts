/**
 * OCI image layout metadata for a bundle: the `oci-layout` marker and `index.json` with one
 * descriptor per tag. index.json is written one descriptor per line with a fixed key order, so
 * import.sh can read it with sed (the same contract as ferry-bundle.json).
 */
import { errorMessage, FerryError } from '../errors/index.js';
import { isDigest, isManifestMediaType, MediaType, type Closure, type Digest } from '../oci/index.js';
import { INDEX_FILE, MANIFEST_FILE, type BundleImage } from './format.js';

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

/**
 * layoutRefNames of `images`, given their positions sorted by reference (`order`): the images
 * that share a reference are neighbours there, so no count of every reference is made.
 */
function sortedRefNames(images: readonly Pick<LayoutImage, 'reference' | 'target'>[], order: Uint32Array): string[] {
  const names = new Array<string>(images.length);
  for (let i = 0; i < order.length; i++) {
    const im = images[order[i]!]!;
    const shared = (i > 0 && images[order[i - 1]!]!.reference === im.reference) || (i + 1 < order.length && images[order[i + 1]!]!.reference === im.reference);
    names[order[i]!] = shared ? `${im.target}:${referenceTag(im.reference)}` : im.reference;
  }
  return names;
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
 * The most bytes index.json can hold for `images` as Ferry writes it: each image's line with the
 * longer of its two possible names and the largest size a descriptor can state, its separator,
 * and the head and tail. A carried index.json larger than this is not Ferry's; the bound grows
 * with the signed images[], not with a fixed cap.
 */
export function indexJsonBound(images: readonly BundleImage[]): number {
  let total = Buffer.byteLength(indexJsonHead(images.length)) + Buffer.byteLength(indexJsonTail(images.length));
  for (const im of images) total += indexJsonLineBound(im) + 2;
  return total;
}

/** The longest index.json line (without its comma) image `im` can have. */
function indexJsonLineBound(im: BundleImage): number {
  const shared = `${im.target}:${referenceTag(im.reference)}`;
  const name = Buffer.byteLength(shared) > Buffer.byteLength(im.reference) ? shared : im.reference;
  const line = JSON.stringify({ mediaType: im.mediaType, digest: im.digest, size: Number.MAX_SAFE_INTEGER, annotations: layoutAnnotations(im, name) });
  return 4 + Buffer.byteLength(line);
}

/** Longest carried line shown in an error. */
const SHOWN = 300;

function shown(line: string): string {
  return JSON.stringify(line.length > SHOWN ? `${line.slice(0, SHOWN)}…` : line);
}

/**
 * The lines of a file read in chunks, without their `\n`, numbered from 1; a line longer than
 * `max` bytes, or text after the last `\n`, is BUNDLE_INVALID naming `file` (so no more than one
 * bounded line is held). No chunk is kept past the next one's read.
 */
async function* boundedLines(chunks: AsyncIterable<Buffer>, max: number, file: string): AsyncGenerator<{ n: number; text: string }, void, undefined> {
  let buf: Buffer = Buffer.alloc(0);
  let n = 0;
  for await (const chunk of chunks) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let start = 0;
    for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a, start)) {
      if (nl - start > max) break;
      yield { n: ++n, text: buf.subarray(start, nl).toString('utf8') };
      start = nl + 1;
    }
    // A copy of the rest (less than a line): the chunk's buffer may be read into again (readFileChunks).
    buf = Buffer.from(buf.subarray(start));
    if (buf.length > max) throw new FerryError('BUNDLE_INVALID', `${file}: line ${n + 1} is longer than ${max} bytes, more than any line of the ${file} Ferry writes for these images (one descriptor a line)`, { file });
  }
  if (buf.length > 0) throw new FerryError('BUNDLE_INVALID', `${file}: does not end with a newline after line ${n}`, { file });
}

/**
 * Checks a carried index.json, read in chunks (a spooled file), against the signed `images`:
 * the bytes must be the layout Ferry writes (buildIndexJson's head and tail, one descriptor a
 * line), and each descriptor exactly the line Ferry writes for the image its target and tag name
 * (its ref.name, digest, media type, platforms), with `rootSize` (the carried manifest's size,
 * when the bundle carries it) as its size; every image listed once. The descriptors may come in
 * any order. One line is held at a time, and a bit per image: memory does not grow with the size
 * of the file. BUNDLE_INVALID names index.json and the entry (its position and name).
 */
export async function checkIndexJson(images: readonly BundleImage[], chunks: AsyncIterable<Buffer>, rootSize: (digest: Digest) => number | undefined): Promise<void> {
  const bad = (why: string): FerryError => new FerryError('BUNDLE_INVALID', `${INDEX_FILE}: ${why}`, { file: INDEX_FILE });
  const count = images.length;
  const head = indexJsonHead(count);
  const tail = indexJsonTail(count);
  // No images: the whole file is fixed. Else the head's lines, the descriptors, the tail's lines.
  const headLines = count === 0 ? `${head}${tail}`.slice(0, -1).split('\n') : head.slice(0, -1).split('\n');
  const tailLines = count === 0 ? [] : tail.slice(1, -1).split('\n');
  // In the order Ferry writes the descriptors (compareLayoutImages), image positions: descriptor i
  // is looked up there first, so a map of every target and tag is made only for another order.
  const order = Uint32Array.from(images.keys()).sort((a, b) => compareLayoutImages(images[a]!, images[b]!));
  const names = sortedRefNames(images, order);
  let byTarget: Map<string, number> | undefined;
  const find = (target: string, tag: string, i: number): number | undefined => {
    const k = order[i];
    if (k !== undefined && images[k]!.target === target && images[k]!.tag === tag) return k;
    byTarget ??= new Map(images.map((im, at) => [`${im.target}:${im.tag}`, at]));
    return byTarget.get(`${target}:${tag}`);
  };
  let max = 0;
  for (const im of images) max = Math.max(max, indexJsonLineBound(im) + 1);
  for (const l of [...headLines, ...tailLines]) max = Math.max(max, Buffer.byteLength(l));
  const listed = new Uint8Array(count);
  let i = 0; // descriptors seen
  let state: 'head' | 'list' | 'tail' | 'end' = 'head';
  let expect = 0; // the head or tail line expected next
  let last = 0;
  for await (const { n, text } of boundedLines(chunks, max, INDEX_FILE)) {
    last = n;
    if (state === 'end') throw bad(`line ${n} is ${shown(text)}, but the index ended at line ${n - 1}`);
    if (state === 'head' || state === 'tail') {
      const want = state === 'head' ? headLines[expect]! : tailLines[expect]!;
      if (text !== want) {
        const why = state === 'tail' && expect === 0 ? ` after manifests[${i - 1}], which has no comma after it` : ' there (one descriptor a line)';
        throw bad(`line ${n} is ${shown(text)}, but Ferry writes ${shown(want)}${why}`);
      }
      expect++;
      if (state === 'head' && expect === headLines.length) [state, expect] = [count === 0 ? 'end' : 'list', 0];
      else if (state === 'tail' && expect === tailLines.length) state = 'end';
      continue;
    }
    if (text === tailLines[0]) {
      // The list closes early: after a comma, or with no descriptor at all.
      if (i === 0) break;
      throw bad(`line ${n} closes the list, but manifests[${i - 1}] before it has a comma after it`);
    }
    // A descriptor line: `    {...}` then `,` unless it is the last.
    const more = text.endsWith(',');
    checkIndexJsonLine(text.slice(0, more ? -1 : undefined), i, images, names, find, listed, rootSize, bad);
    i++;
    if (!more) [state, expect] = ['tail', 0];
  }
  if (state === 'list' && i === 0) {
    const im = images[0]!;
    throw bad(`lists no image, but ${MANIFEST_FILE} has ${count}: no entry for images[0] ${im.reference} → ${im.target}:${im.tag}`);
  }
  if (state !== 'end') throw bad(`ends early, after line ${last} (${i} descriptors; ${MANIFEST_FILE} lists ${count} images)`);
  const lost = listed.indexOf(0);
  if (lost >= 0) {
    const im = images[lost]!;
    throw bad(`has no entry for images[${lost}] ${im.reference} → ${im.target}:${im.tag} (${names[lost]!})`);
  }
}

/** One descriptor line of index.json (without its comma): see checkIndexJson. */
function checkIndexJsonLine(
  text: string,
  i: number,
  images: readonly BundleImage[],
  names: readonly string[],
  find: (target: string, tag: string, i: number) => number | undefined,
  listed: Uint8Array,
  rootSize: (digest: Digest) => number | undefined,
  bad: (why: string) => FerryError,
): void {
  const where = `manifests[${i}]`;
  if (!text.startsWith('    {')) throw bad(`${where} is ${shown(text)}, not a descriptor on a line of its own as Ferry writes them`);
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch (err) {
    throw bad(`${where} is not JSON (${errorMessage(err)}): ${shown(text)} (Ferry writes one descriptor a line)`);
  }
  const desc = (typeof d === 'object' && d !== null && !Array.isArray(d) ? d : {}) as { digest?: unknown; mediaType?: unknown; size?: unknown; annotations?: unknown };
  const ann = (typeof desc.annotations === 'object' && desc.annotations !== null ? desc.annotations : {}) as Record<string, unknown>;
  const ref = ann[ANNOTATION_REF_NAME];
  const target = ann[ANNOTATION_TARGET];
  if (typeof ref !== 'string' || typeof target !== 'string') throw bad(`${where} lacks the ${ANNOTATION_REF_NAME} or ${ANNOTATION_TARGET} annotation: ${shown(text)}`);
  const k = find(target, referenceTag(ref), i);
  if (k === undefined) throw bad(`${where} (${ref} → ${target}) is not listed in images`);
  const im = images[k]!;
  const entry = `${where} (${ref})`;
  if (listed[k] === 1) throw bad(`${entry} lists ${im.target}:${im.tag} a second time`);
  listed[k] = 1;
  const want = `images[${k}] (${im.target}:${im.tag})`;
  if (ref !== names[k]) throw bad(`${entry} is named ${ref}, but ${want} is named ${names[k]!} in an OCI layout`);
  if (desc.digest !== im.digest) throw bad(`${entry} has digest ${String(desc.digest)}, but ${want} is ${im.digest}`);
  if (desc.mediaType !== im.mediaType) throw bad(`${entry} has media type ${String(desc.mediaType)}, but ${want} is ${im.mediaType}`);
  const carried = rootSize(im.digest);
  if (carried !== undefined && desc.size !== carried) throw bad(`${entry} has size ${String(desc.size)}, but the manifest ${im.digest} the bundle carries is ${carried} bytes`);
  let line: string;
  try {
    line = indexJsonLine({ reference: im.reference, target: im.target, digest: im.digest, mediaType: im.mediaType, size: desc.size as number, platforms: im.platforms }, names[k]!, i);
  } catch (err) {
    throw bad(`${entry}: ${errorMessage(err)}`);
  }
  if (text !== line) throw bad(`${entry} is ${shown(text.trimStart())}, but Ferry writes ${shown(line.trimStart())} for ${want}`);
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
