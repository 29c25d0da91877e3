/** FerryErrors for unexpected HTTP statuses, with the registry's own error codes when it sent them. */
import { FerryError, type ErrorCode, type ErrorDetails } from '../errors/index.js';

/** One entry of an OCI distribution error body: `{"errors":[{"code","message","detail"}]}`. */
export interface RegistryErrorEntry {
  readonly code: string;
  readonly message?: string;
}

/** Parses a registry (or generic JSON) error body; returns [] when it is not one. */
export function parseErrorBody(body: Buffer | undefined): RegistryErrorEntry[] {
  if (!body || body.length === 0) return [];
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  if (typeof json !== 'object' || json === null) return [];
  const errs = (json as { errors?: unknown }).errors;
  if (Array.isArray(errs)) {
    const out: RegistryErrorEntry[] = [];
    for (const e of errs) {
      if (typeof e !== 'object' || e === null) continue;
      const code = (e as { code?: unknown }).code;
      const message = (e as { message?: unknown }).message;
      if (typeof code === 'string') out.push({ code, ...(typeof message === 'string' ? { message } : {}) });
    }
    return out;
  }
  // Token servers and some proxies answer {"error":"...","error_description":"..."} or {"code":..,"message":..}.
  const o = json as Record<string, unknown>;
  const code = typeof o['code'] === 'string' ? o['code'] : typeof o['error'] === 'string' ? o['error'] : undefined;
  const message =
    typeof o['message'] === 'string' ? o['message'] : typeof o['error_description'] === 'string' ? o['error_description'] : undefined;
  return code !== undefined ? [{ code, ...(message !== undefined ? { message } : {}) }] : [];
}

const REGISTRY_CODE_MAP: Record<string, ErrorCode> = {
  UNAUTHORIZED: 'UNAUTHORIZED',
  DENIED: 'DENIED',
  MANIFEST_UNKNOWN: 'MANIFEST_UNKNOWN',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
  MANIFEST_BLOB_UNKNOWN: 'MANIFEST_INVALID',
  BLOB_UNKNOWN: 'BLOB_UNKNOWN',
  NAME_UNKNOWN: 'NOT_FOUND',
  DIGEST_INVALID: 'DIGEST_INVALID',
  NAME_INVALID: 'REFERENCE_INVALID',
  TAG_INVALID: 'REFERENCE_INVALID',
  SIZE_INVALID: 'SIZE_MISMATCH',
  TOOMANYREQUESTS: 'RATE_LIMITED',
};

/** The Ferry code for a status: by the registry's error code when it is known, else by the status. */
function codeFor(status: number, registryCodes: readonly string[]): ErrorCode {
  // Retryable statuses keep their own codes whatever the body says, so callers can tell them apart.
  if (status === 429) return 'RATE_LIMITED';
  if (status === 408 || status >= 500) return 'HTTP_STATUS';
  for (const c of registryCodes) {
    const mapped = REGISTRY_CODE_MAP[c.toUpperCase()];
    if (mapped) return mapped;
  }
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 404) return 'NOT_FOUND';
  return 'HTTP_STATUS';
}

/** Describes what was being fetched, from the identifiers at hand. */
export function describeTarget(d: ErrorDetails): string {
  const parts: string[] = [];
  if (d.registry !== undefined || d.repository !== undefined) {
    let s = [d.registry, d.repository].filter((x) => x !== undefined).join('/');
    if (d.digest !== undefined) s += `@${d.digest}`;
    else if (d.reference !== undefined) s += `:${d.reference}`;
    parts.push(s);
  } else if (d.module !== undefined) {
    parts.push(d.version !== undefined ? `${d.module}@${d.version}` : d.module);
  }
  if (d.url !== undefined) parts.push(`(${d.method ? `${d.method} ` : ''}${d.url})`);
  return parts.join(' ');
}

/**
 * FerryError for an unexpected status, parsing a registry/JSON error body's codes when given.
 * `details.url` must already be redacted.
 */
export function statusError(op: string, status: number, details: ErrorDetails = {}, body?: Buffer): FerryError {
  const entries = parseErrorBody(body);
  const registryCodes = entries.map((e) => e.code);
  const code = codeFor(status, registryCodes);
  const temporary = details.temporary ?? (status === 408 || status === 429 || (status >= 500 && status <= 599));
  const target = describeTarget(details);
  const reason = entries.length
    ? `: ${entries.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ')}`
    : '';
  const message = `${op}${target ? ` ${target}` : ''}: HTTP ${status}${reason}`;
  return new FerryError(code, message, {
    ...details,
    op,
    status,
    temporary,
    ...(registryCodes.length ? { registryCodes } : {}),
  });
}

/** How the user sets TLS for one upstream, in their own terms: the advice on a certificate error names these. */
export interface TlsSettingNames {
  /** How to trust a private CA, e.g. `set caFile: in the registries entry for HOST to that CA's PEM certificate`. */
  readonly trustCa: string;
  /** Skipping verification, e.g. `tls: insecure` or `--insecure`. */
  readonly insecure: string;
  /** Plain HTTP, e.g. `tls: plain-http` or `--plain-http`. */
  readonly plainHttp: string;
}

/** Chain errors a CA the user names can fix (OpenSSL's verify codes as Node reports them). */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_CHAIN_TOO_LONG',
]);

/** The system or OpenSSL code of an error or of its causes. */
function causeCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== null && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && !(e instanceof FerryError)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * What to do about a TLS failure (a FerryError with code TLS) talking to `host`, by what failed:
 * a certificate of a CA this host does not trust, an expired one, one for other names, or an
 * upstream that does not speak TLS at all. Undefined for any other error.
 */
export function tlsAdvice(err: unknown, host: string, names: TlsSettingNames): string | undefined {
  if (!(err instanceof FerryError) || err.code !== 'TLS') return undefined;
  const code = causeCode(err);
  const skip = `${names.insecure} skips verification altogether (anyone on the path could then pose as ${host})`;
  if (code !== undefined && UNTRUSTED_CODES.has(code)) {
    return `the certificate of ${host} is not signed by a CA this host trusts (${code}): if a private CA signed it, ${names.trustCa} (trusted for ${host} alone); ${skip}`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `the certificate of ${host} is outside its validity period (${code}; check this host's clock): it must be renewed; ${skip}`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the certificate of ${host} is issued for other names (${code}): reach it by a name the certificate lists; ${skip}`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO') {
    return `${host} did not answer in TLS (${code}): if it speaks plain HTTP, set ${names.plainHttp}`;
  }
  return `TLS with ${host} failed${code ? ` (${code})` : ''}: if its certificate comes from a private CA, ${names.trustCa}; ${skip}`;
}

/** `err` with `advice` appended to its message (same code and details), or `err` when there is none. */
export function withAdvice<E>(err: E, advice: string | undefined): E | FerryError {
  if (advice === undefined || !(err instanceof FerryError)) return err;
  return new FerryError(err.code, `${err.message.trimEnd()} — ${advice}`, err.details);
}
