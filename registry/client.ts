/** RegistryClient: the OCI distribution API, resource by resource; transport.ts authorizes, retries and scrubs its requests. */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { FerryError, isFerryError, type ErrorDetails } from '../errors/index.js';
import {
  TLS_MODES,
  backoffDelay,
  createDispatcher,
  discardBody,
  header,
  readBody,
  redactUrl,
  resolveRetry,
  statusError,
  type HttpResponse,
  type ResolvedRetry,
  type RetryOptions,
  type TlsSettingNames,
} from '../net/index.js';
import {
  MANIFEST_MEDIA_TYPES,
  MAX_MANIFEST_BYTES,
  schema1Error,
  isDigest,
  isManifestMediaType,
  isSchema1,
  isValidRepository,
  isValidTag,
  fallbackTag,
  parseReferrersIndex,
  sha256Digest,
  MediaType,
  type Descriptor,
  type Digest,
} from '../oci/index.js';
import { Authenticator, repositoryScope } from './auth.js';
import { resumableBlobStream } from './blob-reader.js';
import { RegistryTransport } from './transport.js';
import {
  DEFAULT_TAG_LIST_LIMITS,
  MAX_REFERRERS,
  MAX_REFERRERS_PAGES,
  type BlobPutOptions,
  type BlobPutResult,
  type CallOptions,
  type ManifestDescriptor,
  type ManifestResult,
  type ReferrersOptions,
  type ReferrersResult,
  type RegistryClientOptions,
  type TagListLimits,
} from './types.js';
import { fixedChunks, verified, withDigest } from './upload.js';

/** TLS advice in the configuration's terms when the caller gives none. */
const CONFIG_TLS_NAMES: TlsSettingNames = {
  trustCa: "set caFile: in the registry's entry under registries to that CA's PEM certificate",
  insecure: 'tls: insecure',
  plainHttp: 'tls: plain-http',
};

/** Largest single tag list page Ferry reads (within maxBytes). */
const MAX_TAGS_PAGE_BODY = 16 * 1024 * 1024;

function configError(msg: string): FerryError {
  return new FerryError('CONFIG_INVALID', `RegistryClient: ${msg}`);
}

/** The media type part of a Content-Type (no parameters). */
function mediaTypeOf(contentType: string | undefined): string | undefined {
  const mt = contentType?.split(';')[0]?.trim();
  return mt ? mt : undefined;
}

/** The `rel="next"` target of a Link header, if any. */
export function parseLinkNext(link: string | undefined): string | undefined {
  if (!link) return undefined;
  const re = /<([^>]*)>((?:\s*;\s*[^;,]+)*)/g;
  for (const m of link.matchAll(re)) {
    const params = m[2] ?? '';
    if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?/i.test(params)) return m[1];
  }
  return undefined;
}

/**
 * A client for one registry host speaking the OCI distribution API. Methods group by
 * resource (ping, tagList, manifestHead/Get/Put, blobHead/Get/Put). It never touches disk;
 * blob bodies are verified streams.
 */
export class RegistryClient {
  /** The API host[:port]. */
  readonly host: string;
  /** `http(s)://host`. */
  readonly baseUrl: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly retry: ResolvedRetry;
  private readonly retryOpts: RetryOptions;
  private readonly http: RegistryTransport;
  private readonly tagLimits: Required<TagListLimits>;
  private closed = false;
  private lastPush: { readonly repo: string; readonly scopes: readonly string[] } | undefined;
  private api: boolean | undefined;

  constructor(opts: RegistryClientOptions) {
    if (typeof opts !== 'object' || opts === null) throw configError('options must be an object');
    if (typeof opts.host !== 'string' || opts.host === '') throw configError('host must be a non-empty string');
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(opts.host)) {
      throw configError(`host must be host[:port] without a scheme or path, got "${opts.host}"`);
    }
    if (opts.tls !== undefined && !TLS_MODES.includes(opts.tls)) {
      throw configError(`tls must be one of ${TLS_MODES.join(', ')}, got "${String(opts.tls)}"`);
    }
    if (opts.caFile !== undefined && typeof opts.caFile !== 'string') throw configError('caFile must be a string');
    if (opts.idleTimeoutMs !== undefined && (!Number.isSafeInteger(opts.idleTimeoutMs) || opts.idleTimeoutMs <= 0)) {
      throw configError(`idleTimeoutMs must be a positive integer, got ${String(opts.idleTimeoutMs)}`);
    }
    const c = opts.credentials;
    if (c !== undefined && typeof c !== 'function') {
      if (typeof c !== 'object' || c === null || typeof c.username !== 'string' || typeof c.password !== 'string') {
        throw configError('credentials must be { username: string; password: string } or a function');
      }
    }
    if (opts.userAgent !== undefined && (typeof opts.userAgent !== 'string' || opts.userAgent === '')) {
      throw configError('userAgent must be a non-empty string');
    }
    if (opts.onResponse !== undefined && typeof opts.onResponse !== 'function') throw configError('onResponse must be a function');
    const limits = opts.tagListLimits ?? {};
    for (const k of ['maxPages', 'maxTags', 'maxBytes'] as const) {
      const v = limits[k];
      if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0)) throw configError(`tagListLimits.${k} must be a positive integer, got ${String(v)}`);
    }
    this.tagLimits = { ...DEFAULT_TAG_LIST_LIMITS, ...stripUndefined(limits) };
    this.host = opts.host;
    this.baseUrl = `${opts.tls === 'plain-http' ? 'http' : 'https'}://${opts.host}`;
    this.retryOpts = opts.retry ?? {};
    this.retry = resolveRetry(opts.retry);
    const userAgent = opts.userAgent ?? 'ferry';
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
      this.ownsDispatcher = false;
    } else {
      this.dispatcher = createDispatcher({
        ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
        ...(opts.caFile !== undefined ? { caFile: opts.caFile } : {}),
        ...(opts.idleTimeoutMs !== undefined ? { bodyTimeoutMs: opts.idleTimeoutMs } : {}),
      });
      this.ownsDispatcher = true;
    }
    const auth = new Authenticator({
      ...(opts.credentials !== undefined ? { credentials: opts.credentials } : {}),
      dispatcher: this.dispatcher,
      retry: this.retryOpts,
      userAgent,
      registry: this.host,
      secure: opts.tls !== 'plain-http',
      now: opts.now ?? Date.now,
      ...(opts.advice?.noCredentials !== undefined ? { noCredentials: opts.advice.noCredentials } : {}),
    });
    this.http = new RegistryTransport({
      host: this.host,
      dispatcher: this.dispatcher,
      auth,
      retry: this.retryOpts,
      userAgent,
      tlsNames: opts.advice?.tls ?? CONFIG_TLS_NAMES,
      logger: opts.logger,
      onResponse: opts.onResponse,
    });
  }

  /** Closes the dispatcher when this client created it. */
  async close(): Promise<void> {
    if (!this.ownsDispatcher || this.closed) return;
    this.closed = true;
    await this.dispatcher.close();
  }

  /** Checks that the host speaks the distribution API and that the credentials (if any) are accepted. */
  async ping(opts: CallOptions = {}): Promise<void> {
    const details = this.details({});
    const res = await this.http.send({ op: 'ping', method: 'GET', url: `${this.baseUrl}/v2/`, scopes: [], details, ...sig(opts) });
    if (res.statusCode === 200) {
      await discardBody(res.body);
      return;
    }
    throw await this.http.errorFrom('ping', res, details);
  }

  /**
   * Every tag of a repository, following `Link: <…>; rel="next"` pages on this registry's own
   * origin only (LINK_OFF_HOST for a page anywhere else: the registry's credentials never go
   * there), within the client's tag list limits (TAG_LIST_LIMIT past them).
   */
  async tagList(repo: string, opts: CallOptions & { readonly pageSize?: number } = {}): Promise<string[]> {
    const tags: string[] = [];
    for await (const page of this.tagPages(repo, opts)) for (const t of page) tags.push(t);
    return tags;
  }

  /**
   * The tag list page by page, as it arrives: each page is read, parsed and handed on, and only
   * a hash of each page URL (for the loop guard) is kept. Bounded by the client's tag list limits.
   */
  async *tagPages(repo: string, opts: CallOptions & { readonly pageSize?: number } = {}): AsyncGenerator<string[]> {
    this.checkRepo(repo);
    if (opts.pageSize !== undefined && (!Number.isSafeInteger(opts.pageSize) || opts.pageSize <= 0)) {
      throw configError(`tagList: pageSize must be a positive integer, got ${String(opts.pageSize)}`);
    }
    const details = this.details({ repository: repo, op: 'tagList' });
    const where = `tagList ${this.host}/${repo}`;
    const { maxPages, maxTags, maxBytes } = this.tagLimits;
    const limit = (what: string, key: string, value: number): FerryError =>
      new FerryError(
        'TAG_LIST_LIMIT',
        `${where}: the tag list is longer than ${value} ${what} (${key}); the registry may be linking pages without end. ` +
          `If the repository really is that large, raise ${key} on the registries entry for ${this.host}`,
        { ...details, temporary: false },
      );
    const origin = new URL(this.baseUrl).origin;
    let url: URL | undefined = new URL(`${this.baseUrl}/v2/${repo}/tags/list`);
    if (opts.pageSize !== undefined) url.searchParams.set('n', String(opts.pageSize));
    // Page URLs seen, as hashes: a hostile registry's Link URLs may each be as long as a header.
    const seen = new Set<string>();
    let tagCount = 0;
    let bytes = 0;
    while (url) {
      const key = createHash('sha256').update(url.href).digest('base64');
      if (seen.has(key)) {
        throw new FerryError('HTTP_STATUS', `${where}: the registry's Link pages loop at ${redactUrl(url)}`, { ...details, url: redactUrl(url) });
      }
      if (seen.size >= maxPages) throw limit('pages', 'maxTagPages', maxPages);
      seen.add(key);
      const res = await this.http.send({ op: 'tagList', method: 'GET', url, scopes: [repositoryScope(repo, ['pull'])], details, ...sig(opts) });
      if (res.statusCode !== 200) throw await this.http.errorFrom('tagList', res, details);
      const left = maxBytes - bytes;
      let body: Buffer;
      try {
        body = await readBody(res.body, Math.min(MAX_TAGS_PAGE_BODY, left), details);
      } catch (err) {
        if (isFerryError(err, 'BODY_TOO_LARGE') && left < MAX_TAGS_PAGE_BODY) throw limit('bytes', 'maxTagListBytes', maxBytes);
        throw err;
      }
      bytes += body.length;
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        throw new FerryError('HTTP_STATUS', `${where}: tag list is not JSON`, details);
      }
      const raw = (json as { tags?: unknown } | null)?.tags;
      // A repository without tags may answer `"tags": null`.
      const page = Array.isArray(raw) ? raw.filter((t): t is string => typeof t === 'string') : [];
      tagCount += page.length;
      if (tagCount > maxTags) throw limit('tags', 'maxTags', maxTags);
      const next = parseLinkNext(header(res.headers, 'link'));
      url = next === undefined ? undefined : this.nextPage(next, res.url, origin, where, details, 'tag page');
      yield page;
    }
  }

  /** The next page's URL (tags, referrers), only on the registry's own origin (scheme, host and port). */
  private nextPage(next: string, base: string, origin: string, where: string, details: ErrorDetails, what: string): URL {
    let u: URL;
    try {
      u = new URL(next, base);
    } catch {
      throw new FerryError('HTTP_STATUS', `${where}: the registry's Link header names no valid URL (${JSON.stringify(redactUrl(next))})`, details);
    }
    if (u.origin !== origin) {
      throw new FerryError(
        'LINK_OFF_HOST',
        `${where}: the registry's Link header sends the next ${what} to ${redactUrl(u)}, outside ${origin}; ` +
          `Ferry follows ${what}s only on the registry itself and never sends its credentials elsewhere`,
        { ...details, url: redactUrl(u), temporary: false },
      );
    }
    return u;
  }

  /**
   * Whether this registry answers the referrers API: undefined until a `referrers` call or the
   * PUT of a manifest with a `subject` found out (an OCI 1.1 registry answers 200 even for an
   * unknown subject, and `OCI-Subject` on such a PUT; one without the API 404, and no header).
   */
  get referrersApi(): boolean | undefined {
    return this.api;
  }

  /**
   * The referrers of a manifest: `GET /v2/<name>/referrers/<digest>` (distribution-spec 1.1),
   * following `Link: rel="next"` pages on this registry's origin only, within MAX_REFERRERS_PAGES
   * pages and MAX_REFERRERS entries (REFERRERS_INVALID past them or for a malformed list). Where
   * the API is absent (404, or an answer that is not an image index) the fallback tag
   * `sha256-<hex>` is read instead (none there: no referrers). `artifactType` filters, by the
   * registry when it says so in `OCI-Filters-Applied`, else here.
   */
  async referrers(repo: string, digest: Digest, opts: ReferrersOptions = {}): Promise<ReferrersResult> {
    this.checkRepo(repo);
    this.checkDigest(digest);
    const where = `referrers ${this.host}/${repo}@${digest}`;
    const details = this.details({ repository: repo, digest, op: 'referrers' });
    const keep = (ds: Descriptor[], filtered: boolean): Descriptor[] =>
      filtered || opts.artifactType === undefined ? ds : ds.filter((d) => d.artifactType === opts.artifactType);
    if (this.api !== false) {
      const origin = new URL(this.baseUrl).origin;
      let url: URL | undefined = new URL(`${this.baseUrl}/v2/${repo}/referrers/${digest}`);
      if (opts.artifactType !== undefined) url.searchParams.set('artifactType', opts.artifactType);
      const out: Descriptor[] = [];
      const seen = new Set<string>();
      let filtered = opts.artifactType !== undefined;
      while (url) {
        if (seen.has(url.href)) throw new FerryError('REFERRERS_INVALID', `${where}: the registry's Link pages loop at ${redactUrl(url)}`, { ...details, temporary: false });
        if (seen.size >= MAX_REFERRERS_PAGES) {
          throw new FerryError('REFERRERS_INVALID', `${where}: the referrers list runs past ${MAX_REFERRERS_PAGES} pages`, { ...details, temporary: false });
        }
        seen.add(url.href);
        const res = await this.http.send({
          op: 'referrers',
          method: 'GET',
          url,
          headers: { accept: MediaType.OciIndex },
          scopes: [repositoryScope(repo, ['pull'])],
          details,
          ...sig(opts),
        });
        const type = mediaTypeOf(header(res.headers, 'content-type'));
        // No API: distribution 2.x answers 404 for the unknown route; some proxies 200 with something else.
        if (seen.size === 1 && (res.statusCode === 404 || res.statusCode === 405 || (res.statusCode === 200 && type !== MediaType.OciIndex))) {
          await discardBody(res.body);
          this.api = false;
          break;
        }
        if (res.statusCode !== 200) throw await this.http.errorFrom('referrers', res, details);
        this.api = true;
        const body = await readBody(res.body, MAX_MANIFEST_BYTES, { ...details, url: redactUrl(res.url) });
        const page = parseReferrersIndex(body, where);
        if (header(res.headers, 'oci-filters-applied')?.split(',').some((f) => f.trim() === 'artifactType') !== true) filtered = false;
        out.push(...page);
        if (out.length > MAX_REFERRERS) {
          throw new FerryError('REFERRERS_INVALID', `${where}: more than ${MAX_REFERRERS} referrers`, { ...details, temporary: false });
        }
        const next = parseLinkNext(header(res.headers, 'link'));
        url = next === undefined ? undefined : this.nextPage(next, res.url, origin, where, details, 'referrers page');
      }
      if (this.api) return { descriptors: keep(out, filtered), via: 'api' };
    }
    if (opts.fallback === false) return { descriptors: [], via: 'fallback' };
    let index;
    try {
      index = await this.manifestGet(repo, fallbackTag(digest), opts);
    } catch (err) {
      if (isFerryError(err, 'MANIFEST_UNKNOWN') || (isFerryError(err) && err.details.status === 404)) return { descriptors: [], via: 'fallback' };
      throw err;
    }
    const ds = parseReferrersIndex(index.bytes, `${where} (fallback tag ${fallbackTag(digest)})`);
    if (ds.length > MAX_REFERRERS) throw new FerryError('REFERRERS_INVALID', `${where}: more than ${MAX_REFERRERS} referrers in the fallback tag`, { ...details, temporary: false });
    return { descriptors: keep(ds, false), via: 'fallback', fallbackDigest: index.digest };
  }

  /** Digest, media type and size of a manifest without its body; undefined when it does not exist. */
  async manifestHead(repo: string, ref: string, opts: CallOptions = {}): Promise<ManifestDescriptor | undefined> {
    this.checkRepo(repo);
    this.checkRef(ref);
    const details = this.details(refDetails(repo, ref));
    const res = await this.http.send({
      op: 'manifestHead',
      method: 'HEAD',
      url: this.manifestUrl(repo, ref),
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      scopes: [repositoryScope(repo, ['pull'])],
      details,
      ...sig(opts),
    });
    await discardBody(res.body);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.http.withCredentialNote(statusError('manifestHead', res.statusCode, { ...details, url: redactUrl(res.url), method: 'HEAD' }), res);
    const digest = header(res.headers, 'docker-content-digest');
    const mediaType = mediaTypeOf(header(res.headers, 'content-type'));
    const length = Number(header(res.headers, 'content-length'));
    if (isSchema1(mediaType)) throw schema1Error(`${this.host}/${repo}${refSuffix(ref)}`, { ...details, op: 'manifestHead' });
    if (!isDigest(digest) || mediaType === undefined || !isManifestMediaType(mediaType) || !Number.isSafeInteger(length)) {
      // Some registries omit Docker-Content-Digest on HEAD: the body is the only truth then.
      const m = await this.manifestGet(repo, ref, opts);
      return { digest: m.digest, mediaType: m.mediaType, size: m.size };
    }
    if (isDigest(ref) && digest !== ref) {
      throw new FerryError('DIGEST_MISMATCH', `manifestHead ${this.host}/${repo}@${ref}: registry reports digest ${digest}`, {
        ...details,
        op: 'manifestHead',
      });
    }
    return { digest, mediaType, size: length };
  }

  /** A manifest's exact bytes, verified against the digest reference and Docker-Content-Digest. */
  async manifestGet(repo: string, ref: string, opts: CallOptions = {}): Promise<ManifestResult> {
    this.checkRepo(repo);
    this.checkRef(ref);
    const details = this.details(refDetails(repo, ref));
    const res = await this.http.send({
      op: 'manifestGet',
      method: 'GET',
      url: this.manifestUrl(repo, ref),
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      scopes: [repositoryScope(repo, ['pull'])],
      details,
      ...sig(opts),
    });
    if (res.statusCode === 404) throw await this.http.errorFrom('manifestGet', res, details, 'MANIFEST_UNKNOWN');
    if (res.statusCode !== 200) throw await this.http.errorFrom('manifestGet', res, details);
    const readDetails = { ...details, op: 'manifestGet', url: redactUrl(res.url) };
    const declared = Number(header(res.headers, 'content-length'));
    if (Number.isSafeInteger(declared) && declared > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new FerryError('BODY_TOO_LARGE', `manifestGet ${this.host}/${repo}: manifest of ${declared} bytes exceeds ${MAX_MANIFEST_BYTES}`, readDetails);
    }
    const bytes = await readBody(res.body, MAX_MANIFEST_BYTES, readDetails);
    const contentType = mediaTypeOf(header(res.headers, 'content-type'));
    // Schema 1 before any digest check: its digest excludes its signatures, so a mismatch would
    // wrongly blame the registry. The body decides when the Content-Type is not a schema 2 type.
    if (isSchema1(contentType, contentType !== undefined && isManifestMediaType(contentType) ? undefined : bytes)) {
      throw schema1Error(`${this.host}/${repo}${refSuffix(ref)}`, { ...readDetails, op: 'manifestGet' });
    }
    const digest = sha256Digest(bytes);
    if (isDigest(ref) && digest !== ref) {
      throw new FerryError('DIGEST_MISMATCH', `manifestGet ${this.host}/${repo}@${ref}: received bytes have digest ${digest}`, readDetails);
    }
    const sent = header(res.headers, 'docker-content-digest');
    // Only sha256 can be compared; a registry reporting another algorithm is checked by the ref alone.
    if (sent !== undefined && sent.startsWith('sha256:') && sent !== digest) {
      throw new FerryError('DIGEST_MISMATCH', `manifestGet ${this.host}/${repo}:${ref}: Docker-Content-Digest ${sent} but received bytes have digest ${digest}`, readDetails);
    }
    let mediaType = contentType;
    if (mediaType === undefined || !isManifestMediaType(mediaType)) {
      const fromBody = bodyMediaType(bytes);
      if (fromBody !== undefined) mediaType = fromBody;
    }
    return { bytes, digest, mediaType: mediaType ?? 'application/octet-stream', size: bytes.length };
  }

  /** Uploads a manifest under a tag or digest; returns its digest. Push children before their index. */
  async manifestPut(repo: string, ref: string, bytes: Buffer, mediaType: string, opts: CallOptions = {}): Promise<Digest> {
    if (!Buffer.isBuffer(bytes)) throw configError('manifestPut: bytes must be a Buffer');
    if (typeof mediaType !== 'string' || mediaType === '') throw configError('manifestPut: mediaType must be a non-empty string');
    return this.putManifest(repo, ref, bytes, mediaType, sha256Digest(bytes), () => subjectOf(bytes), opts);
  }

  /**
   * A manifest body for several PUTs of the same bytes (the tags of one image): the client
   * copies the bytes and computes their digest and `subject` once, instead of once per PUT.
   */
  manifestBody(bytes: Buffer, mediaType: string): ManifestBody {
    if (!Buffer.isBuffer(bytes)) throw configError('manifestBody: bytes must be a Buffer');
    if (typeof mediaType !== 'string' || mediaType === '') throw configError('manifestBody: mediaType must be a non-empty string');
    return new ManifestBody(BODY_TOKEN, Buffer.from(bytes), mediaType);
  }

  /** Uploads a body made by manifestBody under a tag or digest; returns its digest. */
  async manifestPutBody(repo: string, ref: string, body: ManifestBody, opts: CallOptions = {}): Promise<Digest> {
    if (!(body instanceof ManifestBody)) throw configError('manifestPutBody: body must come from manifestBody');
    const subject = body.subject;
    return this.putManifest(repo, ref, bodyBytes(body), body.mediaType, body.digest, () => subject, opts);
  }

  /** The PUT itself, for bytes whose digest (and, on demand, subject) the client computed. */
  private async putManifest(repo: string, ref: string, bytes: Buffer, mediaType: string, digest: Digest, subjectOfBody: () => string | undefined, opts: CallOptions): Promise<Digest> {
    this.checkRepo(repo);
    this.checkRef(ref);
    // Written out (the keys in the order details({ ...refDetails(repo, ref), digest }) gives): once per tag moved.
    const details: ErrorDetails = isDigest(ref) ? { registry: this.host, repository: repo, digest, reference: ref } : { registry: this.host, repository: repo, reference: ref, digest };
    if (isDigest(ref) && ref !== digest) {
      throw new FerryError('DIGEST_MISMATCH', `manifestPut ${this.host}/${repo}@${ref}: bytes have digest ${digest}`, { ...details, op: 'manifestPut' });
    }
    const res = await this.http.send({
      op: 'manifestPut',
      method: 'PUT',
      url: this.manifestUrl(repo, ref),
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: this.pushScopes(repo),
      details,
      signal: opts.signal,
    });
    if (res.statusCode < 200 || res.statusCode > 299) throw await this.http.errorFrom('manifestPut', res, details);
    await discardBody(res.body);
    // distribution-spec 1.1: a registry with the referrers API answers the PUT of a manifest with
    // a `subject` with `OCI-Subject: <subject digest>`; one without the API does not.
    const subject = subjectOfBody();
    if (subject !== undefined) this.api = header(res.headers, 'oci-subject') !== undefined;
    const sent = header(res.headers, 'docker-content-digest');
    if (sent !== undefined && sent.startsWith('sha256:') && sent !== digest) {
      throw new FerryError('DIGEST_MISMATCH', `manifestPut ${this.host}/${repo}:${ref}: registry stored digest ${sent}, expected ${digest}`, {
        ...details,
        op: 'manifestPut',
      });
    }
    return digest;
  }

  /**
   * Deletes a manifest by tag or digest (`DELETE /v2/NAME/manifests/REF`, optional in the
   * distribution spec): `deleted` (202), `not-found` (404), or `unsupported` when the registry
   * refuses the method for this reference (405; CNCF distribution refuses tags, and everything
   * unless deletes are enabled). Any other answer throws.
   */
  async manifestDelete(repo: string, ref: string, opts: CallOptions = {}): Promise<'deleted' | 'not-found' | 'unsupported'> {
    this.checkRepo(repo);
    this.checkRef(ref);
    const details = this.details(refDetails(repo, ref));
    const res = await this.http.send({
      op: 'manifestDelete',
      method: 'DELETE',
      url: this.manifestUrl(repo, ref),
      scopes: [repositoryScope(repo, ['pull', 'push', 'delete'])],
      details,
      ...sig(opts),
    });
    if (res.statusCode === 202 || res.statusCode === 200) {
      await discardBody(res.body);
      return 'deleted';
    }
    if (res.statusCode === 404) {
      await discardBody(res.body);
      return 'not-found';
    }
    // CNCF distribution 2.8 answers a tag with 400 DIGEST_INVALID (it reads only digests there),
    // others with 405 or 400 UNSUPPORTED: for a tag, either means "delete the manifest instead".
    if (res.statusCode === 405 || (res.statusCode === 400 && !isDigest(ref))) {
      await discardBody(res.body);
      return 'unsupported';
    }
    throw await this.http.errorFrom('manifestDelete', res, details);
  }

  /** The size of a blob, or undefined when the repository does not have it. */
  async blobHead(repo: string, digest: Digest, opts: CallOptions = {}): Promise<{ size: number } | undefined> {
    this.checkRepo(repo);
    this.checkDigest(digest);
    return this.headBlob(repo, digest, [repositoryScope(repo, ['pull'])], opts.signal);
  }

  /**
   * A stream of the blob that errors with DIGEST_MISMATCH/SIZE_MISMATCH at the end instead of
   * ending cleanly. Follows redirects to storage (without Authorization across hosts) and
   * resumes with `Range` after a reset, up to the retry count. 404 → BLOB_UNKNOWN.
   * `verify: false` skips the hashing for a consumer that verifies digest and size itself.
   */
  async blobGet(repo: string, digest: Digest, opts: CallOptions & { readonly size?: number; readonly verify?: boolean } = {}): Promise<Readable> {
    this.checkRepo(repo);
    this.checkDigest(digest);
    if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) {
      throw configError(`blobGet: size must be a non-negative integer, got ${String(opts.size)}`);
    }
    const details = this.details({ repository: repo, digest });
    const open = async (offset: number): Promise<HttpResponse> => {
      const res = await this.http.send({
        op: 'blobGet',
        method: 'GET',
        url: this.blobUrl(repo, digest),
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        scopes: [repositoryScope(repo, ['pull'])],
        details,
        ...sig(opts),
      });
      if (res.statusCode === 200 || (offset > 0 && res.statusCode === 206)) return res;
      throw await this.http.errorFrom('blobGet', res, details, res.statusCode === 404 ? 'BLOB_UNKNOWN' : undefined);
    };
    const first = await open(0);
    return resumableBlobStream({
      digest,
      ...(opts.size !== undefined ? { size: opts.size } : {}),
      first,
      reopen: open,
      retry: this.retry,
      ...sig(opts),
      ...(opts.verify === false ? { verify: false } : {}),
      details: { ...details, op: 'blobGet' },
    });
  }

  /**
   * Makes sure the repository has the blob: HEAD first, then a cross-repository mount when
   * `mountFrom` is given, else a monolithic PUT (or PATCH chunks then PUT with `chunkSize`).
   * `body` is called for each upload attempt; its bytes are verified while they are sent.
   */
  async blobPut(repo: string, digest: Digest, size: number, body: () => Readable, opts: BlobPutOptions = {}): Promise<BlobPutResult> {
    this.checkRepo(repo);
    this.checkDigest(digest);
    if (!Number.isSafeInteger(size) || size < 0) throw configError(`blobPut: size must be a non-negative integer, got ${String(size)}`);
    if (typeof body !== 'function') throw configError('blobPut: body must be a function returning a Readable');
    if (opts.mountFrom !== undefined) this.checkRepo(opts.mountFrom);
    if (opts.chunkSize !== undefined && (!Number.isSafeInteger(opts.chunkSize) || opts.chunkSize <= 0)) {
      throw configError(`blobPut: chunkSize must be a positive integer, got ${String(opts.chunkSize)}`);
    }
    const scopes = [repositoryScope(repo, ['pull', 'push'])];
    if (opts.mountFrom !== undefined && opts.mountFrom !== repo) scopes.push(repositoryScope(opts.mountFrom, ['pull']));
    if (await this.headBlob(repo, digest, scopes, opts.signal)) return 'exists';
    const details = this.details({ repository: repo, digest });
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.uploadOnce(repo, digest, size, body, scopes, details, opts);
      } catch (err) {
        // An upload session cannot be trusted after a failure: start a new one from the POST.
        if (!isFerryError(err) || !err.temporary || attempt >= this.retry.retries || opts.signal?.aborted) throw err;
        const wait = err.details.retryAfter !== undefined ? err.details.retryAfter * 1000 : backoffDelay(attempt, this.retry);
        if (wait > this.retry.maxDelayMs) throw err;
        await this.retry.sleep(wait, opts.signal);
      }
    }
  }

  private async uploadOnce(
    repo: string,
    digest: Digest,
    size: number,
    body: () => Readable,
    scopes: readonly string[],
    details: ErrorDetails,
    opts: BlobPutOptions,
  ): Promise<BlobPutResult> {
    const once: RetryOptions = { ...this.retryOpts, retries: 0 };
    const post = new URL(`${this.baseUrl}/v2/${repo}/blobs/uploads/`);
    if (opts.mountFrom !== undefined && opts.mountFrom !== repo) {
      post.searchParams.set('mount', digest);
      post.searchParams.set('from', opts.mountFrom);
    }
    const started = await this.http.send({
      op: 'blobPut',
      method: 'POST',
      url: post,
      headers: { 'content-length': '0' },
      body: '',
      scopes,
      details,
      retry: once,
      ...sig(opts),
    });
    if (started.statusCode === 201) {
      await discardBody(started.body);
      return 'mounted';
    }
    if (started.statusCode !== 202) throw await this.http.errorFrom('blobPut', started, details);
    await discardBody(started.body);
    let location = this.uploadLocation(started, details);
    if (opts.chunkSize === undefined) {
      const res = await this.http.send({
        op: 'blobPut',
        method: 'PUT',
        url: withDigest(location, digest),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: () => verified(body(), digest, size, details),
        scopes,
        details,
        retry: once,
        ...sig(opts),
      });
      return this.finishUpload(res, digest, details);
    }
    const src = verified(body(), digest, size, details);
    let offset = 0;
    try {
      for await (const piece of fixedChunks(src, opts.chunkSize)) {
        const res = await this.http.send({
          op: 'blobPut',
          method: 'PATCH',
          url: location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(piece.length),
            // distribution-spec: Content-Range is `<start>-<end>` (inclusive), without a unit.
            'content-range': `${offset}-${offset + piece.length - 1}`,
          },
          body: piece,
          scopes,
          details,
          retry: once,
          ...sig(opts),
        });
        if (res.statusCode !== 202) throw await this.http.errorFrom('blobPut', res, details);
        await discardBody(res.body);
        location = this.uploadLocation(res, details);
        offset += piece.length;
      }
    } finally {
      src.destroy();
    }
    const res = await this.http.send({
      op: 'blobPut',
      method: 'PUT',
      url: withDigest(location, digest),
      headers: { 'content-length': '0' },
      body: '',
      scopes,
      details,
      retry: once,
      ...sig(opts),
    });
    return this.finishUpload(res, digest, details);
  }

  private async finishUpload(res: HttpResponse, digest: Digest, details: ErrorDetails): Promise<BlobPutResult> {
    if (res.statusCode !== 201 && res.statusCode !== 204 && res.statusCode !== 200) throw await this.http.errorFrom('blobPut', res, details);
    await discardBody(res.body);
    const sent = header(res.headers, 'docker-content-digest');
    if (sent !== undefined && sent.startsWith('sha256:') && sent !== digest) {
      throw new FerryError('DIGEST_MISMATCH', `blobPut ${this.host}/${details.repository ?? ''}: registry stored ${sent}, expected ${digest}`, {
        ...details,
        op: 'blobPut',
      });
    }
    return 'uploaded';
  }

  private uploadLocation(res: HttpResponse, details: ErrorDetails): string {
    const loc = header(res.headers, 'location');
    if (!loc) {
      throw new FerryError('HTTP_STATUS', `blobPut ${this.host}/${details.repository ?? ''}: upload response ${res.statusCode} has no Location`, {
        ...details,
        op: 'blobPut',
        status: res.statusCode,
        url: redactUrl(res.url),
      });
    }
    // Location may be relative to the request, and may carry its own query (distribution's _state).
    return new URL(loc, res.url).href;
  }

  private async headBlob(repo: string, digest: Digest, scopes: readonly string[], signal: AbortSignal | undefined): Promise<{ size: number } | undefined> {
    const details = this.details({ repository: repo, digest });
    const res = await this.http.send({
      op: 'blobHead',
      method: 'HEAD',
      url: this.blobUrl(repo, digest),
      scopes,
      details,
      ...(signal ? { signal } : {}),
    });
    await discardBody(res.body);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.http.withCredentialNote(statusError('blobHead', res.statusCode, { ...details, url: redactUrl(res.url), method: 'HEAD' }), res);
    const size = Number(header(res.headers, 'content-length'));
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new FerryError('HTTP_STATUS', `blobHead ${this.host}/${repo}@${digest}: no valid Content-Length`, { ...details, op: 'blobHead', status: 200 });
    }
    return { size };
  }

  /** The scopes of a push to `repo`, kept for the last repository: the tags of an import PUT to one repository after another. */
  private pushScopes(repo: string): readonly string[] {
    if (this.lastPush?.repo !== repo) this.lastPush = { repo, scopes: [repositoryScope(repo, ['pull', 'push'])] };
    return this.lastPush.scopes;
  }

  private details(d: ErrorDetails): ErrorDetails {
    return { registry: this.host, ...d };
  }

  private manifestUrl(repo: string, ref: string): string {
    return `${this.baseUrl}/v2/${repo}/manifests/${ref}`;
  }

  private blobUrl(repo: string, digest: Digest): string {
    return `${this.baseUrl}/v2/${repo}/blobs/${digest}`;
  }

  private checkRepo(repo: string): void {
    if (typeof repo !== 'string' || !isValidRepository(repo)) {
      throw new FerryError('REFERENCE_INVALID', `"${String(repo)}" is not a valid repository name`, { registry: this.host, repository: String(repo) });
    }
  }

  private checkRef(ref: string): void {
    if (typeof ref !== 'string' || !(isDigest(ref) || isValidTag(ref))) {
      throw new FerryError('REFERENCE_INVALID', `"${String(ref)}" is neither a tag nor a sha256 digest`, { registry: this.host, reference: String(ref) });
    }
  }

  private checkDigest(d: string): void {
    if (!isDigest(d)) throw new FerryError('DIGEST_INVALID', `"${String(d)}" is not a sha256 digest`, { registry: this.host, digest: String(d) });
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function sig(opts: CallOptions): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {};
}

/** `@sha256:…` or `:tag`, as a reference is written after its repository. */
function refSuffix(ref: string): string {
  return isDigest(ref) ? `@${ref}` : `:${ref}`;
}

function refDetails(repo: string, ref: string): ErrorDetails {
  return isDigest(ref) ? { repository: repo, digest: ref, reference: ref } : { repository: repo, reference: ref };
}

/** Only RegistryClient.manifestBody makes a ManifestBody. */
const BODY_TOKEN = Symbol('ManifestBody');
/** The bytes of each ManifestBody: the client's own copy, out of reach of the caller. */
const BODY_BYTES = new WeakMap<ManifestBody, Buffer>();

function bodyBytes(body: ManifestBody): Buffer {
  const b = BODY_BYTES.get(body);
  if (b === undefined) throw configError('manifestPutBody: body must come from manifestBody');
  return b;
}

/**
 * A manifest body made by RegistryClient.manifestBody for several PUTs of the same bytes: the
 * client's own copy of them, with the digest and `subject` it computed from that copy.
 */
export class ManifestBody {
  /** The sha256 digest of the bytes. */
  readonly digest: Digest;
  readonly mediaType: string;
  /** The `subject.digest` the body names, if any. */
  readonly subject: string | undefined;
  /** Length of the bytes. */
  readonly size: number;

  /** @internal made by RegistryClient.manifestBody */
  constructor(token: symbol, bytes: Buffer, mediaType: string) {
    if (token !== BODY_TOKEN) throw configError('ManifestBody: made by RegistryClient.manifestBody only');
    this.digest = sha256Digest(bytes);
    this.mediaType = mediaType;
    this.subject = subjectOf(bytes);
    this.size = bytes.length;
    BODY_BYTES.set(this, bytes);
  }
}

/** The `subject.digest` a manifest body names, if any (unparsable bodies name none). */
function subjectOf(bytes: Buffer): string | undefined {
  try {
    const d = (JSON.parse(bytes.toString('utf8')) as { subject?: { digest?: unknown } } | null)?.subject?.digest;
    return typeof d === 'string' ? d : undefined;
  } catch {
    return undefined;
  }
}

function bodyMediaType(bytes: Buffer): string | undefined {
  try {
    const mt = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    return typeof mt === 'string' ? mt : undefined;
  } catch {
    return undefined;
  }
}
