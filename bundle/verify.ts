/**
 * Full verification of a bundle without importing it: parts, signatures, every file's size and
 * sha256, the OCI layout's internal references, and every check `ferry import` runs on the Go
 * module files (BundleModuleChecks: the module zip rules, .info, .mod and zip agreeing, the h1
 * hashes of the signed module list), that each carried filtered index is exactly what
 * `ferry import` would make of its original, and that the image plan import.sh follows is the
 * image graph's own.
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
  MediaType,
  parseManifest,
  type Closure,
  type Descriptor,
  type Digest,
  type ManifestReader,
} from '../oci/index.js';
import { INDEX_FILE, OCI_LAYOUT_FILE, PLAN_FILE, type BundleImage, type BundleManifest } from './format.js';
import { checkImagePlan, MAX_PLAN_BYTES } from './plan.js';
import type { TrustedKey } from './keys.js';
import { ANNOTATION_REF_NAME, ANNOTATION_TARGET, checkFilteredImage, layoutRefNames, referenceTag } from './layout.js';
import { bundleAttachments } from './media.js';
import { BundleModuleChecks, moduleFilePath } from './module-check.js';
import { openBundle, PART_SHA256_OP, type OpenedBundle } from './reader.js';

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
  let indexBytes: Buffer | undefined;
  let planBytes: Buffer | undefined;
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
        indexBytes = await readSmall(e.stream, MAX_MANIFEST_BYTES, e.path);
      } else if (e.path === PLAN_FILE) {
        planBytes = await readSmall(e.stream, MAX_PLAN_BYTES, e.path);
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
    if (m.images.length > 0 || indexBytes !== undefined) {
      if (!layoutSeen) throw bad(OCI_LAYOUT_FILE, 'is missing but the bundle carries images');
      if (!indexBytes) throw bad(INDEX_FILE, 'is missing but the bundle carries images');
      const read = await checkLayout(m, indexBytes, spooled, filesByPath, requires, foreign);
      // The plan import.sh follows is the graph's own (a bundle from a Ferry that wrote none has none).
      if (planBytes !== undefined) await checkImagePlan(m.images, read, planBytes, m.attachments);
    }
    return { ok: true, manifest: m, signer: bundle.signer ?? '', files, bytes, foreignLayers: [...foreign].sort() };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
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

function annotation(d: Descriptor, key: string): string | undefined {
  return d.annotations?.[key];
}

/**
 * Checks index.json against `images`, and each image's closure (the graph, read from what the
 * bundle carries; what it requires stands in for itself) against the file list: every manifest
 * it reaches carried with its media type or required, every blob carried or required (a foreign
 * layer may be neither, by design), media types agreeing; and each carried filtered index is
 * the graph's. One index may be carried for an entry that keeps every child (all must be
 * carried or required) and one that keeps some (only those): each image is checked on its own terms.
 */
async function checkLayout(
  m: BundleManifest,
  indexBytes: Buffer,
  spooled: Map<string, string>,
  files: Map<string, { mediaType?: string }>,
  requires: Set<string>,
  foreign: Set<string>,
): Promise<ManifestReader> {
  let idx;
  try {
    idx = parseManifest(indexBytes, MediaType.OciIndex);
  } catch (err) {
    throw bad(INDEX_FILE, errorMessage(err));
  }
  if (idx.kind !== 'index') throw bad(INDEX_FILE, 'is not an image index');
  const byTarget = new Map<string, BundleImage>(m.images.map((im) => [`${im.target}:${im.tag}`, im]));
  const names = layoutRefNames(m.images);
  const nameOf = new Map<string, string>(m.images.map((im, i) => [`${im.target}:${im.tag}`, names[i]!]));
  const listed = new Set<string>();
  const closures = new Map<BundleImage, Closure>();
  const blobPath = (d: string): string => `blobs/sha256/${digestHex(d as Digest)}`;
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

  for (const [i, d] of idx.index.manifests.entries()) {
    const where = `${INDEX_FILE} manifests[${i}]`;
    const ref = annotation(d, ANNOTATION_REF_NAME);
    const target = annotation(d, ANNOTATION_TARGET);
    if (ref === undefined || target === undefined) throw bad(INDEX_FILE, `manifests[${i}] lacks the ${ANNOTATION_REF_NAME} or ${ANNOTATION_TARGET} annotation`);
    const tag = referenceTag(ref);
    const im = byTarget.get(`${target}:${tag}`);
    if (!im) throw bad(INDEX_FILE, `manifests[${i}] (${ref} → ${target}) is not listed in images`);
    const name = nameOf.get(`${target}:${tag}`);
    if (name !== ref || im.digest !== d.digest || im.mediaType !== d.mediaType) {
      throw bad(INDEX_FILE, `manifests[${i}] (${ref}) does not match images: ${ref} ${d.digest} ${d.mediaType} vs ${String(name)} ${im.digest} ${im.mediaType}`);
    }
    if (listed.has(`${target}:${tag}`)) throw bad(INDEX_FILE, `manifests[${i}] lists ${target}:${tag} a second time`);
    listed.add(`${target}:${tag}`);
    let c: Closure;
    try {
      c = await closure(d, read, { platforms: im.platforms, attachments: ALL_ATTACHMENTS }, async (s) => bundleAttachments(m, s.digest));
    } catch (err) {
      if (err instanceof FerryError && err.code !== 'BUNDLE_INVALID' && typeof err.details.digest === 'string') throw bad(blobPath(err.details.digest), errorMessage(err));
      throw err;
    }
    closures.set(im, c);
    const lost = c.missing[0];
    if (lost) throw bad(`${where} (${ref})`, `reaches manifest ${lost.digest}, which is neither carried nor listed in requires`);
    for (const g of c.manifests) {
      const path = blobPath(g.digest);
      const listedType = files.get(path)?.mediaType;
      if (listedType !== g.descriptor.mediaType) throw bad(path, `file list says media type ${String(listedType)}, the descriptor that reaches it says ${g.descriptor.mediaType}`);
      if (g.mediaType !== g.descriptor.mediaType) throw bad(path, `declares media type ${g.mediaType}, the descriptor that reaches it says ${g.descriptor.mediaType}`);
    }
    for (const b of [...c.blobs, ...c.foreign]) {
      const file = files.get(blobPath(b.digest));
      if (file) {
        if (file.mediaType !== undefined) throw bad(blobPath(b.digest), `is listed as manifest type ${file.mediaType}, but ${ref} references it as ${b.mediaType}`);
        continue;
      }
      if (requires.has(b.digest)) continue;
      // A foreign layer is absent by design: clients fetch it from its urls.
      if (c.foreign.includes(b)) {
        foreign.add(b.digest);
        continue;
      }
      throw bad(`${where} (${ref})`, `references blob ${b.digest} (${b.mediaType}), which is neither carried nor listed in requires`);
    }
  }
  for (const [i, im] of m.images.entries()) {
    if (!listed.has(`${im.target}:${im.tag}`)) throw bad(INDEX_FILE, `has no entry for image ${im.reference} → ${im.target}:${im.tag}`);
    // The carried filtered index is the one the graph makes of the original (both are carried: format rules).
    if (im.filtered === undefined) continue;
    if (!spooled.has(im.digest)) throw bad(blobPath(im.digest), `is the index of filtered image ${im.target}:${im.tag} but is not carried`);
    checkFilteredImage(im, i, closures.get(im)!);
  }
  return read;
}
