/** Builds one registry client per upstream host from the configuration, with its TLS and credentials. */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { parseByteSize, parseDuration, resolveSecret, type Config, type RegistryConfig } from '../config/index.js';
import type { RetryOptions } from '../net/index.js';
import { registryApiHost } from '../oci/reference.js';
import { dockerConfigPath, dockerCredentials, RegistryClient, type Credentials, type RegistryAdvice, type TagListLimits } from '../registry/index.js';

/** Hook for every registry response (metrics, rate-limit tracking, request counting). */
export type ResponseHook = (info: { method: string; url: string; status: number; headers: Record<string, string | string[] | undefined> }) => void;

/** Options for a RegistryClients factory. */
export interface RegistryClientsOptions {
  readonly config: Config;
  readonly logger?: Logger;
  readonly retry?: RetryOptions;
  readonly onResponse?: ResponseHook;
  /**
   * Where Docker's stored credentials are looked up (DOCKER_CONFIG, HOME) and what credential
   * helpers run with (PATH). @default process.env
   */
  readonly env?: NodeJS.ProcessEnv;
  /** How long a Docker credential helper may take. @default DEFAULT_HELPER_TIMEOUT_MS */
  readonly helperTimeoutMs?: number;
}

/** Caches a RegistryClient per registry name. */
export class RegistryClients {
  private readonly clients = new Map<string, RegistryClient>();
  /** Stops credential helpers still running when the clients close. */
  private readonly closing = new AbortController();

  constructor(private readonly opts: RegistryClientsOptions) {}

  /** The configured entry for a registry name (docker.io matches registry-1.docker.io too). */
  settings(registry: string): RegistryConfig | undefined {
    const api = registryApiHost(registry);
    return this.opts.config.registries.find((r) => r.host === registry || r.host === api || registryApiHost(r.host) === api);
  }

  /** The client for a registry name such as docker.io or 127.0.0.1:5001. */
  get(registry: string): RegistryClient {
    let c = this.clients.get(registry);
    if (c) return c;
    const s = this.settings(registry);
    const api = registryApiHost(registry);
    const baseDir = dirname(this.opts.config.file);
    const lookup = {
      ...(this.opts.env ? { env: this.opts.env } : {}),
      ...(this.opts.helperTimeoutMs !== undefined ? { timeoutMs: this.opts.helperTimeoutMs } : {}),
      signal: this.closing.signal,
    };
    // Called once, when the registry first asks for credentials (the client caches the answer).
    const credentials = async (): Promise<Credentials | undefined> => {
      if (s?.username !== undefined && s.password !== undefined) {
        return {
          username: resolveSecret(s.username, `registries[${s.host}].username`, baseDir),
          password: resolveSecret(s.password, `registries[${s.host}].password`, baseDir),
          origin: `the registries entry for ${s.host} in ${this.opts.config.file}`,
        };
      }
      return (await dockerCredentials(registry, lookup)) ?? (api !== registry ? await dockerCredentials(api, lookup) : undefined);
    };
    c = new RegistryClient({
      host: api,
      advice: this.advice(registry, s),
      tls: s?.tls ?? 'verify',
      ...(s?.caFile ? { caFile: s.caFile } : {}),
      credentials,
      ...(s?.idleTimeout !== undefined ? { idleTimeoutMs: parseDuration(s.idleTimeout) } : {}),
      ...(s ? { tagListLimits: tagListLimits(s) } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
      ...(this.opts.onResponse ? { onResponse: this.opts.onResponse } : {}),
      userAgent: 'ferry/0.1',
    });
    this.clients.set(registry, c);
    return c;
  }

  /** What errors about `registry` tell the user to change, in the configuration's terms. */
  private advice(registry: string, s: RegistryConfig | undefined): RegistryAdvice {
    const file = this.opts.config.file;
    const entry = s ? `the registries entry for ${s.host} in ${file}` : `a registries entry for ${registry} in ${file}`;
    return {
      tls: {
        trustCa: `set caFile: in ${entry} to that CA's PEM certificate`,
        insecure: `tls: insecure in ${entry}`,
        plainHttp: `tls: plain-http in ${entry}`,
      },
      noCredentials:
        `none are set in ${entry} (username: and password:), and ${dockerConfigPath(this.opts.env ?? process.env)} ` +
        `holds none for ${registry} (docker login ${registry} stores them there)`,
    };
  }

  /** Closes every client's connection pool (after a reload or at shutdown). */
  async close(): Promise<void> {
    this.closing.abort();
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(all.map((c) => c.close()));
  }
}

/** The tag list limits a registry entry sets (the client's defaults for the rest). */
function tagListLimits(s: RegistryConfig): TagListLimits {
  return {
    ...(s.maxTagPages !== undefined ? { maxPages: s.maxTagPages } : {}),
    ...(s.maxTags !== undefined ? { maxTags: s.maxTags } : {}),
    ...(s.maxTagListBytes !== undefined ? { maxBytes: parseByteSize(s.maxTagListBytes) } : {}),
  };
}
