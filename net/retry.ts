/** Retry policy: what is worth retrying, how long to wait, and abortable sleeps. */
import { FerryError, type ErrorCode, type ErrorDetails } from '../errors/index.js';

/** Options for retries with exponential backoff and jitter. */
export interface RetryOptions {
  /** Retries after the first attempt. @default 4 */
  readonly retries?: number;
  /** First backoff delay in milliseconds. @default 200 */
  readonly baseDelayMs?: number;
  /** Longest wait, including a server's Retry-After. @default 30_000 */
  readonly maxDelayMs?: number;
  /** Sleeps `ms`, rejecting when `signal` aborts; tests pass a fast one. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** RetryOptions with every default filled in. */
export interface ResolvedRetry {
  readonly retries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Resolves retry options, validating them with exact messages. */
export function resolveRetry(opts: RetryOptions = {}): ResolvedRetry {
  const retries = opts.retries ?? 4;
  const baseDelayMs = opts.baseDelayMs ?? 200;
  const maxDelayMs = opts.maxDelayMs ?? 30_000;
  if (!Number.isSafeInteger(retries) || retries < 0) {
    throw new FerryError('CONFIG_INVALID', `retry.retries must be a non-negative integer, got ${String(retries)}`);
  }
  if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0) {
    throw new FerryError('CONFIG_INVALID', `retry.baseDelayMs must be a non-negative number, got ${String(baseDelayMs)}`);
  }
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < baseDelayMs) {
    throw new FerryError('CONFIG_INVALID', `retry.maxDelayMs must be a number >= baseDelayMs, got ${String(maxDelayMs)}`);
  }
  return { retries, baseDelayMs, maxDelayMs, sleep: opts.sleep ?? sleep };
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped at maxDelayMs. */
export function backoffDelay(attempt: number, r: Pick<ResolvedRetry, 'baseDelayMs' | 'maxDelayMs'>): number {
  const exp = Math.min(r.maxDelayMs, r.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/** The ABORTED error for a signal, keeping its reason as the cause. */
export function abortError(signal: AbortSignal | undefined, details: ErrorDetails = {}): FerryError {
  const reason: unknown = signal?.reason;
  if (reason instanceof FerryError) return reason;
  return new FerryError('ABORTED', `${details.op ?? 'operation'} aborted`, { ...details, cause: reason });
}

/** Sleeps `ms` milliseconds; rejects with ABORTED as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Statuses worth retrying: request timeout, rate limit, server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/** Seconds to wait from a Retry-After value (delta-seconds or an HTTP date); undefined when absent or unparsable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.ceil((t - now) / 1000));
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const TLS_CODE_RE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/;

/** The system or undici error code of an error or of its cause chain. */
export function errorCodeOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== null && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR' && !code.startsWith('UND_ERR_ABORTED')) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Classifies a network-level failure as TIMEOUT, TLS or NETWORK, and whether a retry may help. */
export function classifyNetworkError(err: unknown): { code: ErrorCode; temporary: boolean } {
  const c = errorCodeOf(err);
  if (c !== undefined && TIMEOUT_CODES.has(c)) return { code: 'TIMEOUT', temporary: true };
  if (c !== undefined && TLS_CODE_RE.test(c)) return { code: 'TLS', temporary: false };
  if (c !== undefined && RETRYABLE_NETWORK_CODES.has(c)) return { code: 'NETWORK', temporary: true };
  return { code: 'NETWORK', temporary: false };
}

/** True when a failure while sending or reading is a reset, refusal or timeout that a retry may fix. */
export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof FerryError) return (err.code === 'NETWORK' || err.code === 'TIMEOUT') && err.temporary;
  return classifyNetworkError(err).temporary;
}
