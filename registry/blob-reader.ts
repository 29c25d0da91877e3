/** A blob download that survives connection resets and stalls by resuming with Range, verified end to end. */
import { pipeline, type Readable } from 'node:stream';
import type { ErrorDetails } from '../errors/index.js';
import { resumableBody, type HttpResponse, type ResolvedRetry } from '../net/index.js';
import { VerifyingStream, type Digest } from '../oci/index.js';

export { contentRangeStart } from '../net/index.js';

/** What a resumable blob read needs from the client. */
export interface ResumableBlobOptions {
  readonly digest: Digest;
  readonly size?: number;
  /** The response that started the download (status 200). */
  readonly first: HttpResponse;
  /** Re-requests the blob from `offset` (with `Range: bytes=offset-`); resolves to a 200 or 206 response. */
  readonly reopen: (offset: number) => Promise<HttpResponse>;
  readonly retry: ResolvedRetry;
  readonly signal?: AbortSignal;
  readonly details: ErrorDetails;
  /**
   * Hash the bytes and fail on a digest or size mismatch. Turn off only when the consumer
   * verifies them itself (the store does, before a blob file is renamed into place). @default true
   */
  readonly verify?: boolean;
}

/**
 * A stream of the blob's bytes that errors with DIGEST_MISMATCH or SIZE_MISMATCH at the end
 * instead of ending cleanly, resuming after resets and idle timeouts. Pulls from the network
 * only as the consumer reads (backpressure); destroying it cancels the download.
 */
export function resumableBlobStream(o: ResumableBlobOptions): Readable {
  const src = resumableBody({
    first: o.first,
    reopen: o.reopen,
    ...(o.size !== undefined ? { size: o.size } : {}),
    retry: o.retry,
    ...(o.signal ? { signal: o.signal } : {}),
    details: o.details,
    label: `blobGet ${o.digest}`,
  });
  if (o.verify === false) return src;
  const verify = new VerifyingStream({ digest: o.digest, ...(o.size !== undefined ? { size: o.size } : {}), details: o.details });
  // pipeline destroys every stream with the first error, so the consumer of `verify` sees it.
  pipeline(src, verify, () => {});
  return verify;
}
