/** A pass-through stream that hashes what flows through it and fails on a wrong size or digest. */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import type { Digest } from './digest.js';

/** Options for a VerifyingStream. */
export interface VerifyOptions {
  /** The digest the content must have. */
  readonly digest: Digest;
  /** The exact size, when known; more bytes than this fail at once. */
  readonly size?: number;
  /** Bytes already hashed elsewhere (resume): the hash state continues from `hash`. */
  readonly hash?: Hash;
  /** Bytes counted before this stream started (resume). */
  readonly offset?: number;
  /** Identifiers for the error message. */
  readonly details?: ErrorDetails;
}

/**
 * Hashes bytes as they pass and, at the end, fails with DIGEST_MISMATCH or SIZE_MISMATCH
 * instead of finishing, so a consumer that awaits the pipeline never trusts bad bytes.
 */
export class VerifyingStream extends Transform {
  readonly expected: Digest;
  readonly expectedSize: number | undefined;
  private readonly hash: Hash;
  private count: number;
  private readonly details: ErrorDetails;

  constructor(opts: VerifyOptions) {
    super();
    this.expected = opts.digest;
    this.expectedSize = opts.size;
    this.hash = opts.hash ?? createHash('sha256');
    this.count = opts.offset ?? 0;
    this.details = opts.details ?? {};
  }

  /** Bytes seen so far (including any offset). */
  get bytes(): number {
    return this.count;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.expectedSize !== undefined && this.count > this.expectedSize) {
      cb(
        new FerryError('SIZE_MISMATCH', `content for ${this.expected} is larger than the expected ${this.expectedSize} bytes`, {
          ...this.details,
          digest: this.expected,
        }),
      );
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.count !== this.expectedSize) {
      cb(
        new FerryError('SIZE_MISMATCH', `content for ${this.expected} has ${this.count} bytes, expected ${this.expectedSize}`, {
          ...this.details,
          digest: this.expected,
        }),
      );
      return;
    }
    const got = `sha256:${this.hash.digest('hex')}`;
    if (got !== this.expected) {
      cb(
        new FerryError('DIGEST_MISMATCH', `content digest mismatch: expected ${this.expected}, got ${got}`, {
          ...this.details,
          digest: this.expected,
        }),
      );
      return;
    }
    cb();
  }
}
