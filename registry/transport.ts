/**
 * One registry host's HTTP exchange: the Authorization each request carries (answering 401
 * challenges, refreshing a token once), retries through net/, the response hook, and errors that
 * say which credentials were sent (never their values) and carry no secret.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import {
  readErrorBody,
  header,
  redactSecrets,
  redactUrl,
  request,
  statusError,
  tlsAdvice,
  withAdvice,
  type HttpMethod,
  type HttpResponse,
  type RetryOptions,
  type TlsSettingNames,
} from '../net/index.js';
import type { Authenticator } from './auth.js';
import { parseWwwAuthenticate } from './challenge.js';
import type { ResponseInfo } from './types.js';

/** One request as the client asks for it. */
export interface SendSpec {
  readonly op: string;
  readonly method: HttpMethod;
  readonly url: string | URL;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string | (() => Readable);
  readonly scopes: readonly string[];
  readonly signal?: AbortSignal;
  readonly details: ErrorDetails;
  readonly retry?: RetryOptions;
  readonly followRedirects?: boolean;
}

/** What a RegistryTransport needs; the client validates its own options and builds these. */
export interface RegistryTransportOptions {
  /** The API host[:port], for TLS advice. */
  readonly host: string;
  readonly dispatcher: Dispatcher;
  readonly auth: Authenticator;
  readonly retry: RetryOptions;
  readonly userAgent: string;
  readonly tlsNames: TlsSettingNames;
  readonly logger?: Logger | undefined;
  readonly onResponse?: ((info: ResponseInfo) => void) | undefined;
}

/** Sends a registry client's requests: authorization, retries, response hook, scrubbed errors. */
export class RegistryTransport {
  private readonly host: string;
  private readonly dispatcher: Dispatcher;
  private readonly auth: Authenticator;
  private readonly retryOpts: RetryOptions;
  private readonly userAgent: string;
  private readonly tlsNames: TlsSettingNames;
  private readonly logger: Logger | undefined;
  private readonly onResponse: ((info: ResponseInfo) => void) | undefined;
  /** The Authorization header each response was requested with, for the note a 401/403 error carries. */
  private readonly sentWith = new WeakMap<HttpResponse, string>();

  constructor(o: RegistryTransportOptions) {
    this.host = o.host;
    this.dispatcher = o.dispatcher;
    this.auth = o.auth;
    this.retryOpts = o.retry;
    this.userAgent = o.userAgent;
    this.tlsNames = o.tlsNames;
    this.logger = o.logger;
    this.onResponse = o.onResponse;
  }

  /** Sends one request with authorization, answering 401 challenges (and refreshing a token once). */
  async send(spec: SendSpec): Promise<HttpResponse> {
    // Copied only when a challenge adds to them: most requests send the caller's list as it is.
    let scopes: readonly string[] = spec.scopes;
    let refreshed = false;
    for (let round = 0; ; round++) {
      let res: HttpResponse;
      let authz: string | undefined;
      try {
        authz = await this.auth.authorization(scopes, spec.signal, spec.details, spec.op);
        const headers: Record<string, string> = { 'user-agent': this.userAgent };
        if (spec.headers) for (const k in spec.headers) headers[k] = spec.headers[k]!;
        if (authz !== undefined) headers['authorization'] = authz;
        // One object of a fixed shape, no spreads: this runs once per request (tens of thousands per import).
        res = await request({
          url: spec.url,
          method: spec.method,
          headers,
          dispatcher: this.dispatcher,
          retry: spec.retry ?? this.retryOpts,
          op: spec.op,
          details: spec.details,
          body: spec.body,
          signal: spec.signal,
          followRedirects: spec.followRedirects,
          // Only when someone looks: logging or the hook (redacting the URL costs a parse per request).
          onResponse: this.observing() ? (o) => this.observe(spec.op, o.method, o.url, o.statusCode, o.headers) : undefined,
        });
      } catch (err) {
        throw await this.scrub(withAdvice(err, tlsAdvice(err, this.host, this.tlsNames)));
      }
      if (authz !== undefined) this.sentWith.set(res, authz);
      if (res.statusCode !== 401) return res;
      const safeUrl = redactUrl(res.url);
      const body = await readErrorBody(res.body, spec.details);
      const challenges = parseWwwAuthenticate(header(res.headers, 'www-authenticate'));
      const more = [...scopes];
      const retry = round < 3 && (await this.auth.onChallenge(challenges, authz, more, refreshed));
      scopes = more;
      if (retry) {
        if (authz?.startsWith('Bearer ')) refreshed = true;
        continue;
      }
      const err = statusError(spec.op, 401, { ...spec.details, url: safeUrl, method: spec.method, temporary: false }, body);
      throw await this.scrub(await this.withCredentialNote(new FerryError('UNAUTHORIZED', err.message, err.details), res));
    }
  }

  /** True when responses are logged (debug) or handed to a hook. */
  private observing(): boolean {
    return this.onResponse !== undefined || this.logger?.isLevelEnabled('debug') === true;
  }

  /** Logs a response and hands it to the onResponse hook (a throwing hook must not break the request). */
  private observe(op: string, method: string, url: string, status: number, headers: HttpResponse['headers']): void {
    // Redacting parses the URL: a cost per request, paid only when someone looks.
    if (!this.onResponse && this.logger?.isLevelEnabled('debug') !== true) return;
    const safeUrl = redactUrl(url);
    this.logger?.debug({ op, method, url: safeUrl, status }, 'registry response');
    if (!this.onResponse) return;
    try {
      this.onResponse({ method, url: safeUrl, status, headers });
    } catch (err) {
      this.logger?.warn({ op, err: (err as Error).message }, 'onResponse hook failed');
    }
  }

  /** The error for an unexpected response (reads a bounded part of its body for registry codes). */
  async errorFrom(op: string, res: HttpResponse, details: ErrorDetails, force?: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'): Promise<FerryError> {
    const body = await readErrorBody(res.body, details);
    const err = statusError(op, res.statusCode, { ...details, url: redactUrl(res.url) }, body);
    const out = force !== undefined && err.code !== force ? new FerryError(force, err.message, err.details) : err;
    return (await this.scrub(await this.withCredentialNote(out, res))) as FerryError;
  }

  /**
   * A 401 or 403 error with what was sent: credentials and where they came from (config,
   * Docker's config.json, a credential helper), or none and where Ferry looked; never their values.
   */
  async withCredentialNote(err: FerryError, res: HttpResponse): Promise<FerryError> {
    if (res.statusCode !== 401 && res.statusCode !== 403) return err;
    const note = await this.auth.credentialNote(this.sentWith.get(res));
    const outcome = !note.sent ? '' : res.statusCode === 401 ? ' and rejected' : `, but the account they belong to may not ${err.details.op === 'manifestPut' || err.details.op === 'blobPut' ? 'push to' : 'pull from'} this repository`;
    return new FerryError(err.code, `${err.message} (${note.text}${outcome})`, err.details);
  }

  /** Makes sure no password or token survives in an error message. */
  private async scrub(err: unknown): Promise<unknown> {
    if (err instanceof FerryError && err.code === 'ABORTED') return err;
    const secrets = await this.auth.secrets();
    if (!(err instanceof Error)) return err;
    const clean = redactSecrets(err.message, secrets);
    if (clean === err.message) return err;
    if (err instanceof FerryError) return new FerryError(err.code, clean, { ...err.details, cause: undefined });
    return new Error(clean);
  }
}
