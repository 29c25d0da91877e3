/**
 * A tiny HTML template helper for Ferry's pages. Every value interpolated into `html\`…\`` is
 * escaped unless it is itself the result of `html` (or `trusted`, for constant text Ferry
 * ships), so an upstream string (a repository name, a tag, an annotation, an error) can never
 * become markup. Values go only into element content and double-quoted attributes; the
 * templates never place them in a script, a style, an event handler or an unquoted attribute.
 */

/** Markup that is already safe: made by `html` or `trusted`, never from an unchecked string. */
export class SafeHtml {
  /** @internal use `html` or `trusted` */
  constructor(readonly text: string) {}

  /** The markup. */
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const SPECIAL = /[&<>"']/g;
const HAS_SPECIAL = /[&<>"']/;

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return HAS_SPECIAL.test(s) ? s.replace(SPECIAL, (c) => ESCAPES[c] ?? c) : s;
}

/** What a template accepts: text is escaped, SafeHtml passes, lists are joined, nothing is dropped. */
export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(v: HtmlValue): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof SafeHtml) return v.text;
  if (Array.isArray(v)) {
    let out = '';
    for (const x of v as readonly HtmlValue[]) out += render(x);
    return out;
  }
  return escapeHtml(String(v));
}

/** The tagged template: `html\`<td>${tag}</td>\`` escapes `tag`. */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new SafeHtml(out);
}

/** Marks constant text Ferry ships (its own CSS and JS) as markup; never call it on data. */
export function trusted(constant: string): SafeHtml {
  return new SafeHtml(constant);
}
