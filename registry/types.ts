/** The registry client's options and results (client.ts implements them; transport.ts sends). */
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { HttpResponse, RetryOptions, TlsMode, TlsSettingNames } from '../net/index.js';
import type { Descriptor, Digest } from '../oci/index.js';
import type { CredentialsSource } from './auth.js';

/** What the onResponse hook sees of every registry response (for metrics and rate limits). */
export interface ResponseInfo {
  readonly method: string;
  /** Redacted. */
  readonly url: string;
  readonly status: number;
  readonly headers: HttpResponse['headers'];
}

/**
 * What the user can change about a client, in their own terms (configuration keys or command-line
 * flags): certificate errors and 401/403 answers then say what to do, not only what failed.
 */
export interface RegistryAdvice {
  /** @default the configuration's keys: caFile, tls: insecure, tls: plain-http */
  readonly tls?: TlsSettingNames;
  /** Said when no credentials were sent, e.g. where Ferry looked for them and how to set them. */
  readonly noCredentials?: string;
}

/** Options for a RegistryClient. */
export interface RegistryClientOptions {
  /** API host[:port], e.g. registry-1.docker.io or 127.0.0.1:5001. */
  readonly host: string;
  /** 'plain-http' speaks http://, everything else https://. @default 'verify' */
  readonly tls?: TlsMode;
  /** The only CA(s) to trust for this registry (ignored when `dispatcher` is given). */
  readonly caFile?: string;
  /** A dispatcher to share; otherwise the client creates (and closes) its own. */
  readonly dispatcher?: Dispatcher;
  /** Static credentials or a resolver called when first needed. */
  readonly credentials?: CredentialsSource;
  /** What errors tell the user to change (see RegistryAdvice). */
  readonly advice?: RegistryAdvice;
  readonly retry?: RetryOptions;
  /** @default 'ferry' */
  readonly userAgent?: string;
  readonly logger?: Logger;
  /** Called for every registry response, including retried ones and redirects (not token-server responses). */
  readonly onResponse?: (info: ResponseInfo) => void;
  /** Clock for token expiry; tests pass their own. @default Date.now */
  readonly now?: () => number;
  /** Bounds on a repository's tag list. @default DEFAULT_TAG_LIST_LIMITS */
  readonly tagListLimits?: TagListLimits;
  /**
   * Milliseconds of silence allowed while a response body arrives (ignored when `dispatcher` is
   * given); a blob download then resumes with Range. @default DEFAULT_IDLE_TIMEOUT_MS
   */
  readonly idleTimeoutMs?: number;
}

/** Options every call takes. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** What a manifest HEAD tells. */
export interface ManifestDescriptor {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
}

/** A fetched manifest: exact bytes and their digest. */
export interface ManifestResult extends ManifestDescriptor {
  readonly bytes: Buffer;
}

/** How blobPut got the blob there. */
export type BlobPutResult = 'exists' | 'mounted' | 'uploaded';

/** Options for blobPut. */
export interface BlobPutOptions extends CallOptions {
  /** A repository on the same registry to mount the blob from (cross-repository mount). */
  readonly mountFrom?: string;
  /** Upload in PATCH chunks of this many bytes instead of one PUT. */
  readonly chunkSize?: number;
}

/** Bounds on one repository's tag list: a registry can always link to one more page. */
export interface TagListLimits {
  /** Pages followed through `Link: rel="next"`. @default 10_000 */
  readonly maxPages?: number;
  /** Tags in all pages together. @default 100_000 */
  readonly maxTags?: number;
  /** Bytes of all page bodies together. @default 64 MiB */
  readonly maxBytes?: number;
}

/** The tag list bounds when none are configured. */
export const DEFAULT_TAG_LIST_LIMITS: Required<TagListLimits> = { maxPages: 10_000, maxTags: 100_000, maxBytes: 64 * 1024 * 1024 };

/** Pages of one referrers list followed through `Link`: a registry can always link to one more. */
export const MAX_REFERRERS_PAGES = 100;
/** Referrers of one subject read before the list is taken as hostile. */
export const MAX_REFERRERS = 1000;

/** Options for referrers. */
export interface ReferrersOptions extends CallOptions {
  /** Only referrers of this artifact type. */
  readonly artifactType?: string;
  /** Read the fallback tag when the API is absent. False: the caller knows the tag is not there. @default true */
  readonly fallback?: boolean;
}

/** The referrers of a subject and where they were found. */
export interface ReferrersResult {
  readonly descriptors: readonly Descriptor[];
  /** `api`: the registry's referrers API; `fallback`: the `sha256-<hex>` fallback tag (or none). */
  readonly via: 'api' | 'fallback';
  /** The digest of the fallback tag's index, when it was read. */
  readonly fallbackDigest?: Digest;
}
