/**
 * The assets of Ferry's pages (the catalog of `ferry serve`, the status page of `ferry daemon`),
 * served by Ferry itself under `/-/ui/`: inside the air gap there is no CDN, and no page asks
 * any other host for a font, an icon or a script. The pages read without JavaScript; the script
 * only narrows tables as one types in the filter box, copies commands, and refreshes the status
 * page when `/status` changes. It builds no markup from data: it toggles `hidden`, sets
 * `textContent`, and swaps in markup the server rendered (and escaped).
 */
import { createHash } from 'node:crypto';
import { html, type SafeHtml } from './html.js';

const CSS = `
:root{--fg:#1b1b1b;--muted:#4a4a4a;--bg:#fff;--alt:#f3f5f7;--line:#c9ced4;--accent:#0b57a4;--ok:#17632a;--bad:#a4161a;--warn:#7a4b00;--focus:#0b57a4;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8e8;--muted:#b8b8b8;--bg:#15171a;--alt:#1f2328;--line:#3a4048;--accent:#7db7ff;--ok:#6fd088;--bad:#ff8a8a;--warn:#ffc26b;--focus:#7db7ff}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:78rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem;border-bottom:1px solid var(--line)}
h1{font-size:1.5rem;margin:.2rem 0 .4rem}h2{font-size:1.25rem;margin:1.6rem 0 .5rem}h3{font-size:1.05rem;margin:1.2rem 0 .4rem;word-break:break-all}
p{margin:.4rem 0}.muted{color:var(--muted)}
a{color:var(--accent)}
code,pre{font:13px/1.4 ui-monospace,"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace}
pre{background:var(--alt);border:1px solid var(--line);padding:.5rem .7rem;overflow-x:auto;margin:.4rem 0}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}
caption{text-align:left;color:var(--muted);padding:.2rem 0}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
thead th{background:var(--alt);font-weight:600;position:sticky;top:0}
tbody tr:nth-child(even){background:var(--alt)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.tag{font-weight:600;overflow-wrap:break-word}.wrap{word-break:break-all}
.badge{display:inline-block;border:1px solid currentColor;border-radius:.6rem;padding:0 .4rem;font-size:12px;margin-left:.25rem;white-space:nowrap}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
.versions code{display:inline-block;margin:0 .5rem .15rem 0}
.filter{display:flex;gap:.5rem;align-items:center;margin:1rem 0;flex-wrap:wrap}
.filter input{font:inherit;padding:.35rem .5rem;min-width:18rem;border:1px solid var(--muted);border-radius:4px;background:var(--bg);color:var(--fg)}
button{font:inherit;font-size:12px;padding:.1rem .45rem;border:1px solid var(--muted);border-radius:4px;background:var(--alt);color:var(--fg);cursor:pointer}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
nav ul{list-style:none;padding:0;margin:.4rem 0;display:flex;gap:1.2rem;flex-wrap:wrap}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.4rem 0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
a.sr:focus{position:static;width:auto;height:auto;clip:auto;display:inline-block;margin:.4rem 1rem}
[hidden]{display:none!important}
footer{border-top:1px solid var(--line);margin-top:2rem;padding:.6rem 1rem 1.2rem;color:var(--muted);font-size:13px}
`;

const JS = `(() => {
  'use strict';
  const box = document.getElementById('filter');
  const count = document.getElementById('filter-count');
  const apply = () => {
    const q = box.value.trim().toLowerCase();
    const words = q.split(/\\s+/).filter((w) => w !== '');
    let shown = 0;
    let total = 0;
    for (const row of document.querySelectorAll('[data-f]')) {
      const key = row.getAttribute('data-f');
      const hit = words.every((w) => key.includes(w));
      row.hidden = !hit;
      total++;
      if (hit) shown++;
    }
    for (const group of document.querySelectorAll('[data-group]')) {
      group.hidden = q !== '' && group.querySelector('[data-f]:not([hidden])') === null;
    }
    if (count) count.textContent = q === '' ? '' : shown + ' of ' + total + ' rows match';
    const url = new URL(location.href);
    if (q === '') url.searchParams.delete('q'); else url.searchParams.set('q', box.value.trim());
    history.replaceState(null, '', url);
  };
  if (box) {
    box.addEventListener('input', apply);
    const form = box.closest('form');
    if (form) form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  }
  for (const b of document.querySelectorAll('button[data-copy]')) {
    b.hidden = false;
    b.addEventListener('click', () => {
      const text = b.getAttribute('data-copy');
      const done = (ok) => { b.textContent = ok ? 'copied' : 'select and copy'; setTimeout(() => { b.textContent = 'copy'; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(() => done(true), () => done(false));
      else done(false);
    });
  }
  const main = document.querySelector('main[data-refresh]');
  if (main) {
    const every = Math.max(1000, Number(main.getAttribute('data-refresh')) || 5000);
    let last = null;
    const stamp = document.getElementById('refreshed');
    const tick = async () => {
      try {
        const r = await fetch('/status', { cache: 'no-store', headers: { accept: 'application/json' } });
        const text = await r.text();
        if (last !== null && text !== last) {
          const page = await fetch(location.pathname, { cache: 'no-store' });
          const doc = new DOMParser().parseFromString(await page.text(), 'text/html');
          const fresh = doc.querySelector('main[data-refresh]');
          if (fresh) main.replaceChildren(...fresh.childNodes);
        }
        last = text;
        if (stamp) stamp.textContent = 'checked ' + new Date().toISOString().slice(11, 19) + ' UTC';
      } catch {
        if (stamp) stamp.textContent = 'status unreachable; retrying';
      }
      setTimeout(tick, every);
    };
    tick();
  }
})();
`;

/** One asset: its bytes, content type and a strong ETag (the hash of its bytes). */
export interface UiAsset {
  readonly bytes: Buffer;
  readonly contentType: string;
  readonly etag: string;
  /** The URL path the pages link it by, versioned by its hash so caches never serve a stale one. */
  readonly href: string;
}

function asset(name: string, text: string, contentType: string): UiAsset {
  const bytes = Buffer.from(text, 'utf8');
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  return { bytes, contentType, etag: `"${hash}"`, href: `${UI_PREFIX}${name}?v=${hash}` };
}

/**
 * Where the pages' assets live. No client of `ferry serve` asks for it: a Go module path's first
 * element holds a dot (go.dev/ref/mod#go-mod-file-ident), an OCI client asks only under `/v2/`.
 */
export const UI_PREFIX = '/-/ui/';

/** The assets by name under UI_PREFIX. */
export const UI_ASSETS: ReadonlyMap<string, UiAsset> = new Map([
  ['ferry.css', asset('ferry.css', CSS, 'text/css; charset=utf-8')],
  ['ferry.js', asset('ferry.js', JS, 'text/javascript; charset=utf-8')],
]);

/**
 * Headers every page carries: a Content-Security-Policy that lets a page load only Ferry's own
 * assets and talk only to Ferry, so even a missed escape could neither run an inline script nor
 * send anything elsewhere.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** The head of a Ferry page: its title and Ferry's own stylesheet and script, nothing else. */
export function pageHead(title: string): SafeHtml {
  const css = UI_ASSETS.get('ferry.css')?.href ?? '';
  const js = UI_ASSETS.get('ferry.js')?.href ?? '';
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="stylesheet" href="${css}"><script src="${js}" defer></script></head>`;
}
