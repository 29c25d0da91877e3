/** One HTTP exchange with retries, redirects and bounded body reads, on undici. */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import './undici.js';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { defaultDispatcher } from './dispatcher.js';
import { describeTarget, statusError } from './errors.js';
import { redactUrl } from './redact.js';
import {
  abortError,
  backoffDelay,
  classifyNetworkError,
  errorCodeOf,
  isRetryableStatus,
  parseRetryAfter,
  resolveRetry,
  type RetryOptions,
} from './retry.js';

/** HTTP methods Ferry sends. */
export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** A request for `request()`. */
export interface HttpRequest {
  readonly url: string | URL;
  /** @default 'GET' */
  readonly method?: HttpMethod;
  readonly headers?: Record<string, string>;
  /** A factory for streamed bodies, so that a retry can reopen it. */
  readonly body?: Buffer | string | (() => Readable);
  readonly signal?: AbortSignal;
  /** @default the process-wide defaultDispatcher() */
  readonly dispatcher?: Dispatcher;
  readonly retry?: RetryOptions;
  /** The operation name errors carry, e.g. 'manifestGet'. @default the method */
  readonly op?: string;
  /** Identifiers errors carry (registry, repository, digest...). */
  readonly details?: ErrorDetails;
  /** Follow 301/302/303/307/308. @default true for GET and HEAD, false otherwise */
  readonly followRedirects?: boolean;
  /** Called for every response received, including redirects and responses that are retried (metrics, rate limits). */
  readonly onResponse?: (info: ResponseObservation) => void;
}

/** What onResponse sees of each response. */
export interface ResponseObservation {
  readonly method: HttpMethod;
  /** The URL this response answered (not redacted). */
  readonly url: string;
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** A response whose body the caller must consume or destroy. */
export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable;
  /** The final URL after redirects (not redacted). */
  readonly url: string;
}

const MAX_REDIRECTS = 10;
/** How much of an error body is read to find the registry's error codes. */
export const ERROR_BODY_LIMIT = 64 * 1024;
/** How much of an unwanted body is drained (to keep the connection) before it is destroyed instead. */
const DISCARD_LIMIT = 1024 * 1024;

/** A header's value, case-insensitively; repeated headers are joined with ", " as HTTP allows. */
export function header(h: HttpResponse['headers'], name: string): string | undefined {
  const v = h[name.toLowerCase()] ?? h[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Reads a body up to maxBytes, else throws BODY_TOO_LARGE (and destroys the body). */
export async function readBody(body: Readable, maxBytes: number, details: ErrorDetails = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      total += b.length;
      if (total > maxBytes) {
        body.destroy();
        const target = describeTarget(details);
        throw new FerryError('BODY_TOO_LARGE', `${details.op ?? 'read'}${target ? ` ${target}` : ''}: response body exceeds ${maxBytes} bytes`, {
          ...details,
        });
      }
      chunks.push(b);
    }
  } catch (err) {
    if (err instanceof FerryError) throw err;
    const { code, temporary } = classifyNetworkError(err);
    throw new FerryError(code, `${details.op ?? 'read'}: reading the response body failed: ${(err as Error).message}`, {
      ...details,
      temporary,
      cause: err,
    });
  }
  return Buffer.concat(chunks, total);
}

/**
 * The first ERROR_BODY_LIMIT bytes of an error response's body (for the registry's error codes
 * in the message), or undefined when it cannot be read: the status is the error either way.
 */
export async function readErrorBody(body: Readable, details: ErrorDetails = {}): Promise<Buffer | undefined> {
  try {
    return await readBody(body, ERROR_BODY_LIMIT, details);
  } catch {
    return undefined;
  }
}

/** Consumes and discards a body (small ones are drained so the connection can be reused). */
export async function discardBody(body: Readable): Promise<void> {
  // An undici body drains itself (up to the limit, then it is destroyed) without the async
  // iterator, its promises and listeners: the empty body of every manifest PUT and HEAD.
  const dump = (body as Readable & { dump?: (o: { limit: number }) => Promise<unknown> }).dump;
  if (typeof dump === 'function') {
    try {
      await dump.call(body, { limit: DISCARD_LIMIT });
    } catch {
      // The body is unwanted; a failure reading it changes nothing.
    } finally {
      if (!body.destroyed) body.destroy();
    }
    return;
  }
  let total = 0;
  try {
    for await (const chunk of body) {
      total += (chunk as Buffer).length;
      if (total > DISCARD_LIMIT) break;
    }
  } catch {
    // The body is unwanted; a failure reading it changes nothing.
  } finally {
    if (!body.destroyed) body.destroy();
  }
}

/** True for undici's HTTPParserError (a response that is not HTTP/1.1), whose code is often unset. */
function isParserError(err: unknown): boolean {
  return (err instanceof Error && err.name === 'HTTPParserError') || (errorCodeOf(err)?.startsWith('HPE_') ?? false);
}

function methodOf(req: HttpRequest): HttpMethod {
  return req.method ?? 'GET';
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== 'authorization') out[k] = v;
  return out;
}

/** What one hop answered: status, headers and a body of kind B (a stream, or bytes read whole). */
interface Answer<B> {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: B;
}

/** How a body kind is sent for, dropped and read for an error message. */
interface BodyKind<B> {
  send(dispatcher: Dispatcher, url: URL, init: { method: HttpMethod; headers: Record<string, string>; body: Buffer | string | Readable | undefined; signal: AbortSignal | undefined }): Promise<Answer<B>>;
  discard(body: B): Promise<void>;
  errorBody(body: B, details: ErrorDetails): Promise<Buffer | undefined>;
}

/** Bodies as undici streams: the caller consumes or destroys them. */
const STREAM: BodyKind<Readable> = {
  async send(dispatcher, url, init) {
    const res = await dispatcher.request({
      method: init.method,
      headers: init.headers,
      body: init.body ?? null,
      signal: init.signal,
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      // undici closes the connection after every HEAD (in case a server wrongly sends a body),
      // so a tag check per HEAD costs a new TCP (and TLS) connection. Registries and proxies send
      // none; undici drops a connection on which stray bytes arrive while it is idle, and a
      // request that stray bytes reach anyway fails to parse and is retried (request()).
      reset: init.method === 'HEAD' ? false : undefined,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body };
  },
  discard: discardBody,
  errorBody: readErrorBody,
};

/**
 * Bodies read whole, at most `maxBytes` (else BODY_TOO_LARGE, not retried), through undici's
 * dispatch handler: no stream, no async iteration, for the thousands of small files a module
 * sync fetches (.info, .mod, lists), where that machinery cost more than the bytes.
 */
function bufferedKind(maxBytes: number, what: () => ErrorDetails): BodyKind<Buffer> {
  return {
    send: (dispatcher, url, init) =>
      new Promise<Answer<Buffer>>((resolve, reject) => {
        const { signal } = init;
        let controller: Dispatcher.DispatchController | undefined;
        let answer: Omit<Answer<Buffer>, 'body'> | undefined;
        const chunks: Buffer[] = [];
        let total = 0;
        let settled = false;
        const onAbort = (): void => controller?.abort(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        const settle = (err: unknown, value?: Answer<Buffer>): void => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener('abort', onAbort);
          if (value) resolve(value);
          else reject(err instanceof Error ? err : new Error(String(err)));
        };
        const tooLarge = (c: Dispatcher.DispatchController, why: string): void => {
          const d = what();
          const target = describeTarget(d);
          const err = new FerryError('BODY_TOO_LARGE', `${d.op ?? 'read'}${target ? ` ${target}` : ''}: ${why}`, d);
          settle(err);
          c.abort(err);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        const body = init.body;
        dispatcher.dispatch(
          { origin: url.origin, path: `${url.pathname}${url.search}`, method: init.method, headers: init.headers, ...(body instanceof Readable || body === undefined ? {} : { body }) },
          {
            onRequestStart(c) {
              controller = c;
              if (signal?.aborted) onAbort();
            },
            onResponseStart(c, statusCode, headers) {
              answer = { statusCode, headers: headers as Answer<Buffer>['headers'] };
              // A declared length past the limit fails before any of the body is read.
              const length = header(answer.headers, 'content-length');
              if (length !== undefined && /^\d+$/.test(length) && Number(length) > maxBytes) tooLarge(c, `Content-Length ${length} exceeds ${maxBytes} bytes`);
            },
            onResponseData(c, chunk) {
              total += chunk.length;
              if (total > maxBytes) {
                tooLarge(c, `response body exceeds ${maxBytes} bytes`);
                return;
              }
              chunks.push(chunk);
            },
            onResponseEnd() {
              if (answer) settle(undefined, { ...answer, body: Buffer.concat(chunks, total) });
              else settle(new Error('response ended before its headers'));
            },
            onResponseError(_c, err) {
              settle(err);
            },
          },
        );
      }),
    discard: () => Promise.resolve(),
    errorBody: (body) => Promise.resolve(body.subarray(0, ERROR_BODY_LIMIT)),
  };
}

/** One attempt: sends the request and follows redirects, dropping Authorization once the host changes. */
async function sendOnce<B>(req: HttpRequest, dispatcher: Dispatcher, kind: BodyKind<B>): Promise<Answer<B> & { url: string }> {
  let method: HttpMethod = methodOf(req);
  // A URL object is used as given (never changed here: a redirect makes a new one).
  let url = req.url instanceof URL ? req.url : new URL(req.url);
  const origin = url.origin;
  // Never changed in place (a redirect off the origin makes a new object): no copy per request.
  let headers: Record<string, string> = req.headers ?? {};
  let body = req.body;
  const follow = req.followRedirects ?? (method === 'GET' || method === 'HEAD');
  for (let hop = 0; ; hop++) {
    const res = await kind.send(dispatcher, url, { method, headers, body: typeof body === 'function' ? body() : body, signal: req.signal });
    req.onResponse?.({ method, url: url.href, statusCode: res.statusCode, headers: res.headers });
    const location = header(res.headers, 'location');
    if (!follow || !isRedirect(res.statusCode) || location === undefined) {
      return { ...res, url: url.href };
    }
    await kind.discard(res.body);
    if (hop >= MAX_REDIRECTS) {
      throw new FerryError('NETWORK', `${req.op ?? method}: more than ${MAX_REDIRECTS} redirects from ${redactUrl(req.url)}`, {
        ...req.details,
        op: req.op ?? method,
        url: redactUrl(req.url),
        method,
        temporary: false,
      });
    }
    url = new URL(location, url);
    // A storage backend (S3, GCS, a CDN) must never see the registry's credentials.
    if (url.origin !== origin) headers = withoutAuthorization(headers);
    if (res.statusCode === 303 && method !== 'HEAD') {
      method = 'GET';
      body = undefined;
    }
  }
}

/**
 * Sends a request. Retries (backoff with jitter) connection resets/refusals/timeouts, 408,
 * 429 (honouring Retry-After seconds or HTTP date) and 500-599; nothing else. Other statuses
 * are returned (not thrown). When retries are exhausted on a retryable status, throws
 * RATE_LIMITED (429) or HTTP_STATUS with temporary:true; network failures throw
 * NETWORK/TIMEOUT/TLS with the temporary flag. Bodies of retried responses are discarded.
 * A Retry-After longer than maxDelayMs is not waited for: RATE_LIMITED carries it instead.
 */
export function request(req: HttpRequest): Promise<HttpResponse> {
  return exchange(req, STREAM);
}

/** A response whose body was read whole. */
export interface BufferedResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  /** The final URL after redirects (not redacted). */
  readonly url: string;
}

/**
 * `request` for small bodies, read whole: the same retries, redirects and errors, and
 * BODY_TOO_LARGE (not retried) once the body passes `maxBytes`. Request bodies must be in
 * memory (a Buffer or string).
 */
export function requestBytes(req: HttpRequest & { readonly maxBytes: number }): Promise<BufferedResponse> {
  if (typeof req.body === 'function') return Promise.reject(new FerryError('USAGE', 'requestBytes: a streamed request body is not supported', { ...req.details }));
  const details = (): ErrorDetails => ({ ...req.details, op: req.op ?? methodOf(req), method: methodOf(req), url: redactUrl(req.url) });
  return exchange(req, bufferedKind(req.maxBytes, details));
}

async function exchange<B>(req: HttpRequest, kind: BodyKind<B>): Promise<Answer<B> & { url: string }> {
  const retry = resolveRetry(req.retry);
  const dispatcher = req.dispatcher ?? defaultDispatcher();
  const method = methodOf(req);
  const op = req.op ?? method;
  // Built only when an error needs it: redacting the URL is a measurable cost per request.
  const detailsOf = (): ErrorDetails => ({ ...req.details, op, method, url: redactUrl(req.url) });
  for (let attempt = 0; ; attempt++) {
    if (req.signal?.aborted) throw abortError(req.signal, detailsOf());
    let res: Answer<B> & { url: string };
    try {
      res = await sendOnce(req, dispatcher, kind);
    } catch (err) {
      if (req.signal?.aborted) throw abortError(req.signal, detailsOf());
      if (err instanceof FerryError) throw err;
      const { code, temporary } = classifyNetworkError(err);
      // A response that does not parse on a reused connection (a server's stray HEAD body, see
      // STREAM) is worth one more try on a fresh connection for reads; writes are not resent.
      const unparsable = attempt === 0 && (method === 'GET' || method === 'HEAD') && isParserError(err);
      if ((temporary || unparsable) && attempt < retry.retries) {
        await retry.sleep(backoffDelay(attempt, retry), req.signal);
        continue;
      }
      const details = detailsOf();
      const target = describeTarget(details);
      throw new FerryError(code, `${op}${target ? ` ${target}` : ''}: ${(err as Error).message}`, {
        ...details,
        temporary,
        cause: err,
      });
    }
    if (!isRetryableStatus(res.statusCode)) return res;
    const retryAfter = parseRetryAfter(header(res.headers, 'retry-after'));
    const waitMs = retryAfter !== undefined ? retryAfter * 1000 : backoffDelay(attempt, retry);
    if (attempt < retry.retries && waitMs <= retry.maxDelayMs) {
      await kind.discard(res.body);
      await retry.sleep(waitMs, req.signal);
      continue;
    }
    const details = detailsOf();
    const errBody = await kind.errorBody(res.body, details);
    throw statusError(op, res.statusCode, { ...details, temporary: true, ...(retryAfter !== undefined ? { retryAfter } : {}) }, errBody);
  }
}
