// Attachment names and lists, pure: fallback and cosign digest tags, the referrers descriptor of a manifest.
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import {
  attachmentSelected,
  cosignTag,
  cosignTags,
  fallbackTag,
  isDigestTag,
  manifestSubject,
  parseDigestTag,
  parseReferrersIndex,
  referrerDescriptor,
  referrersIndex,
  sha256Digest,
  type Digest,
} from '../../oci/index.js';

const hex = 'ab'.repeat(32);
const subject = `sha256:${hex}` as Digest;

describe('digest tags', () => {
  it('names the fallback tag and the cosign tags of a subject', () => {
    expect(fallbackTag(subject)).toBe(`sha256-${hex}`);
    expect(cosignTag(subject, 'sig')).toBe(`sha256-${hex}.sig`);
    expect(cosignTags(subject)).toEqual([`sha256-${hex}.sig`, `sha256-${hex}.att`, `sha256-${hex}.sbom`]);
  });

  it('parses digest tags back and refuses other shapes', () => {
    expect(parseDigestTag(`sha256-${hex}`)).toEqual({ subject, kind: undefined });
    expect(parseDigestTag(`sha256-${hex}.att`)).toEqual({ subject, kind: 'att' });
    expect(parseDigestTag(`sha256-${hex}.foo`)).toBeUndefined();
    expect(parseDigestTag(`sha256-${hex.slice(2)}.sig`)).toBeUndefined();
    expect(parseDigestTag('v1.2.3')).toBeUndefined();
  });

  it('knows a digest-shaped tag (any suffix) from an image tag', () => {
    expect(isDigestTag(`sha256-${hex}`)).toBe(true);
    expect(isDigestTag(`sha256-${hex}.sig`)).toBe(true);
    expect(isDigestTag(`sha256-${hex}.intoto`)).toBe(true);
    expect(isDigestTag('sha256-abc')).toBe(false);
    expect(isDigestTag('latest')).toBe(false);
  });
});

describe('attachment filter', () => {
  const sig = { subject, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 1 }, tag: cosignTag(subject, 'sig') };
  const sbom = { subject, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 1, artifactType: 'application/spdx+json' } };
  it('selects all, or by artifact type (a cosign tag by its kind)', () => {
    expect(attachmentSelected(sig, { artifactTypes: null })).toBe(true);
    expect(attachmentSelected(sig, { artifactTypes: ['application/vnd.dev.cosign.artifact.sig.v1+json'] })).toBe(true);
    expect(attachmentSelected(sbom, { artifactTypes: ['application/vnd.dev.cosign.artifact.sig.v1+json'] })).toBe(false);
    expect(attachmentSelected(sbom, { artifactTypes: ['application/spdx+json'] })).toBe(true);
  });
});

describe('referrers descriptors and lists', () => {
  const artifact = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest('{}'), size: 2 },
      layers: [],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 10 },
      annotations: { a: 'b' },
    }),
  );
  const noType = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/x-thing', digest: subject, size: 2 }, layers: [] }),
  );

  it("gives artifactType (the manifest's, else its config media type) and annotations", () => {
    expect(referrerDescriptor(artifact, sha256Digest(artifact))).toEqual({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha256Digest(artifact),
      size: artifact.length,
      artifactType: 'application/spdx+json',
      annotations: { a: 'b' },
    });
    expect(referrerDescriptor(noType, sha256Digest(noType)).artifactType).toBe('application/x-thing');
    expect(manifestSubject(artifact)).toBe(subject);
    expect(manifestSubject(noType)).toBeUndefined();
  });

  it('writes a referrers index sorted and deduplicated, and reads it back', () => {
    const a = referrerDescriptor(artifact, sha256Digest(artifact));
    const b = referrerDescriptor(noType, sha256Digest(noType));
    const bytes = referrersIndex([a, b, a]);
    expect(referrersIndex([b, a])).toEqual(bytes);
    const back = parseReferrersIndex(bytes, 'test');
    expect(back.map((d) => d.digest)).toEqual([a.digest, b.digest].sort());
  });

  it('refuses a malformed list with REFERRERS_INVALID', () => {
    for (const bad of ['nope', '{}', '{"manifests":[{"digest":"x"}]}', `{"manifests":[{"digest":"${subject}","mediaType":"m","size":1,"annotations":{"a":1}}]}`]) {
      let err: unknown;
      try {
        parseReferrersIndex(Buffer.from(bad), 'here');
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'REFERRERS_INVALID')).toBe(true);
      expect((err as Error).message).toContain('here');
    }
  });
});
