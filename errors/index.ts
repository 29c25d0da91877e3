/**
 * Ferry's one catalogue of errors: a base class with a stable `code`, the operation that
 * failed, the identifiers involved (registry, repository, digest, module@version, file)
 * and the cause. Tests assert on `code`; messages are for people.
 */

/** Every stable error code Ferry raises. */
export const ErrorCodes = [
  // usage and configuration
  'USAGE',
  'CONFIG_INVALID',
  'CONFIG_NOT_FOUND',
  'SECRET_UNRESOLVED',
  // network
  'NETWORK',
  'TIMEOUT',
  'TLS',
  'HTTP_STATUS',
  'RATE_LIMITED',
  'BODY_TOO_LARGE',
  'ABORTED',
  /** A `Link` page on another origin than the registry's. */
  'LINK_OFF_HOST',
  /** A token realm over a weaker transport than the registry's own (http for an https registry). */
  'REALM_INSECURE',
  /** A tag list past its configured pages, tags or bytes. */
  'TAG_LIST_LIMIT',
  /** A referrers list (API pages or a fallback tag index) that is malformed, or past its bounds. */
  'REFERRERS_INVALID',
  /** A tag whose image policy (`verify:`) requires a cosign signature that upstream does not have. */
  'SIGNATURE_MISSING',
  // registry / protocol
  'UNAUTHORIZED',
  'DENIED',
  'NOT_FOUND',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  /** A manifest format Ferry does not carry (Docker schema 1). */
  'MANIFEST_UNSUPPORTED',
  'BLOB_UNKNOWN',
  'UNSUPPORTED_MEDIA_TYPE',
  'REFERENCE_INVALID',
  'DIGEST_INVALID',
  'DIGEST_MISMATCH',
  'SIZE_MISMATCH',
  // go modules
  'MODULE_INVALID',
  'ZIP_INVALID',
  'GOMOD_INVALID',
  'VERSION_INVALID',
  'SUMDB_INVALID',
  'SUMDB_MISMATCH',
  'SUMDB_INCONSISTENT',
  // store
  'STORE_CORRUPT',
  'STORE_LOCKED',
  'STORE_IO',
  'STORE_NOT_FOUND',
  'EXPORT_BUSY',
  // bundles and import
  'BUNDLE_INVALID',
  'BUNDLE_IO',
  'SIGNATURE_INVALID',
  'CHAIN_BROKEN',
  'BUNDLE_CONFLICT',
  'REQUIRES_MISSING',
  'KEY_INVALID',
  // OCI image layout directories (import --oci-dir)
  /** A directory named as an OCI image layout that is not one (or not one Ferry can add to). */
  'LAYOUT_INVALID',
  /** Reading or writing a file of an OCI image layout failed. */
  'LAYOUT_IO',
  /** Another import is writing to the same OCI image layout. */
  'LAYOUT_BUSY',
  'INTERNAL',
] as const;

/** A stable error code. */
export type ErrorCode = (typeof ErrorCodes)[number];

/** The identifiers an error may carry; all optional, all safe to print (already redacted). */
export interface ErrorDetails {
  readonly op?: string;
  readonly registry?: string;
  readonly repository?: string;
  readonly reference?: string;
  readonly digest?: string;
  readonly module?: string;
  readonly version?: string;
  readonly file?: string;
  readonly url?: string;
  readonly method?: string;
  readonly status?: number;
  /** Error codes from a registry's JSON error body, e.g. MANIFEST_UNKNOWN. */
  readonly registryCodes?: readonly string[];
  /** True when retrying the same operation may succeed. */
  readonly temporary?: boolean;
  /** Seconds to wait before retrying, from Retry-After. */
  readonly retryAfter?: number;
  readonly cause?: unknown;
}

/** The base class of every error Ferry raises on purpose. */
export class FerryError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** The identifiers involved. */
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FerryError';
    this.code = code;
    this.details = details;
  }

  /** True when the failed operation may succeed if retried. */
  get temporary(): boolean {
    return this.details.temporary === true;
  }

  /** A plain object for JSON output and structured logs. */
  toJSON(): Record<string, unknown> {
    const { cause, ...rest } = this.details;
    const out: Record<string, unknown> = { code: this.code, message: this.message, ...rest };
    if (cause instanceof Error) out['cause'] = cause.message;
    return out;
  }
}

/** True when `err` is a FerryError, optionally with the given code. */
export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}

/** Wraps any thrown value as a FerryError, keeping FerryErrors as they are. */
export function toFerryError(err: unknown, code: ErrorCode = 'INTERNAL', details: ErrorDetails = {}): FerryError {
  if (err instanceof FerryError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new FerryError(code, message, { ...details, cause: err });
}

/** The message of any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
