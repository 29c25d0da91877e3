/** Content digests: parsing, computing, and where a blob lives in a blobs/ tree. */
import { hash } from 'node:crypto';
import { FerryError } from '../errors/index.js';

/** A content digest in the form `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

/** True when `s` is a well-formed sha256 digest. */
export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && SHA256_RE.test(s);
}

/** Returns `s` as a Digest or throws DIGEST_INVALID naming where it came from. */
export function parseDigest(s: unknown, where = 'digest'): Digest {
  if (isDigest(s)) return s;
  throw new FerryError('DIGEST_INVALID', `${where}: "${String(s)}" is not a sha256 digest (sha256:<64 lowercase hex>)`);
}

/** The 64-hex part of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(7);
}

/** sha256 digest of a buffer. */
export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${hash('sha256', data, 'hex')}`;
}

/** The relative path of a blob inside an OCI image layout: `blobs/sha256/<hex>`. */
export function layoutBlobPath(d: Digest): string {
  return `blobs/sha256/${digestHex(d)}`;
}
