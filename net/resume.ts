/**
 * A response body that survives resets and stalls: after a retryable failure mid-body (a reset,
 * or the dispatcher's idle timeout on a connection left open) it asks again from the byte it
 * reached, with `Range`, up to the retry count.
 */
import { Readable } from 'node:stream';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { header, type HttpResponse } from './request.js';
import { abortError, backoffDelay, classifyNetworkError, isRetryableNetworkError, type ResolvedRetry } from './retry.js';

/** What a resumable body needs from its caller. */
export interface ResumableBodyOptions {
  /** The response that started the transfer (status 200). */
  readonly first: HttpResponse;
  /** Asks again from `offset` (with `Range: bytes=offset-`); resolves to a 200 or 206 response. */
  readonly reopen: (offset: number) => Promise<HttpResponse>;
  /** The whole body's size, when known: a body that failed exactly there needs no resume. */
  readonly size?: number;
  readonly retry: ResolvedRetry;
  readonly signal?: AbortSignal;
  readonly details: ErrorDetails;
  /** Names the transfer in messages, e.g. `blobGet sha256:…` or `goproxyZip m@v1.0.0`. */
  readonly label: string;
}

/** The first byte position of a `Content-Range: bytes START-END/TOTAL` header. */
export function contentRangeStart(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+(\d+)-\d+\/(?:\d+|\*)\s*$/i.exec(value);
  return m ? Number(m[1]) : undefined;
}

/** The body's bytes in order, resuming after retryable failures; the consumer verifies them. */
export async function* resumingChunks(o: ResumableBodyOptions): AsyncGenerator<Buffer> {
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
          throw new FerryError('SIZE_MISMATCH', `${o.label}: a restarted download ended before the ${offset} bytes already received`, {
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
          throw new FerryError(code, `${o.label}: download failed after ${offset} bytes (${resumes} resumes): ${(err as Error).message}`, {
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
            throw new FerryError('NETWORK', `${o.label}: asked to resume at byte ${offset}, got Content-Range "${header(res.headers, 'content-range') ?? ''}"`, {
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

/** resumingChunks as a byte stream that pulls from the network only as it is read. */
export function resumableBody(o: ResumableBodyOptions): Readable {
  return Readable.from(resumingChunks(o), { objectMode: false });
}
