/** WWW-Authenticate parsing (RFC 9110 §11.6.1): several challenges, quoted params with commas. */

/** One authentication challenge: a scheme (lowercased) and its parameters (names lowercased). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z/]/;

/**
 * Parses a WWW-Authenticate value into challenges, e.g.
 * `Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push", Basic realm="r"`.
 * Unparsable tails are ignored rather than thrown: the caller decides what a missing challenge means.
 */
export function parseWwwAuthenticate(value: string | undefined): Challenge[] {
  if (!value) return [];
  const s = value;
  let i = 0;
  const out: { scheme: string; params: Record<string, string> }[] = [];
  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && TOKEN_CHAR.test(s[i] as string)) i++;
    return s.slice(start, i);
  };
  const readValue = (): string => {
    if (s[i] !== '"') {
      const start = i;
      while (i < s.length && s[i] !== ',' && s[i] !== ' ' && s[i] !== '\t') i++;
      return s.slice(start, i);
    }
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote
    return v;
  };
  // Looks ahead: does `name =` start here (a parameter) rather than a new scheme?
  const atParam = (): boolean => {
    const save = i;
    const name = readToken();
    skipWs();
    const isParam = name !== '' && s[i] === '=';
    i = save;
    return isParam;
  };
  while (i < s.length) {
    while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length) break;
    const scheme = readToken();
    if (scheme === '') {
      i++; // skip a stray character
      continue;
    }
    const challenge = { scheme: scheme.toLowerCase(), params: {} as Record<string, string> };
    out.push(challenge);
    skipWs();
    for (;;) {
      while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
      if (i >= s.length || !atParam()) break;
      const name = readToken().toLowerCase();
      skipWs();
      i++; // '='
      skipWs();
      challenge.params[name] = readValue();
    }
  }
  return out;
}
