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
