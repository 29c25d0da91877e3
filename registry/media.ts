/**
 * One repository of a registry as an image source and sink (oci/media.ts), over RegistryClient.
 * The client does the protocol (auth, retries, uploads, mounts, verification); this file only
 * says what a source and a sink mean for a repository.
 */
import type { Readable } from 'node:stream';
import { FerryError, isFerryError } from '../errors/index.js';
import {
  cosignTags,
  fallbackTag,
  isForeignLayer,
  MAX_ATTACHMENTS_PER_SUBJECT,
  type Attachment,
  type BlobOpener,
  type CopiedImage,
  type Descriptor,
  type Digest,
  type FetchedManifest,
  type ImageSink,
  type ImageSource,
  type ManifestPut,
  type MediaCallOptions,
  type PutBlobResult,
} from '../oci/index.js';
import { publishAttachments } from './attachments.js';
import type { RegistryClient } from './client.js';
import { foreignBlobGet } from './foreign.js';

function sig(opts: MediaCallOptions | undefined): { signal?: AbortSignal } {
  return opts?.signal ? { signal: opts.signal } : {};
}

/** True for the answer of a registry that has no such manifest. */
function notFound(err: unknown): boolean {
  return isFerryError(err, 'MANIFEST_UNKNOWN') || (isFerryError(err, 'NOT_FOUND') && err.details.status === 404);
}

/** Options for RegistrySource. */
export interface RegistrySourceOptions {
  /**
   * Hash blob bytes in the client too. False when the consumer verifies digest and size itself
   * (the store's writes do): hashing twice doubles the CPU per byte. @default true
   */
  readonly verifyBlobs?: boolean;
  /** User agent for foreign layers fetched from their urls. @default 'ferry/0.1' */
  readonly userAgent?: string;
  /** Called for each manifest fetched (accounting). */
  readonly onManifest?: (m: FetchedManifest) => void;
  /**
   * The repository's tag list, when the caller has it, or its digest tags (`sha256-…`) alone:
   * only they are looked up. Digest tags (cosign's, the fallback tag) not in it are not asked
   * for, so a subject without attachments costs no request on a registry without the referrers
   * API.
   */
  readonly tags?: ReadonlySet<string>;
}

/**
 * A registry repository as a source. Foreign layers are fetched from their descriptor's `urls`,
 * without the registry's credentials (registry/foreign.ts).
 */
export class RegistrySource implements ImageSource {
  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
    private readonly opts: RegistrySourceOptions = {},
  ) {}

  async manifest(ref: string, opts?: MediaCallOptions): Promise<FetchedManifest | undefined> {
    try {
      const m = await this.client.manifestGet(this.repository, ref, sig(opts));
      this.opts.onManifest?.(m);
      return m;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw err;
    }
  }

  blob(d: Descriptor, opts?: MediaCallOptions): Promise<Readable> {
    if (isForeignLayer(d)) {
      const details = { registry: this.client.host, repository: this.repository };
      return foreignBlobGet(d, { details, userAgent: this.opts.userAgent ?? 'ferry/0.1', ...sig(opts) });
    }
    return this.client.blobGet(this.repository, d.digest, { size: d.size, ...(this.opts.verifyBlobs === false ? { verify: false } : {}), ...sig(opts) });
  }

  async hasBlob(d: Descriptor, opts?: MediaCallOptions): Promise<boolean> {
    return (await this.client.blobHead(this.repository, d.digest, sig(opts))) !== undefined;
  }

  async hasManifest(d: Descriptor, opts?: MediaCallOptions): Promise<boolean> {
    return (await this.client.manifestHead(this.repository, d.digest, sig(opts))) !== undefined;
  }

  /**
   * The attachments of a manifest: its OCI referrers (the API, else the fallback tag) and the
   * cosign digest tags `sha256-<hex>.sig|.att|.sbom` that exist.
   */
  async attachments(subject: Descriptor, opts?: MediaCallOptions): Promise<readonly Attachment[]> {
    const known = this.opts.tags;
    const fallback = known === undefined || known.has(fallbackTag(subject.digest));
    const out: Attachment[] = [];
    if (this.client.referrersApi !== false || fallback) {
      const r = await this.client.referrers(this.repository, subject.digest, { fallback, ...sig(opts) });
      for (const d of r.descriptors) out.push({ subject: subject.digest, descriptor: d });
    }
    for (const tag of cosignTags(subject.digest)) {
      if (known !== undefined && !known.has(tag)) continue;
      const head = await this.client.manifestHead(this.repository, tag, sig(opts));
      if (head) out.push({ subject: subject.digest, descriptor: { mediaType: head.mediaType, digest: head.digest, size: head.size }, tag });
    }
    if (out.length > MAX_ATTACHMENTS_PER_SUBJECT) {
      throw new FerryError('REFERRERS_INVALID', `${this.client.host}/${this.repository}@${subject.digest}: more than ${MAX_ATTACHMENTS_PER_SUBJECT} attachments`, {
        registry: this.client.host,
        repository: this.repository,
        digest: subject.digest,
      });
    }
    return out;
  }
}

/**
 * True when a registry refused an index because some of its children are not in the repository
 * (distribution answers MANIFEST_BLOB_UNKNOWN; others BLOB_UNKNOWN, MANIFEST_UNKNOWN, or a 400
 * MANIFEST_INVALID).
 */
export function refusedForMissingChildren(err: unknown): boolean {
  if (!isFerryError(err)) return false;
  const codes = (err.details.registryCodes ?? []).map((c) => c.toUpperCase());
  if (codes.some((c) => c === 'MANIFEST_BLOB_UNKNOWN' || c === 'BLOB_UNKNOWN' || c === 'MANIFEST_UNKNOWN')) return true;
  return err.details.status === 400 && (err.code === 'MANIFEST_INVALID' || err.code === 'BLOB_UNKNOWN' || err.code === 'MANIFEST_UNKNOWN');
}

/**
 * A blob body for RegistryClient.blobPut from an opener that may be async: opened once up
 * front, and refused a second time (an upload retried after the body was consumed).
 */
export async function blobBody(open: BlobOpener, what: string): Promise<{ body: () => Readable; discard: () => void }> {
  const first = open();
  if (!(first instanceof Promise)) {
    let s: Readable | undefined = first;
    return {
      body: () => {
        if (s) {
          const out = s;
          s = undefined;
          return out;
        }
        const again = open();
        if (again instanceof Promise) throw new FerryError('INTERNAL', `${what}: the blob opener turned asynchronous`);
        return again;
      },
      discard: () => s?.destroy(),
    };
  }
  const stream = await first;
  let used = false;
  return {
    body: () => {
      if (used) throw new FerryError('NETWORK', `${what} streams once and cannot be sent twice; run the copy again to resume`, { temporary: false });
      used = true;
      return stream;
    },
    discard: () => {
      if (!used) stream.destroy();
    },
  };
}

/** Options for RegistrySink. */
export interface RegistrySinkOptions {
  /** A repository of the same registry holding the blob, to mount it from instead of uploading. */
  readonly mountFrom?: (d: Descriptor) => string | undefined;
}

/**
 * A registry repository as a sink. A root index the registry refuses because children the
 * selection left out are absent is put as its filtered index instead (ManifestPut.fallback),
 * and the tag then names that.
 */
export class RegistrySink implements ImageSink<string> {
  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
    private readonly opts: RegistrySinkOptions = {},
  ) {}

  async hasBlob(d: Descriptor, opts?: MediaCallOptions): Promise<boolean> {
    return (await this.client.blobHead(this.repository, d.digest, sig(opts))) !== undefined;
  }

  async hasManifest(d: Descriptor, opts?: MediaCallOptions): Promise<boolean> {
    return (await this.client.manifestHead(this.repository, d.digest, sig(opts))) !== undefined;
  }

  async putBlob(d: Descriptor, open: BlobOpener, opts?: MediaCallOptions): Promise<PutBlobResult> {
    const mountFrom = this.opts.mountFrom?.(d);
    const b = await blobBody(open, `blob ${d.digest}`);
    try {
      const r = await this.client.blobPut(this.repository, d.digest, d.size, b.body, { ...sig(opts), ...(mountFrom !== undefined ? { mountFrom } : {}) });
      return r === 'uploaded' ? 'written' : r;
    } finally {
      b.discard();
    }
  }

  async putManifest(p: ManifestPut, opts?: MediaCallOptions): Promise<Digest> {
    const m = p.manifest;
    try {
      await this.client.manifestPut(this.repository, m.digest, Buffer.from(m.bytes), m.mediaType, sig(opts));
      return m.digest;
    } catch (err) {
      if (!p.fallback || !refusedForMissingChildren(err)) throw err;
      await this.client.manifestPut(this.repository, p.fallback.digest, p.fallback.bytes, p.fallback.mediaType, sig(opts));
      return p.fallback.digest;
    }
  }

  /** Digest tags as tags; referrers indexed by the registry, or listed in the fallback tag's index. */
  async putAttachments(attachments: readonly Attachment[], opts?: MediaCallOptions): Promise<void> {
    await publishAttachments(this.client, this.repository, attachments, (d) => this.client.manifestGet(this.repository, d.digest, sig(opts)), opts);
  }

  async putTag(tag: string, image: CopiedImage, opts?: MediaCallOptions): Promise<void> {
    const bytes = image.bytes ?? (await this.client.manifestGet(this.repository, image.digest, sig(opts))).bytes;
    await this.client.manifestPut(this.repository, tag, Buffer.from(bytes), image.mediaType, sig(opts));
  }
}
