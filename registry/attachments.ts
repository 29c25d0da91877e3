/**
 * Attachments at a target repository, after their manifests are in: cosign digest tags pushed as
 * tags, and OCI referrers made findable. A registry with the referrers API (it answered the PUT
 * of a manifest with a `subject` with `OCI-Subject`, or answers the API) indexes them itself;
 * for one without, the fallback tag `sha256-<hex>` gets an index listing them, merged with what
 * it already lists (other clients' entries are never dropped).
 */
import {
  fallbackTag,
  MediaType,
  referrerDescriptor,
  referrersIndex,
  type Attachment,
  type Descriptor,
  type Digest,
  type MediaCallOptions,
} from '../oci/index.js';
import type { RegistryClient } from './client.js';

/** Reads an attachment manifest's exact bytes (from what a copy carried, or the target). */
export type AttachmentBytes = (d: Descriptor) => Promise<{ readonly bytes: Uint8Array; readonly mediaType: string }>;

/** What publishAttachments did. */
export interface PublishedAttachments {
  /** Digest tags pushed (or moved). */
  readonly tags: number;
  /** Fallback tag indexes written (the registry lacks the referrers API). */
  readonly fallbackIndexes: number;
  /** True when the registry indexes referrers itself. */
  readonly referrersApi: boolean;
}

function sig(opts: MediaCallOptions | undefined): { signal?: AbortSignal } {
  return opts?.signal ? { signal: opts.signal } : {};
}

/** Publishes attachments whose manifests (and subjects) are already in `repo`. */
export async function publishAttachments(client: RegistryClient, repo: string, list: readonly Attachment[], read: AttachmentBytes, opts?: MediaCallOptions): Promise<PublishedAttachments> {
  let tags = 0;
  let fallbackIndexes = 0;
  for (const a of list) {
    if (a.tag === undefined) continue;
    const head = await client.manifestHead(repo, a.tag, sig(opts));
    if (head?.digest === a.descriptor.digest) continue;
    const m = await read(a.descriptor);
    await client.manifestPut(repo, a.tag, Buffer.from(m.bytes), m.mediaType, sig(opts));
    tags++;
  }
  const bySubject = new Map<Digest, Attachment[]>();
  for (const a of list) if (a.tag === undefined) bySubject.set(a.subject, [...(bySubject.get(a.subject) ?? []), a]);
  for (const [subject, referrers] of bySubject) {
    if (client.referrersApi === true) continue;
    // Unknown yet (every referrer was there before): the API answers, or the fallback tag is read.
    const have = await client.referrers(repo, subject, sig(opts));
    if (have.via === 'api') continue;
    const listed = new Set(have.descriptors.map((d) => d.digest));
    const added: Descriptor[] = [];
    for (const a of referrers) {
      if (listed.has(a.descriptor.digest)) continue;
      const m = await read(a.descriptor);
      added.push(referrerDescriptor(m.bytes, a.descriptor.digest, m.mediaType));
      listed.add(a.descriptor.digest);
    }
    if (added.length === 0) continue;
    await client.manifestPut(repo, fallbackTag(subject), referrersIndex([...have.descriptors, ...added]), MediaType.OciIndex, sig(opts));
    fallbackIndexes++;
  }
  return { tags, fallbackIndexes, referrersApi: client.referrersApi === true };
}
