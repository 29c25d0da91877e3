/** URL redaction: what Ferry prints about a URL never carries credentials or signed query strings. */

/** Query parameters whose values are secrets (compared case-insensitively). */
export const SENSITIVE_QUERY_PARAMS: readonly string[] = [
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'password',
  'passwd',
  'secret',
  'client_secret',
  'sig',
  'signature',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
  'key-pair-id',
  'policy',
  'awsaccesskeyid',
  'api_key',
  'apikey',
];

const SENSITIVE = new Set(SENSITIVE_QUERY_PARAMS);

/** The value that replaces a secret. */
export const REDACTED = 'REDACTED';

/**
 * URL with userinfo removed and sensitive query params replaced by REDACTED. A string that
 * does not parse as a URL is still scrubbed of anything that looks like `user:pass@`.
 */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return String(url).replace(/\/\/[^/@\s]*@/g, '//');
  }
  u.username = '';
  u.password = '';
  // Rebuild the query by hand so untouched parameters keep their exact encoding.
  if (u.search.length > 1) {
    const parts = u.search.slice(1).split('&').map((part) => {
      const eq = part.indexOf('=');
      const rawName = eq >= 0 ? part.slice(0, eq) : part;
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      } catch {
        // keep the raw name
      }
      return SENSITIVE.has(name.toLowerCase()) ? `${rawName}=${REDACTED}` : part;
    });
    u.search = `?${parts.join('&')}`;
  }
  return u.href;
}

/** Replaces every occurrence of the given secrets in a text (for messages that echo server output). */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join(REDACTED);
  }
  return out;
}
