/**
 * The status page `ferry daemon --listen` answers at `/`: every source with its state, last run,
 * next run and last error; both queues and the store's size; what `ferry export` would carry
 * now; the bundles exported and whether the inside confirmed them. Server-rendered from the
 * `/status` document through the escaping `html` helper (an upstream error message is upstream
 * text); Ferry's script polls `/status` and swaps in the fresh page when it changed, without a
 * reload.
 */
import { formatBytes, shortDigest } from '../serve/catalog.js';
import { html, type SafeHtml } from '../serve/html.js';
import { pageHead } from '../serve/ui-assets.js';
import type { DaemonStatus, JobStatus } from './daemon.js';
import type { StoreOverview } from './overview.js';

/** How often the page polls `/status`, in milliseconds. */
export const REFRESH_MS = 3000;

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** An ISO time, shown as UTC with how long ago or ahead it is. */
function when(iso: string | null, now: Date): SafeHtml {
  if (iso === null || iso === '') return html`<span class="muted">—</span>`;
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return html`${iso}`;
  const d = Math.round((t.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(d);
  const rel = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 172_800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86_400)} d`;
  return html`<time datetime="${iso}" title="${iso}">${t.toISOString().slice(0, 19).replace('T', ' ')} UTC</time> <span class="muted">(${d === 0 ? 'now' : d < 0 ? `${rel} ago` : `in ${rel}`})</span>`;
}

function lastRunCell(j: JobStatus): SafeHtml {
  const r = j.lastRun;
  if (!r) return html`<span class="muted">not run yet</span>`;
  const verdict = r.aborted ? html`<span class="warn">aborted</span>` : r.ok ? html`<span class="ok">ok</span>` : html`<span class="bad">failed</span>`;
  const bytes = r.bytes !== undefined ? html`, ${formatBytes(r.bytes)}${r.blobs !== undefined ? html` in ${r.blobs} blob${r.blobs === 1 ? '' : 's'}` : ''}` : '';
  const note = r.skippedReason !== undefined ? html`<br><span class="muted">${r.skippedReason}</span>` : r.bundle !== undefined ? html`<br>bundle <code>${r.bundle}</code>` : '';
  return html`${verdict}, ${duration(r.durationMs)}${bytes}${note}`;
}

function jobRow(j: JobStatus, now: Date): SafeHtml {
  const state = j.state === 'running' ? html`<span class="warn">running</span> <span class="muted">since ${when(j.runningSince, now)}</span>` : html`idle`;
  // Deprecated sources still run; archived ones never do (no upstream request): both say so, with their note.
  const life = j.lifecycle !== 'active' ? html`<br><span class="${j.lifecycle === 'deprecated' ? 'warn' : 'muted'}">${j.lifecycle}</span>${j.note !== null ? html`: ${j.note}` : ''}` : '';
  return html`<tr><th scope="row" class="wrap">${j.name}</th><td>${j.kind}</td><td class="wrap">${state}${life}</td>
<td>${lastRunCell(j)}${j.lastRun ? html`<br>${when(j.lastRun.finishedAt, now)}` : ''}</td>
<td>${when(j.nextRun, now)}${j.schedule !== null ? html`<br><code>${j.schedule}</code>` : html`<br><span class="muted">no schedule</span>`}</td>
<td>${when(j.lastSuccess, now)}</td>
<td class="wrap">${j.lastError !== null ? html`<span class="bad">${j.lastError}</span><br>${when(j.lastErrorAt, now)}` : html`<span class="muted">none</span>`}${j.skipped > 0 ? html`<br><span class="warn">${j.skipped} run${j.skipped === 1 ? '' : 's'} skipped (still running)</span>` : ''}</td></tr>`;
}

function jobsTable(caption: string, jobs: readonly JobStatus[], now: Date): SafeHtml {
  return html`<table><caption>${caption}</caption><thead><tr><th scope="col">Source</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col">Last run</th><th scope="col">Next run</th><th scope="col">Last success</th><th scope="col">Last error</th></tr></thead>
<tbody>${jobs.map((j) => jobRow(j, now))}</tbody></table>`;
}

function pendingSection(o: StoreOverview): SafeHtml {
  const p = o.pendingExport;
  if (p.entries === 0) return html`<p class="ok" id="pending-summary">Nothing: every change is in a bundle already.</p>`;
  const more = (shown: number, all: number): SafeHtml | '' => (all > shown ? html`<p class="muted">… and ${all - shown} more.</p>` : '');
  return html`<p id="pending-summary">${p.tagCount} tag${p.tagCount === 1 ? '' : 's'} and ${p.moduleCount} module version${p.moduleCount === 1 ? '' : 's'} (${p.entries} journal entr${p.entries === 1 ? 'y' : 'ies'}).</p>
${p.tags.length ? html`<table><caption>Tags the next bundle carries</caption><thead><tr><th scope="col">Repository</th><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col">Source</th></tr></thead>
<tbody>${p.tags.map((t) => html`<tr><td class="wrap">${t.target}</td><th scope="row" class="tag">${t.tag}</th><td>${t.digest ? html`<code title="${t.digest}">${shortDigest(t.digest)}</code>` : '—'}</td><td>${t.source ?? '—'}</td></tr>`)}</tbody></table>${more(p.tags.length, p.tagCount)}` : ''}
${p.modules.length ? html`<table><caption>Module versions the next bundle carries</caption><thead><tr><th scope="col">Module</th><th scope="col">Version</th></tr></thead>
<tbody>${p.modules.map((m) => html`<tr><th scope="row" class="wrap">${m.module}</th><td><code>${m.version}</code></td></tr>`)}</tbody></table>${more(p.modules.length, p.moduleCount)}` : ''}`;
}

function bundlesSection(o: StoreOverview, now: Date): SafeHtml {
  if (o.bundles.length === 0) return html`<p>No bundle has been exported from this store yet.</p>`;
  const confirm = (c: boolean | null): SafeHtml =>
    c === null ? html`<span class="muted">no confirmations file</span>` : c ? html`<span class="ok">confirmed imported</span>` : html`<span class="warn">not confirmed yet</span>`;
  return html`${o.confirmationsError !== null ? html`<p class="bad">The confirmations file could not be read: ${o.confirmationsError}</p>` : ''}
<table><caption>The newest ${o.bundles.length} of ${o.bundleCount} bundle${o.bundleCount === 1 ? '' : 's'}</caption><thead><tr><th scope="col" class="num">Sequence</th><th scope="col">Bundle</th><th scope="col">Created</th><th scope="col">Sources</th><th scope="col">Confirmation</th></tr></thead>
<tbody>${o.bundles.map(
    (b) => html`<tr><td class="num">${b.sequence}</td><th scope="row"><code>${b.id}</code></th><td>${when(b.createdAt, now)}</td><td>${b.sources ? b.sources.join(', ') : 'all'}</td><td>${confirm(b.confirmed)}</td></tr>`,
  )}</tbody></table>`;
}

/** The whole status page. */
export function renderStatusPage(s: DaemonStatus, now: Date): string {
  const o = s.overview;
  const q = (name: string, x: DaemonStatus['queue']): SafeHtml =>
    html`<dt>${name}</dt><dd>${x.pending} running of ${x.concurrency}, ${x.size} waiting</dd>`;
  const failing = s.sources.filter((j) => j.lastRun !== null && !j.lastRun.ok).length;
  return html`${pageHead('Ferry daemon status')}
<body><header><h1>Ferry daemon</h1><p class="muted">Configuration <code>${s.config}</code>, store <code>${s.store}</code>, up since ${when(s.startedAt, now)}. <span id="refreshed" aria-live="off"></span></p></header>
<main data-refresh="${REFRESH_MS}">
<p id="verdict" class="${failing > 0 ? 'bad' : 'ok'}">${s.stopping ? 'Stopping. ' : ''}${failing > 0 ? `${failing} source${failing === 1 ? '' : 's'} failed on the last run.` : `${s.sources.length} source${s.sources.length === 1 ? '' : 's'}, none failing.`}</p>
<section aria-labelledby="sources"><h2 id="sources">Sources</h2>
${s.sources.length ? jobsTable('Every source with its last and next run', s.sources, now) : html`<p>No sources are configured.</p>`}
${s.export ? html`<h3>Scheduled export</h3>${jobsTable('The automatic export', [s.export], now)}` : ''}
${s.gc ? html`<h3>Scheduled garbage collection</h3>${jobsTable('The scheduled ferry gc', [s.gc], now)}` : ''}</section>
<section aria-labelledby="queues"><h2 id="queues">Queues and store</h2><dl class="kv">${q('Registry transfers', s.queue)}${q('GOPROXY requests', s.moduleQueue)}
${o ? html`<dt>Store</dt><dd id="store-size">${formatBytes(o.storeSize.bytes)} in ${plural(o.storeSize.blobs, 'blob')}; ${plural(o.storeSize.tags, 'tag')}, ${plural(o.storeSize.moduleVersions, 'module version')}</dd>` : ''}</dl></section>
${o ? html`<section aria-labelledby="pending"><h2 id="pending">What <code>ferry export</code> would carry now</h2>${pendingSection(o)}</section>
<section aria-labelledby="bundles"><h2 id="bundles">Bundles exported</h2>${bundlesSection(o, now)}</section>` : html`<p>The store is not open.</p>`}
</main><footer>Served by Ferry. JSON at <a href="/status">/status</a>, metrics at <a href="/metrics">/metrics</a>. Every asset of this page comes from this server.</footer></body></html>
`.text;
}
