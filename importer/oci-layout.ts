/**
 * An OCI image layout directory (opencontainers/image-spec image-layout.md) as an image source
 * and sink: `oci-layout`, `index.json` (one descriptor per name, annotated
 * `org.opencontainers.image.ref.name`) and `blobs/sha256/<hex>`, the form skopeo (`oci:DIR:NAME`),
 * podman and, as a tar, containerd's `ctr image import` and the k3s/RKE2 air-gap image folder read.
 *
 * Writes follow the store's rules: a blob goes temp → hash while written → verify digest and
 * size → fsync → rename, so a partial or wrong blob is never at its final path; a manifest's bytes
 * are checked against its digest before the same temp → rename. A manifest is written only once
 * everything it names is in (oci/copy.ts orders it so), which keeps the invariant this medium
 * relies on: a manifest in the layout is complete. Tags are staged by putTag and land together
 * in one atomic replacement of index.json (commitTags), after every blob and manifest, so a
 * reader never sees a name whose content is not all there. A cosign digest tag among the
 * attachments (`sha256-<hex>.sig|.att|.sbom`) gets a name too, the image's name with that tag for
 * its tag (`REPO:sha256-<hex>.sig`), staged with the image whose closure holds its subject.
 *
 * Ferry's own files in the directory (the import ledger, the writer's lock, temp files) start with
 * `.ferry-`: readers look only at the three layout names, and `tar --exclude='.ferry-*'` leaves them
 * out of a tar of the layout. One writer at a time holds `.ferry-lock`.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { INDEX_FILE, OCI_LAYOUT_FILE, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ociLayoutFile } from '../bundle/index.js';
import { errorMessage, FerryError, isFerryError } from '../errors/index.js';
import {
  closure,
  closureDigests,
  digestHex,
  isDigest,
  MAX_MANIFEST_BYTES,
  MediaType,
  parseManifest,
  SELECT_ALL,
  sha256Digest,
  VerifyingStream,
  type Attachment,
  type BlobOpener,
  type CopiedImage,
  type Descriptor,
  type Digest,
  type FetchedManifest,
  type ImageSink,
  type ImageSource,
  type ManifestPut,
  type ManifestReader,
  type MediaCallOptions,
  type PutBlobResult,
} from '../oci/index.js';
import { pidAlive, processStartTime } from '../store/index.js';

/** Names Ferry keeps in a layout directory beside the layout (ledger, lock, temp files) start with this. */
export const FERRY_PRIVATE_PREFIX = '.ferry-';
/** The writer's lock file in a layout directory. */
export const LAYOUT_LOCK_FILE = '.ferry-lock';
/** Temp files of a layout's writer: renamed into place from here (the same filesystem). */
const TMP_DIR = '.ferry-tmp';
/** The imageLayoutVersion Ferry writes (and the major version it reads). */
const LAYOUT_VERSION = '1.0.0';
/** Cap on index.json: about 100 000 names. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

/** What a directory named as a layout holds: nothing yet, an empty directory, or a layout. */
export type LayoutState = 'absent' | 'empty' | 'layout';

function invalid(dir: string, why: string, cause?: unknown): FerryError {
  return new FerryError('LAYOUT_INVALID', `${dir} is not an OCI image layout Ferry can add to: ${why}`, { op: 'oci-dir', file: dir, ...(cause !== undefined ? { cause } : {}) });
}

function ioError(err: unknown, what: string, file: string, digest?: Digest): unknown {
  if (isFerryError(err) || !(err instanceof Error) || typeof (err as NodeJS.ErrnoException).code !== 'string') return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ABORT_ERR') return err;
  return new FerryError('LAYOUT_IO', `cannot ${what} ${file}: ${err.message}`, { op: 'oci-dir', file, ...(digest ? { digest } : {}), cause: err });
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw ioError(err, 'stat', file);
  }
}

/**
 * Looks at a directory named as an OCI image layout before anything is written there: absent,
 * empty (Ferry's own `.ferry-*` files aside), or a layout Ferry can add to. Anything else is
 * LAYOUT_INVALID naming the directory and why: a file, a directory holding other things and no
 * `oci-layout`, an `imageLayoutVersion` other than 1.x, an `index.json` that is not an image index.
 */
export async function inspectLayoutDir(dir: string): Promise<LayoutState> {
  const root = resolve(dir);
  const st = await statOrUndefined(root);
  if (!st) return 'absent';
  if (!st.isDirectory()) throw invalid(root, 'it is not a directory');
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    throw ioError(err, 'list', root);
  }
  const own = names.filter((n) => !n.startsWith(FERRY_PRIVATE_PREFIX));
  if (own.length === 0) return 'empty';
  if (!own.includes(OCI_LAYOUT_FILE)) {
    const shown = own.sort().slice(0, 5);
    throw invalid(root, `it holds ${shown.join(', ')}${own.length > shown.length ? ', …' : ''} and no ${OCI_LAYOUT_FILE} file (name an empty or new directory, or an existing layout)`);
  }
  await readLayoutVersion(root);
  const blobs = await statOrUndefined(join(root, 'blobs'));
  if (blobs && !blobs.isDirectory()) throw invalid(root, 'blobs is not a directory');
  await readIndexFile(root);
  return 'layout';
}

async function readLayoutVersion(root: string): Promise<string> {
  const file = join(root, OCI_LAYOUT_FILE);
  let text: string;
  try {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw ioError(err, 'read', file);
  }
  let version: unknown;
  try {
    version = (JSON.parse(text) as Record<string, unknown> | null)?.['imageLayoutVersion'];
  } catch (err) {
    throw invalid(root, `${OCI_LAYOUT_FILE} is not JSON (${errorMessage(err)})`, err);
  }
  if (typeof version !== 'string') throw invalid(root, `${OCI_LAYOUT_FILE} has no imageLayoutVersion`);
  if (!/^1\.\d+\.\d+$/.test(version)) throw invalid(root, `${OCI_LAYOUT_FILE} says imageLayoutVersion ${JSON.stringify(version)}; Ferry writes ${LAYOUT_VERSION}`);
  return version;
}

/** index.json as read: its descriptors, and its other top-level fields (kept when it is rewritten). */
interface IndexFile {
  readonly manifests: readonly Descriptor[];
  readonly rest: Readonly<Record<string, unknown>>;
  /** The bytes read; undefined when there is no index.json yet. */
  readonly bytes: Buffer | undefined;
}

async function readIndexFile(root: string): Promise<IndexFile> {
  const file = join(root, INDEX_FILE);
  const st = await statOrUndefined(file);
  // A layout being created (oci-layout written, index.json not yet): an empty index.
  if (!st) return { manifests: [], rest: {}, bytes: undefined };
  if (!st.isFile()) throw invalid(root, `${INDEX_FILE} is not a file`);
  if (st.size > MAX_INDEX_BYTES) throw invalid(root, `${INDEX_FILE} is larger than ${MAX_INDEX_BYTES} bytes`);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw ioError(err, 'read', file);
  }
  let parsed;
  try {
    parsed = parseManifest(bytes, MediaType.OciIndex);
  } catch (err) {
    throw invalid(root, `${INDEX_FILE}: ${errorMessage(err)}`, err);
  }
  if (parsed.kind !== 'index') throw invalid(root, `${INDEX_FILE} is not an image index`);
  const { manifests, schemaVersion: _s, mediaType: _m, ...rest } = parsed.index as unknown as Record<string, unknown> & { manifests: Descriptor[] };
  return { manifests, rest, bytes };
}

/** The index.json bytes Ferry writes: one descriptor a line, so a diff shows which names moved. */
function indexBytes(manifests: readonly Descriptor[], rest: Readonly<Record<string, unknown>>): Buffer {
  const head = [`  "schemaVersion": 2`, `  "mediaType": ${JSON.stringify(MediaType.OciIndex)}`, ...Object.entries(rest).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`)];
  const list = manifests.length === 0 ? '[]' : `[\n${manifests.map((d) => `    ${JSON.stringify(d)}`).join(',\n')}\n  ]`;
  return Buffer.from(`{\n${head.join(',\n')},\n  "manifests": ${list}\n}\n`, 'utf8');
}

/** Same descriptor (digest, media type, size, annotations, platform), whatever the key order. */
function sameDescriptor(a: Descriptor, b: Descriptor): boolean {
  const canon = (d: Descriptor): string =>
    JSON.stringify([d.mediaType, d.digest, d.size, Object.entries(d.annotations ?? {}).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)), d.platform ?? null, d.urls ?? null, d.artifactType ?? null]);
  return canon(a) === canon(b);
}

/** How a layout names an image: `org.opencontainers.image.ref.name` and the descriptor's annotations (it included). */
export interface LayoutTag {
  readonly name: string;
  readonly annotations: Readonly<Record<string, string>>;
}

/** What commitTags did to one name. */
export interface LayoutTagChange {
  readonly name: string;
  readonly digest: Digest;
  /** The digest the name had before; undefined for a new name. */
  readonly previous: Digest | undefined;
  /** False when index.json already had this very entry. */
  readonly changed: boolean;
}

/** Options for OciLayout. */
export interface OciLayoutOptions {
  /** Called for each blob or manifest this object writes (not for those it finds there). */
  readonly onWrite?: (d: Digest, kind: 'blob' | 'manifest', size: number) => void;
}

/** The lock file's content. */
interface LockHolder {
  readonly pid: number;
  readonly startTime?: string;
  readonly host: string;
  readonly token: string;
  readonly since: string;
}

/** Tokens of the layout locks this process holds now. */
const heldTokens = new Set<string>();

function holderLive(h: LockHolder): boolean {
  if (typeof h.pid !== 'number' || typeof h.token !== 'string') return false;
  // A holder on another host (a layout on shared storage) is taken as live: its pid means nothing here.
  if (h.host !== hostname()) return true;
  if (h.pid === process.pid) return heldTokens.has(h.token);
  if (!pidAlive(h.pid)) return false;
  if (h.startTime === undefined) return true;
  const now = processStartTime(h.pid);
  return now === undefined || now === h.startTime;
}

/**
 * An OCI image layout directory. Constructed, it reads (a source: manifests by digest or name,
 * verified blob streams). `openForWrite` makes it a sink too: it creates the layout when the
 * directory is absent or empty, takes the writer's lock and clears temp files a killed writer
 * left; `close` releases the lock.
 */
export class OciLayout implements ImageSource, ImageSink<LayoutTag> {
  readonly dir: string;
  private readonly onWrite: OciLayoutOptions['onWrite'];
  private readonly pending = new Map<string, Descriptor>();
  /** Attachments named by a digest tag, staged with the tag of an image that reaches their subject. */
  private readonly digestTagged: Attachment[] = [];
  private token: string | undefined;
  private tmpCount = 0;

  constructor(dir: string, opts: OciLayoutOptions = {}) {
    this.dir = resolve(dir);
    this.onWrite = opts.onWrite;
  }

  /** Opens a layout to write to: checked (inspectLayoutDir), created when new, locked, temp files of killed writers removed. */
  static async openForWrite(dir: string, opts: OciLayoutOptions = {}): Promise<OciLayout> {
    const layout = new OciLayout(dir, opts);
    const state = await inspectLayoutDir(layout.dir);
    try {
      await mkdir(layout.dir, { recursive: true });
    } catch (err) {
      throw ioError(err, 'create', layout.dir);
    }
    await layout.lock();
    try {
      if (state !== 'layout') await layout.create();
      else await layout.ensureDirs();
      // Under the lock every temp file is a killed writer's.
      await rm(join(layout.dir, TMP_DIR), { recursive: true, force: true });
      await mkdir(join(layout.dir, TMP_DIR), { recursive: true });
    } catch (err) {
      await layout.close();
      throw ioError(err, 'prepare', layout.dir);
    }
    return layout;
  }

  /** Releases the writer's lock (if held) and removes this writer's temp directory. */
  async close(): Promise<void> {
    const token = this.token;
    if (token === undefined) return;
    this.token = undefined;
    heldTokens.delete(token);
    await rm(join(this.dir, TMP_DIR), { recursive: true, force: true }).catch(() => undefined);
    const file = join(this.dir, LAYOUT_LOCK_FILE);
    const held = await this.readLock();
    if (held?.token === token) await unlink(file).catch(() => undefined);
  }

  private async readLock(): Promise<LockHolder | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, LAYOUT_LOCK_FILE), 'utf8')) as LockHolder;
    } catch {
      return undefined; // absent, or unreadable: holds nothing
    }
  }

  private busy(h: LockHolder): FerryError {
    return new FerryError(
      'LAYOUT_BUSY',
      `${this.dir}: another ferry import is writing to this OCI layout (process ${h.pid} on ${h.host}, since ${h.since}); try again when it has finished ` +
        `(a lock left by a process that no longer runs is taken over; remove ${LAYOUT_LOCK_FILE} only if you are sure no import runs)`,
      { op: 'oci-dir', file: join(this.dir, LAYOUT_LOCK_FILE), temporary: true },
    );
  }

  /**
   * Takes the writer's lock: created exclusively, or taken over from a holder that no longer
   * runs (recognised by pid and process start time), then read back to be sure this writer won.
   */
  private async lock(): Promise<void> {
    const file = join(this.dir, LAYOUT_LOCK_FILE);
    const startTime = processStartTime(process.pid);
    const me: LockHolder = { pid: process.pid, ...(startTime !== undefined ? { startTime } : {}), host: hostname(), token: randomUUID(), since: new Date().toISOString() };
    const text = JSON.stringify(me);
    try {
      await writeFile(file, text, { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'create', file);
      const held = await this.readLock();
      if (held && holderLive(held)) throw this.busy(held);
      const tmp = `${file}.${process.pid}.${me.token}`;
      try {
        await writeFile(tmp, text);
        await rename(tmp, file);
      } catch (e) {
        await rm(tmp, { force: true });
        throw ioError(e, 'take over the lock', file);
      }
      const now = await this.readLock();
      if (now?.token !== me.token) throw this.busy(now ?? me);
    }
    this.token = me.token;
    heldTokens.add(me.token);
  }

  private async create(): Promise<void> {
    await this.ensureDirs();
    await this.writeAtomic(join(this.dir, OCI_LAYOUT_FILE), ociLayoutFile());
    if (!(await statOrUndefined(join(this.dir, INDEX_FILE)))) await this.writeAtomic(join(this.dir, INDEX_FILE), indexBytes([], {}));
  }

  private async ensureDirs(): Promise<void> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
  }

  private assertWriter(op: string): void {
    if (this.token === undefined) throw new FerryError('INTERNAL', `OCI layout ${this.dir}: ${op} before openForWrite (or after close)`);
  }

  /** The final path of a blob. */
  blobPath(d: Digest): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(d));
  }

  private tempName(): string {
    return join(this.dir, TMP_DIR, `${process.pid}.${this.token ?? 'r'}.${(this.tmpCount++).toString(36)}`);
  }

  /** Bytes to a file through a temp file: write, fsync, rename, fsync the directory. */
  private async writeAtomic(file: string, bytes: Uint8Array): Promise<void> {
    const tmp = this.tempName();
    try {
      await mkdir(join(this.dir, TMP_DIR), { recursive: true });
      const fh = await open(tmp, 'wx');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      await this.syncDir(this.dir);
    } catch (err) {
      throw ioError(err, 'write', file);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async syncDir(dir: string): Promise<void> {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  // ---- source ----

  /** A manifest by digest, or by the name index.json gives it; its exact bytes (capped). */
  async manifest(ref: string): Promise<FetchedManifest | undefined> {
    let digest: Digest;
    let hint: string | undefined;
    if (isDigest(ref)) digest = ref;
    else {
      const entry = (await readIndexFile(this.dir)).manifests.find((d) => d.annotations?.[ANNOTATION_REF_NAME] === ref);
      if (!entry) return undefined;
      digest = entry.digest;
      hint = entry.mediaType;
    }
    const file = this.blobPath(digest);
    const st = await statOrUndefined(file);
    if (!st?.isFile()) return undefined;
    if (st.size > MAX_MANIFEST_BYTES) {
      throw new FerryError('BODY_TOO_LARGE', `${file}: manifest ${digest} is larger than ${MAX_MANIFEST_BYTES} bytes`, { op: 'oci-dir', file, digest });
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw ioError(err, 'read', file, digest);
    }
    let mediaType = hint ?? '';
    try {
      const body = JSON.parse(bytes.toString('utf8')) as Record<string, unknown> | null;
      if (typeof body?.['mediaType'] === 'string') mediaType = body['mediaType'];
    } catch {
      // not JSON: the graph reports it, naming the digest
    }
    return { digest, mediaType, size: bytes.length, bytes };
  }

  /** A blob's bytes, verified against the descriptor as they stream (the stream fails at its end otherwise). */
  async blob(d: Descriptor, opts?: MediaCallOptions): Promise<Readable> {
    const file = this.blobPath(d.digest);
    const verifier = new VerifyingStream({ digest: d.digest, size: d.size, details: { op: 'oci-dir read', file } });
    const src = createReadStream(file, opts?.signal ? { signal: opts.signal } : {});
    src.on('error', (err) => verifier.destroy(ioError(err, 'read', file, d.digest) as Error));
    return src.pipe(verifier);
  }

  /** True when the blob's file is there with the descriptor's size (a file of another size is damaged, and replaced when put). */
  async hasBlob(d: Descriptor): Promise<boolean> {
    const st = await statOrUndefined(this.blobPath(d.digest));
    return st !== undefined && st.isFile() && st.size === d.size;
  }

  /** True when the blob's file is there, whatever its size (for digests known without one: a bundle's requires). */
  async hasDigest(d: Digest): Promise<boolean> {
    return (await statOrUndefined(this.blobPath(d)))?.isFile() === true;
  }

  /**
   * True when the manifest is there with its exact bytes (read and hashed: manifests are small, and
   * a damaged one is then written again); complete, since a manifest is written only after
   * everything it names.
   */
  async hasManifest(d: Descriptor): Promise<boolean> {
    return this.holdsBytes(d.digest, d.size);
  }

  private async holdsBytes(d: Digest, size: number): Promise<boolean> {
    if (size > MAX_MANIFEST_BYTES || !(await this.hasBlob({ digest: d, size, mediaType: '' }))) return false;
    try {
      return sha256Digest(await readFile(this.blobPath(d))) === d;
    } catch (err) {
      throw ioError(err, 'read', this.blobPath(d), d);
    }
  }

  // ---- sink ----

  /** Streams a blob into place: temp → hash → verify → fsync → rename; never a partial file at the final path. */
  async putBlob(d: Descriptor, openBody: BlobOpener, opts?: MediaCallOptions): Promise<PutBlobResult> {
    this.assertWriter('putBlob');
    if (await this.hasBlob(d)) return 'exists';
    const file = this.blobPath(d.digest);
    const tmp = this.tempName();
    try {
      const verifier = new VerifyingStream({ digest: d.digest, size: d.size, details: { op: 'oci-dir write', file } });
      // `flush`: fsync before the stream closes its file, so the rename below is of durable bytes.
      await pipeline(await openBody(), verifier, createWriteStream(tmp, { flags: 'wx', flush: true }), opts?.signal ? { signal: opts.signal } : {});
      await rename(tmp, file);
    } catch (err) {
      throw ioError(err, 'write', file, d.digest);
    } finally {
      await rm(tmp, { force: true });
    }
    this.onWrite?.(d.digest, 'blob', d.size);
    return 'written';
  }

  /** Bytes under their digest, checked first. */
  private async putBytes(d: Digest, bytes: Uint8Array): Promise<void> {
    const got = sha256Digest(bytes);
    if (got !== d) throw new FerryError('DIGEST_MISMATCH', `manifest ${d}: the bytes to write have digest ${got}`, { op: 'oci-dir write', digest: d });
    if (await this.holdsBytes(d, bytes.length)) return;
    const file = this.blobPath(d);
    const tmp = this.tempName();
    try {
      const fh = await open(tmp, 'wx');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (err) {
      throw ioError(err, 'write', file, d);
    } finally {
      await rm(tmp, { force: true });
    }
    this.onWrite?.(d, 'manifest', bytes.length);
  }

  /**
   * Puts a manifest's exact bytes. A layout keeps only complete images (containerd and k3s import
   * every child of an index they are given), so an index whose children are not all here — a
   * selection left platforms out — goes in as its filtered index (oci/filtered.ts: the kept
   * children, annotated `io.ferry.filtered-from`), and that is the digest returned.
   */
  async putManifest(p: ManifestPut): Promise<Digest> {
    this.assertWriter('putManifest');
    const m = p.manifest;
    if (m.parsed.kind === 'index') {
      const absent: Descriptor[] = [];
      for (const c of m.parsed.index.manifests) if (!(await this.hasManifest(c))) absent.push(c);
      if (absent.length > 0) {
        if (!p.fallback) {
          throw new FerryError('MANIFEST_UNKNOWN', `${this.dir}: index ${m.digest} names ${absent.map((c) => c.digest).join(', ')}, which the layout lacks`, {
            op: 'oci-dir write',
            digest: absent[0]!.digest,
          });
        }
        await this.putBytes(p.fallback.digest, p.fallback.bytes);
        return p.fallback.digest;
      }
    }
    await this.putBytes(m.digest, m.bytes);
    return m.digest;
  }

  /** Stages a name for the image; commitTags writes the staged names into index.json together. */
  async putTag(tag: LayoutTag, image: CopiedImage): Promise<void> {
    this.assertWriter('putTag');
    let size = image.bytes?.length;
    if (size === undefined) {
      const st = await statOrUndefined(this.blobPath(image.digest));
      if (!st?.isFile()) throw new FerryError('MANIFEST_UNKNOWN', `${this.dir}: ${tag.name} would name ${image.digest}, which the layout lacks`, { op: 'oci-dir', digest: image.digest });
      size = st.size;
    }
    this.pending.set(tag.name, { mediaType: image.mediaType, digest: image.digest, size, annotations: { ...tag.annotations, [ANNOTATION_REF_NAME]: tag.name } });
    if (this.digestTagged.length === 0) return;
    const reached = new Set<string>([image.digest, image.root.digest, ...image.closure.manifests.map((m) => m.digest), ...image.closure.external.map((d) => d.digest)]);
    const repo = tag.name.slice(0, tag.name.lastIndexOf(':'));
    for (const a of this.digestTagged) {
      if (!reached.has(a.subject)) continue;
      const name = `${repo}:${a.tag!}`;
      const d = a.descriptor;
      this.pending.set(name, { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: { [ANNOTATION_CONTAINERD_NAME]: name, [ANNOTATION_REF_NAME]: name } });
    }
  }

  /** Keeps the attachments named by a cosign digest tag: putTag names them beside their image. */
  async putAttachments(list: readonly Attachment[]): Promise<void> {
    this.assertWriter('putAttachments');
    for (const a of list) if (a.tag !== undefined && !this.digestTagged.some((b) => b.tag === a.tag && b.descriptor.digest === a.descriptor.digest)) this.digestTagged.push(a);
  }

  /**
   * Writes the staged names into index.json in one atomic replacement, after making the blob
   * renames durable: each name has one descriptor (a name already there is replaced in place,
   * duplicates of it dropped), every other descriptor stays as it was, new names follow in name
   * order. Nothing is written when index.json already says all of it.
   */
  async commitTags(): Promise<LayoutTagChange[]> {
    this.assertWriter('commitTags');
    const current = await readIndexFile(this.dir);
    const changes: LayoutTagChange[] = [];
    const placed = new Set<string>();
    const out: Descriptor[] = [];
    let rewrite = current.bytes === undefined;
    for (const d of current.manifests) {
      const name = d.annotations?.[ANNOTATION_REF_NAME];
      const next = name !== undefined ? this.pending.get(name) : undefined;
      if (name === undefined || next === undefined) {
        out.push(d);
        continue;
      }
      if (placed.has(name)) {
        rewrite = true; // a duplicate of a name: one descriptor per name
        continue;
      }
      placed.add(name);
      const same = sameDescriptor(d, next);
      out.push(same ? d : next);
      if (!same) rewrite = true;
      changes.push({ name, digest: next.digest, previous: d.digest, changed: !same });
    }
    for (const name of [...this.pending.keys()].sort()) {
      if (placed.has(name)) continue;
      out.push(this.pending.get(name)!);
      changes.push({ name, digest: this.pending.get(name)!.digest, previous: undefined, changed: true });
      rewrite = true;
    }
    if (rewrite) {
      try {
        await this.syncDir(join(this.dir, 'blobs', 'sha256'));
      } catch (err) {
        throw ioError(err, 'sync', join(this.dir, 'blobs', 'sha256'));
      }
      await this.writeAtomic(join(this.dir, INDEX_FILE), indexBytes(out, current.rest));
    }
    this.pending.clear();
    return changes;
  }

  /**
   * Every digest reachable from index.json (manifests, configs, layers, as far as the layout
   * holds them); undefined when the layout cannot be read whole (then nothing may be removed).
   */
  async referenced(): Promise<Set<Digest> | undefined> {
    try {
      const read: ManifestReader = async (d) => {
        const m = await this.manifest(d.digest);
        return m && { bytes: m.bytes, mediaType: m.mediaType || d.mediaType };
      };
      const out = new Set<Digest>();
      for (const d of (await readIndexFile(this.dir)).manifests) {
        out.add(d.digest);
        for (const x of closureDigests(await closure(d, read, SELECT_ALL))) out.add(x);
      }
      return out;
    } catch {
      return undefined;
    }
  }

  /**
   * Removes those of `candidates` that nothing named in index.json reaches (what a failed import
   * wrote and nothing came to use). Returns what was removed.
   */
  async removeUnreferenced(candidates: Iterable<Digest>): Promise<{ removed: Digest[]; bytes: number }> {
    this.assertWriter('removeUnreferenced');
    const used = await this.referenced();
    const removed: Digest[] = [];
    let bytes = 0;
    if (!used) return { removed, bytes };
    for (const d of candidates) {
      if (used.has(d)) continue;
      const file = this.blobPath(d);
      const st = await statOrUndefined(file);
      if (!st?.isFile()) continue;
      await unlink(file);
      removed.push(d);
      bytes += st.size;
    }
    return { removed, bytes };
  }
}
