/** undici dispatchers: one per upstream, with the TLS policy, CA and proxy settings it needs. */
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { Agent, EnvHttpProxyAgent } from './undici.js';
import { FerryError } from '../errors/index.js';

/** How to treat TLS: verify against the system (or given) CAs, skip verification, or speak plain HTTP. */
export type TlsMode = 'verify' | 'insecure' | 'plain-http';

/** The TLS modes, for validation messages. */
export const TLS_MODES: readonly TlsMode[] = ['verify', 'insecure', 'plain-http'];

/** Options for createDispatcher. */
export interface DispatcherOptions {
  /** @default 'verify' */
  readonly tls?: TlsMode;
  /** A PEM file holding the only CA(s) to trust for this upstream. */
  readonly caFile?: string;
  /** PEM CA certificate(s) given inline; like caFile, replaces the system CAs. */
  readonly ca?: string | Buffer;
  /** Most connections per origin. @default undefined (undici: unlimited) */
  readonly connections?: number;
  /** Milliseconds to establish a connection. @default 30_000 */
  readonly connectTimeoutMs?: number;
  /** Milliseconds to wait for response headers. @default 300_000 */
  readonly headersTimeoutMs?: number;
  /** Milliseconds of silence allowed while reading a body. @default DEFAULT_IDLE_TIMEOUT_MS */
  readonly bodyTimeoutMs?: number;
}

/**
 * Silence allowed while a body arrives, by default: long enough for any live upstream, short
 * enough that a body stalled with its connection open is given up (and resumed, where the
 * caller can) in tens of seconds rather than minutes.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

function checkPositiveInt(v: number | undefined, name: string): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0)) {
    throw new FerryError('CONFIG_INVALID', `createDispatcher: ${name} must be a positive integer, got ${String(v)}`);
  }
}

/**
 * An undici dispatcher for one upstream: trusts only `caFile`/`ca` when given, skips
 * verification for 'insecure', and honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY
 * (undici EnvHttpProxyAgent) as they are set when it is created.
 */
export function createDispatcher(opts: DispatcherOptions = {}): Dispatcher {
  const tls = opts.tls ?? 'verify';
  if (!TLS_MODES.includes(tls)) {
    throw new FerryError('CONFIG_INVALID', `createDispatcher: tls must be one of ${TLS_MODES.join(', ')}, got "${String(tls)}"`);
  }
  if (tls === 'insecure' && (opts.caFile !== undefined || opts.ca !== undefined)) {
    throw new FerryError('CONFIG_INVALID', `createDispatcher: caFile/ca cannot be combined with tls "insecure"`);
  }
  checkPositiveInt(opts.connections, 'connections');
  checkPositiveInt(opts.connectTimeoutMs, 'connectTimeoutMs');
  checkPositiveInt(opts.headersTimeoutMs, 'headersTimeoutMs');
  checkPositiveInt(opts.bodyTimeoutMs, 'bodyTimeoutMs');
  let ca: string | Buffer | undefined = opts.ca;
  if (opts.caFile !== undefined) {
    try {
      ca = readFileSync(opts.caFile);
    } catch (err) {
      throw new FerryError('CONFIG_INVALID', `createDispatcher: cannot read caFile ${opts.caFile}: ${(err as Error).message}`, {
        file: opts.caFile,
        cause: err,
      });
    }
  }
  const tlsOpts: { ca?: string | Buffer; rejectUnauthorized?: boolean; timeout?: number } = {};
  if (ca !== undefined) tlsOpts.ca = ca;
  if (tls === 'insecure') tlsOpts.rejectUnauthorized = false;
  tlsOpts.timeout = opts.connectTimeoutMs ?? 30_000;
  const agentOpts = {
    connect: tlsOpts,
    ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
    headersTimeout: opts.headersTimeoutMs ?? 300_000,
    bodyTimeout: opts.bodyTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  };
  // With no proxy in the environment, EnvHttpProxyAgent sends everything through one plain Agent
  // anyway, after parsing each request's origin and reading NO_PROXY from the environment again:
  // a cost per request worth skipping when a module sync makes thousands.
  if (!proxyInEnvironment()) return new Agent(agentOpts);
  // `connect` applies to direct connections, `requestTls` to the TLS session tunnelled through a proxy.
  return new EnvHttpProxyAgent({ ...agentOpts, requestTls: tlsOpts });
}

/** True when HTTP_PROXY or HTTPS_PROXY (either case) is set, as EnvHttpProxyAgent reads them. */
function proxyInEnvironment(): boolean {
  const e = process.env;
  return Boolean(e.http_proxy ?? e.HTTP_PROXY) || Boolean(e.https_proxy ?? e.HTTPS_PROXY);
}

let shared: Dispatcher | undefined;

/** A process-wide default dispatcher (verify TLS, proxy from the environment), created on first use. */
export function defaultDispatcher(): Dispatcher {
  shared ??= createDispatcher();
  return shared;
}
