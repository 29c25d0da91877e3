/**
 * The catalog page `ferry serve` answers at `/`: what this server serves, as server-rendered
 * HTML that reads without JavaScript (real tables and headings), with the exact commands to use
 * it. Every upstream string (repository, tag, platform, annotation, module path, version, bundle
 * id, error) goes through `html`, which escapes it. `?q=` narrows the page on the server too, so
 * the filter box works without the script; with it, the script narrows as one types.
 */
import type { LedgerLifecycle } from '../store/index.js';
import type { CatalogAttachment, CatalogAttachmentKind, CatalogData, CatalogModule, CatalogRepository, CatalogTag, CatalogVersion } from './catalog-data.js';
import { html, type SafeHtml } from './html.js';
import { pageHead } from './ui-assets.js';

/** Where the page is served and for whom. */
export interface CatalogPageContext {
  /** `host:port` the client reached this server by (checked), for pull commands. */
  readonly host: string;
  /** `http` or `https`. */
  readonly scheme: 'http' | 'https';
  /** The filter from `?q=`, lower-cased match on the row's text; '' shows everything. */
  readonly query: string;
}

/** Human-readable bytes (binary units). */
export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** `sha256:` and the first 12 hex digits, as registries' UIs shorten digests. */
export function shortDigest(d: string): string {
  const i = d.indexOf(':');
  return i < 0 ? d.slice(0, 19) : d.slice(0, i + 13);
}

function filterBox(query: string, what: string): SafeHtml {
  return html`<form class="filter" role="search" method="get" action="/">
<label for="filter">Filter ${what}</label>
<input id="filter" name="q" type="search" value="${query}" placeholder="e.g. golang 1.22 arm64" autocomplete="off">
<noscript><button type="submit">Apply</button></noscript>
<span id="filter-count" class="muted" aria-live="polite"></span></form>`;
}

const ATTACHMENT_LABELS: Readonly<Record<CatalogAttachmentKind, string>> = { signature: 'signed', sbom: 'SBOM', attestation: 'attestation', referrer: 'referrer' };

/** The attachments cell's words ("signed · SBOM"), also what the filter matches; '' for none. */
function attachmentsText(list: readonly CatalogAttachment[]): string {
  const counts = new Map<CatalogAttachmentKind, number>();
  for (const a of list) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
  return [...counts].map(([k, n]) => (n > 1 && k !== 'signature' ? `${n} ${ATTACHMENT_LABELS[k]}s` : ATTACHMENT_LABELS[k])).join(' · ');
}

/** A compact "signed · SBOM · attestation" with every attachment's kind, type and digest in its title. */
function attachmentsCell(list: readonly CatalogAttachment[]): SafeHtml {
  if (list.length === 0) return html`<td class="muted">—</td>`;
  const title = list.map((a) => `${a.kind} ${a.digest}${a.tag !== undefined ? ` (tag ${a.tag})` : a.artifactType !== undefined ? ` (${a.artifactType})` : ''}`).join('\n');
  return html`<td class="attachments${list.some((a) => a.kind === 'signature') ? ' ok' : ''}" title="${title}">${attachmentsText(list)}</td>`;
}

/** "deprecated: NOTE" or "archived: NOTE" for a source the imported bundles announced so. */
function lifecycleText(l: LedgerLifecycle): string {
  return `${l.state}${l.note !== null && l.note !== '' ? `: ${l.note}` : ''}`;
}

function tagRow(repo: string, t: CatalogTag, ctx: CatalogPageContext, shown: boolean, life: string): SafeHtml {
  const ref = `${ctx.host}/${repo}:${t.tag}`;
  const pull = `docker pull ${ref}`;
  const platforms = t.platforms.length ? t.platforms.join(', ') : '—';
  return html`<tr data-f="${rowKey(repo, t.tag, platforms, t.description ?? '', attachmentsText(t.attachments), life)}"${shown ? '' : html` hidden`}><th scope="row" class="tag">${t.tag}</th>
<td><code title="${t.digest}">${shortDigest(t.digest)}</code>${t.index ? html`<span class="badge">index</span>` : ''}</td>
<td>${platforms}</td><td class="num">${formatBytes(t.size)}</td>${attachmentsCell(t.attachments)}<td class="wrap">${t.description ?? ''}</td>
<td><code class="wrap">${pull}</code> <button type="button" data-copy="${pull}" hidden>copy</button></td></tr>`;
}

function rowKey(...parts: string[]): string {
  return parts.join(' ').toLowerCase();
}

/** True when every word of the filter occurs in the row's text (as the script decides too). */
function matches(query: string, ...parts: string[]): boolean {
  const key = rowKey(...parts);
  return query.split(/\s+/).every((w) => w === '' || key.includes(w));
}

/**
 * The lifecycle of each intranet repository or module path, from the ledger (the newest word
 * when several source stores speak). A go.mod root names no module path and is not shown.
 */
function sourceLifecycle(data: CatalogData, kind: LedgerLifecycle['kind']): Map<string, LedgerLifecycle> {
  const out = new Map<string, LedgerLifecycle>();
  for (const l of data.ledger?.lifecycle ?? []) {
    if (l.kind !== kind || l.target === null) continue;
    const had = out.get(l.target);
    if (!had || had.at < l.at) out.set(l.target, l);
  }
  return out;
}

function imagesSection(repos: readonly CatalogRepository[], ctx: CatalogPageContext, lifecycle: ReadonlyMap<string, LedgerLifecycle>): SafeHtml {
  const tagCount = repos.reduce((n, r) => n + r.tags.length, 0);
  const plain = ctx.scheme === 'http';
  const groups = repos.map((r) => {
    const l = lifecycle.get(r.name);
    const life = l ? lifecycleText(l) : '';
    const shown = r.tags.map((t) => matches(ctx.query, r.name, t.tag, t.platforms.length ? t.platforms.join(', ') : '—', t.description ?? '', attachmentsText(t.attachments), life));
    return html`<section data-group${!shown.includes(true) ? html` hidden` : ''} aria-label="${r.name}">
<h3>${r.name}</h3>${l ? html`<p class="${l.state === 'archived' ? 'bad' : 'warn'} lifecycle" title="announced by ${l.sourceStore} in bundle ${l.bundleId}">${life}</p>` : ''}
<table><caption>${r.tags.length} tag${r.tags.length === 1 ? '' : 's'} of ${r.name}</caption>
<thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col">Platforms</th><th scope="col" class="num">Size</th><th scope="col">Attachments</th><th scope="col">Description</th><th scope="col">Pull</th></tr></thead>
<tbody>${r.tags.map((t, i) => tagRow(r.name, t, ctx, shown[i] === true, life))}</tbody></table></section>`;
  });
  return html`<section aria-labelledby="images"><h2 id="images">Images</h2>
<p>${repos.length} repositor${repos.length === 1 ? 'y' : 'ies'}, ${tagCount} tag${tagCount === 1 ? '' : 's'}. Pull with <code>docker pull ${ctx.host}/REPOSITORY:TAG</code>, <code>podman pull</code> or <code>skopeo copy docker://${ctx.host}/REPOSITORY:TAG …</code>; by digest with <code>@sha256:…</code>.</p>
${plain ? html`<p class="muted">This server speaks plain HTTP: list <code>${ctx.host}</code> under the container engine's insecure registries (skopeo: <code>--src-tls-verify=false</code>).</p>` : ''}
${repos.length === 0 ? html`<p>No images are stored yet.</p>` : groups}</section>`;
}

function versionCell(v: CatalogVersion): SafeHtml {
  const notes = [v.pseudo ? html`<span class="badge" title="pseudo-version: a commit, not a release">pseudo</span>` : '', v.zipSize === undefined ? html`<span class="badge" title="only go.mod is carried">go.mod only</span>` : '', v.retracted !== undefined ? html`<span class="badge warn" title="${v.retracted}">retracted</span>` : ''];
  return html`<code title="${v.time ?? ''}">${v.version}</code>${notes}`;
}

function modulesSection(data: CatalogData, ctx: CatalogPageContext): SafeHtml {
  const base = `${ctx.scheme}://${ctx.host}`;
  const sumdb =
    data.sumdbs.length > 0
      ? html`<pre><code>go env -w GOPROXY=${base}\n# GOSUMDB stays as it is (${data.sumdbs.join(', ')}): this server answers its checksum database under /sumdb/</code></pre>`
      : html`<pre><code>go env -w GOPROXY=${base}\ngo env -w GOSUMDB=off   # this server carries no checksum database; go.sum still pins what you have</code></pre>`;
  const insecure = ctx.scheme === 'http' ? html`<p class="muted">Plain HTTP: the go command accepts a GOPROXY over http without further settings.</p>` : '';
  const lifecycle = sourceLifecycle(data, 'module');
  const rows = data.modules.map((m: CatalogModule) => {
    const latest = m.versions.find((v) => !v.pseudo && v.retracted === undefined) ?? m.versions[0];
    const get = latest ? `go get ${m.path}@${latest.version}` : '';
    const l = lifecycle.get(m.path);
    const life = l ? lifecycleText(l) : '';
    const key = rowKey(m.path, ...m.versions.map((v) => v.version), life);
    return html`<tr data-f="${key}"${matches(ctx.query, key) ? '' : html` hidden`}><th scope="row" class="wrap">${m.path}${l ? html`<span class="badge ${l.state === 'archived' ? 'bad' : 'warn'}" title="${life}">${l.state}</span>` : ''}</th>
<td class="versions">${m.versions.map(versionCell)}</td><td><code class="wrap">${get}</code> <button type="button" data-copy="${get}" hidden>copy</button></td></tr>`;
  });
  const versionCount = data.modules.reduce((n, m) => n + m.versions.length, 0);
  return html`<section aria-labelledby="modules"><h2 id="modules">Go modules</h2>
<p>${data.modules.length} module${data.modules.length === 1 ? '' : 's'}, ${versionCount} version${versionCount === 1 ? '' : 's'}${data.modulesFrom === 'tree' ? ' (from the Go module tree)' : ''}. Point the go command here:</p>
${sumdb}${insecure}
${data.modules.length === 0 ? html`<p>No Go modules are stored yet.</p>` : html`<table data-group><caption>Modules and their versions, newest first</caption>
<thead><tr><th scope="col">Module</th><th scope="col">Versions</th><th scope="col">Get the newest</th></tr></thead><tbody>${rows}</tbody></table>`}</section>`;
}

function ledgerSection(data: CatalogData): SafeHtml {
  const l = data.ledger;
  if (!l) return html``;
  if (l.error !== undefined) return html`<section aria-labelledby="bundles"><h2 id="bundles">Bundles imported</h2><p class="bad">The import ledger ${l.file} could not be read: ${l.error}</p></section>`;
  const chains = l.chains.map((c) => {
    const gaps = c.missing.length
      ? html`<p class="bad">Missing from the chain: ${c.missing.map((m, i) => html`${i ? ', ' : ''}bundle ${m.sequence}${m.id ? html` (<code>${m.id}</code>)` : ''}`)}. Import ${c.missing.length === 1 ? 'it' : 'them'} to bring this side up to date.</p>`
      : html`<p class="ok">No gaps: every bundle up to ${c.highest} arrived.</p>`;
    const partial = c.partial.length
      ? html`<p class="warn">Bundles after ${c.allSourcesThrough} carried only some sources: ${c.partial.map((p, i) => html`${i ? '; ' : ''}${p.sequence} (${p.sources.join(', ')})`)}.</p>`
      : '';
    return html`<h3>From store <code>${c.sourceStore}</code></h3>${gaps}${partial}
<table><caption>Bundles imported from ${c.sourceStore}</caption><thead><tr><th scope="col" class="num">Sequence</th><th scope="col">Bundle</th><th scope="col">Target</th><th scope="col">Result</th><th scope="col">Created</th><th scope="col">Finished</th></tr></thead>
<tbody>${c.bundles.map(
      (b) => html`<tr data-f="${rowKey(b.id, b.target, b.result)}"><td class="num">${b.sequence}</td><th scope="row"><code>${b.id}</code></th><td class="wrap">${b.target}</td>
<td class="${b.result === 'ok' ? 'ok' : b.result === 'running' ? 'warn' : 'bad'}">${b.result}${b.error ? html`: ${b.error}` : ''}</td><td>${b.created}</td><td>${b.finishedAt ?? '—'}</td></tr>`,
    )}</tbody></table>`;
  });
  return html`<section aria-labelledby="bundles" data-group><h2 id="bundles">Bundles imported</h2><p class="muted">From the import ledger <code>${l.file}</code>.</p>${l.chains.length ? chains : html`<p>No bundle has been imported yet.</p>`}</section>`;
}

/**
 * The images section, rendered once per list of repositories (the reader hands out the same
 * list until the store's journal moves) and page context: thousands of rows, the page's bulk.
 */
const renderedImages = new WeakMap<readonly CatalogRepository[], { readonly key: string; readonly html: SafeHtml }>();

function cachedImagesSection(repos: readonly CatalogRepository[], ctx: CatalogPageContext, lifecycle: ReadonlyMap<string, LedgerLifecycle>): SafeHtml {
  const key = `${ctx.scheme}\0${ctx.host}\0${ctx.query}\0${[...lifecycle.values()].map((l) => `${l.target ?? ''}\0${lifecycleText(l)}\0${l.bundleId}`).join('\0')}`;
  const hit = renderedImages.get(repos);
  if (hit?.key === key) return hit.html;
  const out = imagesSection(repos, ctx, lifecycle);
  renderedImages.set(repos, { key, html: out });
  return out;
}

/** The whole catalog page. */
export function renderCatalog(data: CatalogData, ctx: CatalogPageContext): string {
  const sections = [data.repositories !== undefined ? cachedImagesSection(data.repositories, ctx, sourceLifecycle(data, 'image')) : '', modulesSection(data, ctx), ledgerSection(data)];
  return html`${pageHead(`Ferry catalog · ${ctx.host}`)}
<body><a class="sr" href="#content">Skip to the catalog</a><header><h1>Ferry catalog</h1><p class="muted">What <code>${ctx.scheme}://${ctx.host}</code> serves: a read-only registry and GOPROXY.</p>
<nav aria-label="Sections"><ul>${data.repositories !== undefined ? html`<li><a href="#images">Images</a></li>` : ''}<li><a href="#modules">Go modules</a></li>${data.ledger ? html`<li><a href="#bundles">Bundles imported</a></li>` : ''}</ul></nav></header>
<main id="content">${filterBox(ctx.query, 'by repository, tag, platform, module or version')}${sections}</main>
<footer>Served by Ferry. Every asset of this page comes from this server.</footer></body></html>
`.text;
}
