/** The body of a blob upload: verified as it is sent, cut into PATCH chunks, and the URL that closes the upload. */
import { pipeline, type Readable } from 'node:stream';
import type { ErrorDetails } from '../errors/index.js';
import { VerifyingStream, type Digest } from '../oci/index.js';

/** Adds `digest=` to an upload URL that may already carry a query; the rest is left byte for byte. */
export function withDigest(location: string, digest: Digest): string {
  const hash = location.indexOf('#');
  const base = hash >= 0 ? location.slice(0, hash) : location;
  return `${base}${base.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

/**
 * The upload body, hashed as it is sent so a wrong local file fails before the registry decides.
 * pipeline, not pipe: when the upload is aborted (undici destroys the body) the source (a file
 * stream) is destroyed and closed too.
 */
export function verified(src: Readable, digest: Digest, size: number, details: ErrorDetails): Readable {
  const v = new VerifyingStream({ digest, size, details: { ...details, op: 'blobPut' } });
  // Errors reach the consumer through `v`, which pipeline destroys with them.
  pipeline(src, v, () => {});
  return v;
}

/** Re-slices a stream into pieces of exactly `size` bytes (the last may be shorter); holds one piece at most. */
export async function* fixedChunks(src: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const chunk of src) {
    let b = chunk as Buffer;
    while (b.length > 0) {
      const take = Math.min(size - have, b.length);
      parts.push(b.subarray(0, take));
      have += take;
      b = b.subarray(take);
      if (have === size) {
        yield Buffer.concat(parts, have);
        parts = [];
        have = 0;
      }
    }
  }
  if (have > 0) yield Buffer.concat(parts, have);
}

