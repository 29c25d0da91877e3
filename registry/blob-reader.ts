/** A blob download that survives connection resets by resuming with Range, verified end to end. */
import { Readable, pipeline } from 'node:stream';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import {
  abortError,
  backoffDelay,
  classifyNetworkError,
  header,
  isRetryableNetworkError,
  type HttpResponse,
  type ResolvedRetry,
} from '../net/index.js';
import { VerifyingStream, type Digest } from '../oci/index.js';

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

/** The first byte position of a `Content-Range: bytes START-END/TOTAL` header. */
export function contentRangeStart(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+(\d+)-\d+\/(?:\d+|\*)\s*$/i.exec(value);
  return m ? Number(m[1]) : undefined;
}

async function* resumingChunks(o: ResumableBlobOptions): AsyncGenerator<Buffer> {
  let res = o.first;
  let offset = 0;
  let resumes = 0;
  // After a 200 to a Range request the server restarted from byte 0: skip what we already passed on.
  let skip = 0;
  try {
    for (;;) {
      try {
        for await (const chunk of res.body) {
          let b = chunk as Buffer;
          if (skip > 0) {
            if (b.length <= skip) {
              skip -= b.length;
              continue;
            }
            b = b.subarray(skip);
            skip = 0;
          }
          offset += b.length;
          yield b;
        }
        if (skip > 0) {
          throw new FerryError('SIZE_MISMATCH', `blobGet ${o.digest}: a restarted download ended before the ${offset} bytes already received`, {
            ...o.details,
            temporary: false,
          });
        }
        return;
      } catch (err) {
        res.body.destroy();
        if (o.signal?.aborted) throw abortError(o.signal, o.details);
        if (err instanceof FerryError) throw err;
        if (!isRetryableNetworkError(err) || resumes >= o.retry.retries) {
          const { code, temporary } = classifyNetworkError(err);
          throw new FerryError(code, `blobGet ${o.digest}: download failed after ${offset} bytes (${resumes} resumes): ${(err as Error).message}`, {
            ...o.details,
            temporary,
            cause: err,
          });
        }
        // The body ended exactly at the expected size: nothing left to fetch, the verifier decides.
        if (o.size !== undefined && offset === o.size) return;
        await o.retry.sleep(backoffDelay(resumes, o.retry), o.signal);
        resumes++;
        res = await o.reopen(offset);
        if (res.statusCode === 206) {
          const start = contentRangeStart(header(res.headers, 'content-range'));
          if (start !== offset) {
            res.body.destroy();
            throw new FerryError('NETWORK', `blobGet ${o.digest}: asked to resume at byte ${offset}, got Content-Range "${header(res.headers, 'content-range') ?? ''}"`, {
              ...o.details,
              temporary: true,
            });
          }
        } else {
          skip = offset;
        }
      }
    }
  } finally {
    if (!res.body.destroyed) res.body.destroy();
  }
}

/**
 * A stream of the blob's bytes that errors with DIGEST_MISMATCH or SIZE_MISMATCH at the end
 * instead of ending cleanly, resuming after resets. Pulls from the network only as the
 * consumer reads (backpressure); destroying it cancels the download.
 */
export function resumableBlobStream(o: ResumableBlobOptions): Readable {
  const src = Readable.from(resumingChunks(o), { objectMode: false });
  if (o.verify === false) return src;
  const verify = new VerifyingStream({ digest: o.digest, ...(o.size !== undefined ? { size: o.size } : {}), details: o.details });
  // pipeline destroys every stream with the first error, so the consumer of `verify` sees it.
  pipeline(src, verify, () => {});
  return verify;
}
