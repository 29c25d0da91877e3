/**
 * Full verification of a bundle without importing it: parts, signatures, every file's size and
 * sha256, index.json (exactly what Ferry writes for the signed images[]), the OCI layout's
 * internal references, and every check `ferry import` runs on the Go module files
 * (BundleModuleChecks: the module zip rules, .info, .mod and zip agreeing, the h1 hashes of the
 * signed module list), that each carried filtered index is exactly what `ferry import` would
 * make of its original, and that the image plan import.sh follows is the image graph's own.
 * index.json and the plan are spooled and read a line at a time, closures worked out once per
 * distinct image: memory grows with the distinct images, not the tags.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError, errorMessage } from '../errors/index.js';
import {
  ALL_ATTACHMENTS,
  closure,
  digestHex,
  MAX_MANIFEST_BYTES,
  type Closure,
  type Digest,
  type ManifestReader,
} from '../oci/index.js';
import { imageSelectionKey, INDEX_FILE, MANIFEST_FILE, OCI_LAYOUT_FILE, PLAN_FILE, type BundleManifest } from './format.js';
import { checkImagePlan, MAX_PLAN_BYTES } from './plan.js';
import type { TrustedKey } from './keys.js';
import { checkFilteredImage, checkIndexJson, indexJsonBound } from './layout.js';
import { bundleAttachments } from './media.js';
import { BundleModuleChecks, moduleFilePath } from './module-check.js';
import { openBundle, PART_SHA256_OP, readFileChunks, type OpenedBundle } from './reader.js';

/** Options for verifyBundle. */
export interface VerifyBundleOptions {
  /** Public keys trusted to sign bundles. */
  readonly trust: readonly TrustedKey[];
  /** Which bundle, when the path is a directory holding several. */
  readonly name?: string;
  readonly signal?: AbortSignal;
  /** Called after each verified file. */
  readonly onProgress?: (p: { readonly path: string; readonly files: number; readonly bytes: number }) => void;
}

/** A successful verification. */
export interface VerifyBundleResult {
  readonly ok: true;
  readonly manifest: BundleManifest;
  /** Name of the trusted key that signed the bundle. */
  readonly signer: string;
  /** Number of files checked (excluding ferry-bundle.json and its signature). */
  readonly files: number;
  /** Content bytes checked. */
  readonly bytes: number;
  /** Foreign (non-distributable) layers the manifests name and the bundle does not carry, by design. */
  readonly foreignLayers: readonly string[];
}

function bad(file: string, why: string): FerryError {
  return new FerryError('BUNDLE_INVALID', `${file}: ${why}`, { file });
}

async function drain(stream: Readable): Promise<void> {
  await pipeline(stream, new Writable({ write: (_c, _e, cb) => cb() }));
}

async function readSmall(stream: Readable, cap: number, file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > cap) throw bad(file, `is larger than ${cap} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Verifies everything that can be checked without a registry. Resolves with a summary, or
 * throws a FerryError naming the first file that failed and why.
 */
export async function verifyBundle(path: string, opts: VerifyBundleOptions): Promise<VerifyBundleResult> {
  const { signal } = opts;
  const base = { trust: opts.trust, ...(opts.name !== undefined ? { name: opts.name } : {}), ...(signal ? { signal } : {}) };
  let bundle: OpenedBundle;
  try {
    bundle = await openBundle(path, base);
  } catch (err) {
    if (err instanceof FerryError && err.details.op === PART_SHA256_OP) throw await findCulprit(path, base, err);
    throw err;
  }
  const m = bundle.manifest;
  const filesByPath = new Map(m.files.map((f) => [f.path, f]));
  const moduleChecks = new BundleModuleChecks(m);
  const requires = new Set<string>(m.requires);
  const work = await mkdtemp(join(tmpdir(), 'ferry-verify-'));
  const spooled = new Map<string, string>(); // manifest digest → temp file
  const foreign = new Set<string>();
  let layoutSeen = false;
  // index.json is checked a line at a time as it streams; what the check finds is thrown after
  // the pass, where a failure of any other entry comes first. The plan is spooled (verified as
  // written) and checked once the manifests it follows are read.
  let indexSeen = false;
  let indexError: unknown;
  let planFile: string | undefined;
  let files = 0;
  let bytes = 0;
  try {
    for await (const e of bundle.entries(signal ? { signal } : {})) {
      if (e.path === OCI_LAYOUT_FILE) {
        const buf = await readSmall(e.stream, 4096, e.path);
        let version: unknown;
        try {
          version = (JSON.parse(buf.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
        } catch {
          throw bad(e.path, 'is not JSON');
        }
        if (version !== '1.0.0') throw bad(e.path, `imageLayoutVersion is ${JSON.stringify(version)}, expected "1.0.0"`);
        layoutSeen = true;
      } else if (e.path === INDEX_FILE) {
        const cap = indexJsonBound(m.images);
        if (e.size > cap) throw bad(e.path, `is ${e.size} bytes, more than the ${cap} bytes ${INDEX_FILE} takes for the ${m.images.length} images of ${MANIFEST_FILE}`);
        indexSeen = true;
        indexError = await checkIndexStreaming(m.images, e.stream, (d) => (filesByPath.get(blobPath(d))?.mediaType !== undefined ? filesByPath.get(blobPath(d))?.size : undefined));
      } else if (e.path === PLAN_FILE) {
        if (e.size > MAX_PLAN_BYTES) throw bad(e.path, `is larger than ${MAX_PLAN_BYTES} bytes`);
        planFile = join(work, PLAN_FILE);
        await pipeline(e.stream, createWriteStream(planFile));
      } else if (e.path.startsWith('blobs/') && e.mediaType !== undefined) {
        if (e.size > MAX_MANIFEST_BYTES) throw bad(e.path, `is a manifest of ${e.size} bytes, more than ${MAX_MANIFEST_BYTES}`);
        const tmp = join(work, e.sha256);
        await pipeline(e.stream, createWriteStream(tmp));
        spooled.set(`sha256:${e.sha256}`, tmp);
      } else if (moduleFilePath(e.path)) {
        // Spooled, verified as it is written (the reader fails the stream on a wrong sha256), then checked.
        const tmp = join(work, `module-${files}`);
        try {
          await pipeline(e.stream, createWriteStream(tmp));
          await moduleChecks.check(e.path, { file: tmp }, signal);
        } finally {
          await rm(tmp, { force: true });
        }
      } else {
        await drain(e.stream);
      }
      files++;
      bytes += e.size;
      opts.onProgress?.({ path: e.path, files, bytes });
    }

    moduleChecks.finish();
    if (m.images.length > 0 || indexSeen) {
      if (!layoutSeen) throw bad(OCI_LAYOUT_FILE, 'is missing but the bundle carries images');
      if (!indexSeen) throw bad(INDEX_FILE, 'is missing but the bundle carries images');
      if (indexError !== undefined) throw indexError;
      const read = await checkLayout(m, spooled, filesByPath, requires, foreign);
      // The plan import.sh follows is the graph's own (a bundle from a Ferry that wrote none has none).
      const plan = planFile;
      if (plan !== undefined) await checkImagePlan(m.images, read, () => readFileChunks(plan, signal), m.attachments);
    }
    return { ok: true, manifest: m, signer: bundle.signer ?? '', files, bytes, foreignLayers: [...foreign].sort() };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Checks index.json (checkIndexJson) as its entry streams and reads the entry to its end whatever
 * the check finds, so its bytes are verified as any entry's. Resolves with what the check threw
 * (undefined when it passed); an error of the entry's stream (a wrong sha256, a damaged tar) is
 * thrown at once. `rootSize` answers from the signed file list: once the pass ends, every
 * manifest it lists has been read and verified.
 */
async function checkIndexStreaming(images: BundleManifest['images'], stream: Readable, rootSize: (digest: Digest) => number | undefined): Promise<unknown> {
  let streamError: unknown;
  const it = stream.iterator({ destroyOnReturn: false });
  async function* chunks(): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      let r: IteratorResult<unknown>;
      try {
        r = await it.next();
      } catch (err) {
        streamError = err;
        throw err;
      }
      if (r.done) return;
      yield r.value as Buffer;
    }
  }
  let found: unknown;
  try {
    await checkIndexJson(images, chunks(), rootSize);
  } catch (err) {
    if (streamError !== undefined) throw streamError;
    found = err;
  }
  // The rest after a failed check, through the same iterator (a stream error is thrown from here).
  while (!(await it.next()).done);
  return found;
}

/**
 * A part's sha256 is wrong: read the entries without the part check to name the damaged file
 * (a flipped byte), keeping the part error when the tar itself falls apart (reordered parts).
 */
async function findCulprit(path: string, base: Parameters<typeof openBundle>[1], partErr: FerryError): Promise<FerryError> {
  try {
    const b = await openBundle(path, { ...base, verifyParts: false });
    for await (const e of b.entries()) await drain(e.stream);
  } catch (err) {
    if (err instanceof FerryError && (err.code === 'DIGEST_MISMATCH' || err.code === 'SIGNATURE_INVALID')) {
      return new FerryError(err.code, `${err.message} (and ${partErr.message})`, { ...err.details, cause: partErr });
    }
  }
  return partErr;
}

/** A blob's path in the bundle's OCI layout. */
function blobPath(d: string): string {
  return `blobs/sha256/${digestHex(d as Digest)}`;
}

/** Distinct images (digest, media type, platforms) whose checked closure is kept for the images that share it. */
const CLOSURE_MEMO = 1024;

/**
 * Checks each image's closure (the graph, read from what the bundle carries; what it requires
 * stands in for itself) against the file list: every manifest it reaches carried with its media
 * type or required, every blob carried or required (a foreign layer may be neither, by design),
 * media types agreeing; and each carried filtered index is the graph's. The closure depends only
 * on the image's digest, media type and platforms, so tags of one image share one closure,
 * worked out and checked once (the memo is bounded); each image's filtered index is checked on
 * its own terms. index.json was checked against images[] before (checkIndexJson).
 */
async function checkLayout(
  m: BundleManifest,
  spooled: Map<string, string>,
  files: Map<string, { mediaType?: string; size: number }>,
  requires: Set<string>,
  foreign: Set<string>,
): Promise<ManifestReader> {
  const bytesOf = new Map<string, Buffer>();
  const read: ManifestReader = async (d) => {
    const tmp = spooled.get(d.digest);
    if (!tmp) {
      if (files.has(blobPath(d.digest))) throw bad(blobPath(d.digest), `is the manifest ${d.digest} an image reaches, but has no mediaType in the file list`);
      return requires.has(d.digest) ? 'external' : undefined;
    }
    let bytes = bytesOf.get(d.digest);
    if (!bytes) bytesOf.set(d.digest, (bytes = await readFile(tmp)));
    return { bytes, mediaType: files.get(blobPath(d.digest))?.mediaType ?? d.mediaType };
  };
  const memo = new Map<string, Closure>();

  for (const [k, im] of m.images.entries()) {
    const key = imageSelectionKey(im);
    let c = memo.get(key);
    if (c === undefined) {
      const where = `${MANIFEST_FILE} images[${k}] (${im.reference})`;
      const size = files.get(blobPath(im.digest))?.size ?? 0;
      try {
        c = await closure({ digest: im.digest, mediaType: im.mediaType, size }, read, { platforms: im.platforms, attachments: ALL_ATTACHMENTS }, async (s) => bundleAttachments(m, s.digest));
      } catch (err) {
        if (err instanceof FerryError && err.code !== 'BUNDLE_INVALID' && typeof err.details.digest === 'string') throw bad(blobPath(err.details.digest), errorMessage(err));
        throw err;
      }
      checkClosure(c, where, files, requires, foreign);
      if (memo.size >= CLOSURE_MEMO) memo.clear();
      memo.set(key, c);
    }
    // The carried filtered index is the one the graph makes of the original (both are carried: format rules).
    if (im.filtered === undefined) continue;
    if (!spooled.has(im.digest)) throw bad(blobPath(im.digest), `is the index of filtered image ${im.target}:${im.tag} but is not carried`);
    checkFilteredImage(im, k, c);
  }
  return read;
}

/** Checks one image's closure against the file list (see checkLayout); `where` names the image. */
function checkClosure(c: Closure, where: string, files: Map<string, { mediaType?: string }>, requires: Set<string>, foreign: Set<string>): void {
  const lost = c.missing[0];
  if (lost) throw bad(where, `reaches manifest ${lost.digest}, which is neither carried nor listed in requires`);
  for (const g of c.manifests) {
    const path = blobPath(g.digest);
    const listedType = files.get(path)?.mediaType;
    if (listedType !== g.descriptor.mediaType) throw bad(path, `file list says media type ${String(listedType)}, the descriptor that reaches it says ${g.descriptor.mediaType}`);
    if (g.mediaType !== g.descriptor.mediaType) throw bad(path, `declares media type ${g.mediaType}, the descriptor that reaches it says ${g.descriptor.mediaType}`);
  }
  for (const b of [...c.blobs, ...c.foreign]) {
    const file = files.get(blobPath(b.digest));
    if (file) {
      if (file.mediaType !== undefined) throw bad(blobPath(b.digest), `is listed as manifest type ${file.mediaType}, but ${where} references it as ${b.mediaType}`);
      continue;
    }
    if (requires.has(b.digest)) continue;
    // A foreign layer is absent by design: clients fetch it from its urls.
    if (c.foreign.includes(b)) {
      foreign.add(b.digest);
      continue;
    }
    throw bad(where, `references blob ${b.digest} (${b.mediaType}), which is neither carried nor listed in requires`);
  }
}
