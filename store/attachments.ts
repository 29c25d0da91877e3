/**
 * Attachments by subject: which signature, attestation, SBOM or referrer manifests are attached
 * to which manifest, and by which cosign digest tag when a tag names them. A row is written only
 * once its manifest is stored (StoreSink.putAttachments), so a row names a complete manifest.
 */
import type { Attachment, Descriptor, Digest } from '../oci/index.js';
import type { IndexDb } from './db.js';

interface Row {
  subject: Digest;
  digest: Digest;
  tag: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  annotations: string | null;
}

function toAttachment(r: Row): Attachment {
  const descriptor: Descriptor = {
    mediaType: r.media_type,
    digest: r.digest,
    size: r.size,
    ...(r.artifact_type !== null ? { artifactType: r.artifact_type } : {}),
    ...(r.annotations !== null ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
  };
  return { subject: r.subject, descriptor, ...(r.tag !== '' ? { tag: r.tag } : {}) };
}

/** The attachments part of a store. */
export class StoreAttachments {
  constructor(private readonly db: IndexDb) {}

  /** The attachments recorded for a subject, by digest then tag. */
  of(subject: Digest): Attachment[] {
    return this.db.run('attachmentsOf', () =>
      (this.db.cached('SELECT * FROM attachments WHERE subject = ? ORDER BY digest, tag').all(subject) as Row[]).map(toAttachment),
    );
  }

  /** True when the attachment is recorded (same subject, manifest and tag). */
  has(a: Attachment): boolean {
    return this.db.run('attachmentHas', () => this.db.cached('SELECT 1 FROM attachments WHERE subject = ? AND digest = ? AND tag = ?').get(a.subject, a.descriptor.digest, a.tag ?? '') !== undefined);
  }

  /** Every recorded attachment (serve's referrers and digest tags). */
  all(): Attachment[] {
    return this.db.run('attachmentsAll', () => (this.db.cached('SELECT * FROM attachments ORDER BY subject, digest, tag').all() as Row[]).map(toAttachment));
  }

  /**
   * A stamp that changes whenever the recorded attachments do (they are not in the journal):
   * their count and newest time, for a reader that caches what it built from them.
   */
  stamp(): string {
    return this.db.run('attachmentsStamp', () => {
      const r = this.db.cached('SELECT COUNT(*) AS n, MAX(created_at) AS at FROM attachments').get() as { n: number; at: string | null };
      return `${r.n}@${r.at ?? ''}`;
    });
  }

  /**
   * Records attachments whose manifests are stored; a cosign tag now naming another manifest
   * replaces the row it named before. Returns how many were new.
   */
  add(list: readonly Attachment[]): number {
    this.db.assertWritable('addAttachments');
    if (list.length === 0) return 0;
    return this.db.write('addAttachments', () => {
      let added = 0;
      const now = this.db.iso();
      for (const a of list) {
        if (this.has(a)) continue;
        if (a.tag !== undefined) this.db.cached('DELETE FROM attachments WHERE subject = ? AND tag = ?').run(a.subject, a.tag);
        const d = a.descriptor;
        this.db
          .cached('INSERT INTO attachments (subject, digest, tag, media_type, size, artifact_type, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
          .run(a.subject, d.digest, a.tag ?? '', d.mediaType, d.size, d.artifactType ?? null, d.annotations ? JSON.stringify(d.annotations) : null, now);
        added++;
      }
      return added;
    });
  }
}
