/** Registry authentication: anonymous, Basic, and Bearer tokens cached per scope. */
import type { Dispatcher } from 'undici';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { readBody, redactUrl, request, statusError, type RetryOptions } from '../net/index.js';
import type { Challenge } from './challenge.js';

/** A username and password (or token as password) for a registry. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
  /**
   * Where they came from, for error messages (never their values), e.g. `"auths" in
   * /root/.docker/config.json` or `the registries entry for HOST in /etc/ferry/ferry.yaml`.
   */
  readonly origin?: string;
}

/** Credentials, or a function that resolves them when first needed (e.g. from a secret store). */
export type CredentialsSource = Credentials | (() => Promise<Credentials | undefined>);

/** Largest token response Ferry reads. */
const MAX_TOKEN_BODY = 1024 * 1024;
/** The token lifetime the distribution token spec assumes when expires_in is absent. */
const DEFAULT_EXPIRES_IN = 60;

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

/** What the authenticator needs from its client. */
export interface AuthenticatorOptions {
  readonly credentials?: CredentialsSource;
  readonly dispatcher: Dispatcher;
  readonly retry?: RetryOptions;
  readonly userAgent: string;
  readonly registry: string;
  /**
   * The registry is reached over https: its token realm must be too (credentials and tokens
   * never travel over a weaker transport than the registry's own). @default true
   */
  readonly secure?: boolean;
  readonly now: () => number;
  /** Where credentials would have come from, said in errors when none were sent (see RegistryAdvice). */
  readonly noCredentials?: string;
}

/** The `repository:NAME:ACTIONS` scope string. */
export function repositoryScope(repo: string, actions: readonly string[]): string {
  return `repository:${repo}:${actions.join(',')}`;
}

/** Basic authorization header value for credentials. */
export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

/**
 * Remembers how a registry wants to be authenticated (learnt from its 401 challenges) and
 * produces Authorization headers for a set of scopes. Tokens are cached per scope set
 * until `expires_in` minus a slack.
 */
export class Authenticator {
  private scheme: 'none' | 'basic' | 'bearer' = 'none';
  private bearer: { realm: string; service?: string } | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<string>>();
  private credsPromise: Promise<Credentials | undefined> | undefined;
  /** Recent tokens, kept after eviction too, so an error echoing an old token is still scrubbed. */
  private readonly recentTokens: string[] = [];

  constructor(private readonly opts: AuthenticatorOptions) {}

  /** The credentials, resolved once (a failing resolver is retried on the next call). */
  credentials(): Promise<Credentials | undefined> {
    const src = this.opts.credentials;
    if (src === undefined) return Promise.resolve(undefined);
    if (typeof src !== 'function') return Promise.resolve(src);
    this.credsPromise ??= src().catch((err: unknown) => {
      this.credsPromise = undefined;
      throw new FerryError('SECRET_UNRESOLVED', `credentials for ${this.opts.registry} could not be resolved: ${(err as Error).message}`, {
        registry: this.opts.registry,
        cause: err,
      });
    });
    return this.credsPromise;
  }

  /**
   * For an error message: whether the request that carried `authz` sent credentials (or got its
   * token with them), and where they came from; never what they are.
   */
  async credentialNote(authz: string | undefined): Promise<{ sent: boolean; text: string }> {
    const c = await this.credentials().catch(() => undefined);
    if (c && authz !== undefined) {
      return { sent: true, text: `credentials from ${c.origin ?? 'the client options'} were sent${authz.startsWith('Bearer ') ? ' (for the token)' : ''}` };
    }
    if (c) return { sent: false, text: `no credentials were sent: the registry did not ask for the ones from ${c.origin ?? 'the client options'}` };
    return { sent: false, text: `no credentials were sent${this.opts.noCredentials ? `: ${this.opts.noCredentials}` : ''}` };
  }

  /** Secrets that must never appear in messages (the password and cached tokens). */
  async secrets(): Promise<string[]> {
    const c = await this.credentials().catch(() => undefined);
    return [...(c ? [c.password, basicAuthorization(c).slice(6)] : []), ...this.recentTokens];
  }

  /** The Authorization header for these scopes, or undefined while anonymous access is assumed. */
  async authorization(scopes: readonly string[], signal: AbortSignal | undefined, details: ErrorDetails, op?: string): Promise<string | undefined> {
    if (this.scheme === 'basic') {
      const c = await this.credentials();
      return c ? basicAuthorization(c) : undefined;
    }
    // The operation joins the details only for a token request, not on every call.
    if (this.scheme === 'bearer') return `Bearer ${await this.token(scopes, signal, op !== undefined ? { ...details, op } : details)}`;
    return undefined;
  }

  /**
   * Learns from a 401. Returns true when a retry with new authorization may succeed:
   * first challenge seen, a Basic challenge we can answer, or a cached token to refresh
   * (once: `refreshed` says whether that already happened).
   */
  async onChallenge(challenges: readonly Challenge[], sent: string | undefined, scopes: string[], refreshed: boolean): Promise<boolean> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params['realm']);
    if (bearer) {
      const realm = bearer.params['realm'] as string;
      const service = bearer.params['service'];
      // A registry may name the scope it wants (e.g. the source repository of a mount).
      const wanted = bearer.params['scope'];
      if (wanted) for (const s of wanted.split(' ')) if (s && !scopes.includes(s)) scopes.push(s);
      const changed = this.scheme !== 'bearer' || this.bearer?.realm !== realm || this.bearer?.service !== service;
      this.scheme = 'bearer';
      this.bearer = { realm, ...(service !== undefined ? { service } : {}) };
      if (changed || sent === undefined || !sent.startsWith('Bearer ')) return true;
      if (refreshed) return false;
      this.tokens.delete(scopeKey(scopes));
      return true;
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic) {
      const c = await this.credentials();
      if (!c) return false;
      this.scheme = 'basic';
      return sent === undefined || !sent.startsWith('Basic ');
    }
    return false;
  }

  /** Forgets the token for these scopes (after the registry rejected it). */
  invalidate(scopes: readonly string[]): void {
    this.tokens.delete(scopeKey(scopes));
  }

  private async token(scopes: readonly string[], signal: AbortSignal | undefined, details: ErrorDetails): Promise<string> {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.opts.now()) return cached.token;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchToken(scopes, signal, details).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async fetchToken(scopes: readonly string[], signal: AbortSignal | undefined, details: ErrorDetails): Promise<string> {
    const b = this.bearer;
    if (!b) throw new FerryError('INTERNAL', 'token requested before a Bearer challenge was seen', details);
    let url: URL;
    try {
      url = new URL(b.realm);
    } catch {
      throw new FerryError('UNAUTHORIZED', `${details.op ?? 'auth'}: registry ${this.opts.registry} sent an invalid token realm "${redactUrl(b.realm)}"`, {
        ...details,
        temporary: false,
      });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new FerryError('UNAUTHORIZED', `${details.op ?? 'auth'}: registry ${this.opts.registry} sent a token realm that is not http(s): "${redactUrl(url)}"`, {
        ...details,
        temporary: false,
      });
    }
    // The realm may be another host (Docker Hub's is auth.docker.io) and gets the credentials,
    // but never over plain http when the registry itself speaks https.
    if (url.protocol === 'http:' && this.opts.secure !== false) {
      throw new FerryError(
        'REALM_INSECURE',
        `${details.op ?? 'auth'}: registry https://${this.opts.registry} asks for tokens at ${redactUrl(url)} over plain http; Ferry sends ` +
          'credentials and takes tokens only over a transport as strong as the registry\'s own, so nothing was sent there ' +
          '(the registry\'s token realm must be https)',
        { ...details, url: redactUrl(url), temporary: false },
      );
    }
    if (b.service !== undefined) url.searchParams.set('service', b.service);
    for (const s of [...scopes].sort()) url.searchParams.append('scope', s);
    const creds = await this.credentials();
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, accept: 'application/json' };
    if (creds) {
      url.searchParams.set('account', creds.username);
      headers['authorization'] = basicAuthorization(creds);
    }
    const tokenDetails: ErrorDetails = { ...details, url: redactUrl(url), method: 'GET' };
    const res = await request({
      url,
      headers,
      dispatcher: this.opts.dispatcher,
      ...(signal ? { signal } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
      op: details.op ?? 'token',
      details: tokenDetails,
    });
    const body = await readBody(res.body, MAX_TOKEN_BODY, tokenDetails);
    if (res.statusCode !== 200) {
      const err = statusError(details.op ?? 'token', res.statusCode, tokenDetails, body);
      const note = await this.credentialNote(creds ? 'Basic' : undefined);
      const rejected = note.sent && (res.statusCode === 401 || res.statusCode === 403) ? ' and rejected' : '';
      throw new FerryError(err.code, `${err.message} (token request: ${note.text}${rejected})`, err.details);
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new FerryError('UNAUTHORIZED', `${details.op ?? 'auth'}: token response from ${redactUrl(url)} is not JSON`, tokenDetails);
    }
    const token = typeof json['token'] === 'string' && json['token'] ? json['token'] : json['access_token'];
    if (typeof token !== 'string' || token === '') {
      throw new FerryError('UNAUTHORIZED', `${details.op ?? 'auth'}: token response from ${redactUrl(url)} has no token`, tokenDetails);
    }
    const rawExpires = json['expires_in'];
    const expiresIn = typeof rawExpires === 'number' && rawExpires > 0 ? rawExpires : DEFAULT_EXPIRES_IN;
    // Refresh a little early so a token never expires between our check and the registry's.
    const slack = Math.min(30, expiresIn / 4);
    this.recentTokens.push(token);
    if (this.recentTokens.length > 64) this.recentTokens.shift();
    this.tokens.set(scopeKey(scopes), { token, expiresAt: this.opts.now() + (expiresIn - slack) * 1000 });
    return token;
  }
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}
