/**
 * Foreign (non-distributable) layers fetched from their descriptor's `urls`, for an image whose
 * configuration asks for them: http(s) only, verified against the descriptor's digest and size,
 * and never with a registry's credentials (a plain request, no Authenticator).
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { FerryError, errorMessage, type ErrorDetails } from '../errors/index.js';
import { discardBody, redactUrl, request, resolveRetry, type HttpResponse, type RetryOptions } from '../net/index.js';
import type { Descriptor } from '../oci/index.js';
import { resumableBlobStream } from './blob-reader.js';

/** Options for foreignBlobGet. */
export interface ForeignBlobOptions {
  /** @default net's process-wide dispatcher (system CAs, proxy from the environment) */
  readonly dispatcher?: Dispatcher;
  readonly retry?: RetryOptions;
  readonly signal?: AbortSignal;
  /** @default 'ferry' */
  readonly userAgent?: string;
  /** Identifiers for errors (registry, repository of the manifest that names the layer). */
  readonly details?: ErrorDetails;
}

/**
 * The layer's bytes from the first of its `urls` that serves it (200), as a stream that resumes
 * with Range and fails with DIGEST_MISMATCH or SIZE_MISMATCH at the end. BLOB_UNKNOWN, naming
 * every URL tried and why, when none does.
 */
export async function foreignBlobGet(d: Descriptor, opts: ForeignBlobOptions = {}): Promise<Readable> {
  const details: ErrorDetails = { ...opts.details, digest: d.digest, op: 'foreignBlobGet' };
  const retry = resolveRetry(opts.retry);
  const tried: string[] = [];
  for (const raw of d.urls ?? []) {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      tried.push(`${JSON.stringify(redactUrl(raw))}: not a URL`);
      continue;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      tried.push(`${redactUrl(url)}: only http and https URLs are fetched`);
      continue;
    }
    const open = (offset: number): Promise<HttpResponse> =>
      request({
        url,
        headers: { 'user-agent': opts.userAgent ?? 'ferry', ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) },
        op: 'foreignBlobGet',
        details: { ...details, url: redactUrl(url) },
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
        ...(opts.retry ? { retry: opts.retry } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    let first: HttpResponse;
    try {
      first = await open(0);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      tried.push(`${redactUrl(url)}: ${errorMessage(err)}`);
      continue;
    }
    if (first.statusCode !== 200) {
      await discardBody(first.body);
      tried.push(`${redactUrl(url)}: HTTP ${first.statusCode}`);
      continue;
    }
    const reopen = async (offset: number): Promise<HttpResponse> => {
      const res = await open(offset);
      if (res.statusCode === 200 || res.statusCode === 206) return res;
      await discardBody(res.body);
      throw new FerryError('NETWORK', `foreignBlobGet ${d.digest}: resuming from ${redactUrl(url)} answered HTTP ${res.statusCode}`, {
        ...details,
        url: redactUrl(url),
        status: res.statusCode,
        temporary: false,
      });
    };
    return resumableBlobStream({ digest: d.digest, size: d.size, first, reopen, retry, ...(opts.signal ? { signal: opts.signal } : {}), details: { ...details, url: redactUrl(url) } });
  }
  throw new FerryError(
    'BLOB_UNKNOWN',
    `foreign layer ${d.digest} (${d.mediaType}) could not be fetched from its urls: ${tried.length > 0 ? tried.join('; ') : 'it has none'}`,
    { ...details, temporary: false },
  );
}
