// The daemon's status page as HTML: every value escaped (an upstream error is upstream text),
// served at / with Ferry's own assets under /-/ui/ beside the JSON it is made from.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DaemonStatus, JobStatus } from '../../daemon/daemon.js';
import { startHttpServer } from '../../daemon/http.js';
import { renderStatusPage } from '../../daemon/status-page.js';
import { escapeHtml } from '../../serve/html.js';
import { UI_ASSETS, UI_PREFIX } from '../../serve/ui-assets.js';

const EVIL = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`;
const NOW = new Date('2026-01-02T03:04:05Z');

function job(name: string, over: Partial<JobStatus> = {}): JobStatus {
  return {
    name,
    kind: 'image',
    schedule: '0 * * * *',
    lifecycle: 'active',
    note: null,
    state: 'idle',
    runningSince: null,
    lastRun: { startedAt: '2026-01-02T03:00:00Z', finishedAt: '2026-01-02T03:00:02Z', durationMs: 2000, ok: false, aborted: false, error: EVIL, bytes: 2048, blobs: 2 },
    nextRun: '2026-01-02T04:00:00Z',
    lastError: EVIL,
    lastErrorAt: '2026-01-02T03:00:02Z',
    lastSuccess: null,
    skipped: 1,
    ...over,
  };
}

const status: DaemonStatus = {
  startedAt: '2026-01-02T02:00:00Z',
  config: '/etc/ferry/ferry.yaml',
  store: '/var/lib/ferry/store',
  stopping: false,
  queue: { size: 3, pending: 2, concurrency: 8 },
  moduleQueue: { size: 0, pending: 0, concurrency: 32 },
  sources: [job(`up.example/${EVIL}`)],
  export: null,
  gc: null,
  lastBundle: null,
  overview: {
    storeSize: { blobs: 10, bytes: 5 * 1024 * 1024, tags: 4, moduleVersions: 7 },
    pendingExport: { entries: 2, tags: [{ source: 's', target: 'mirror/app', tag: EVIL, digest: `sha256:${'a'.repeat(64)}` }], modules: [{ module: 'example.com/m', version: 'v1.0.0' }], tagCount: 1, moduleCount: 1 },
    bundles: [
      { id: 'ferry-20260101-0001-aaaaaaaa', sequence: 1, createdAt: '2026-01-01T00:00:00Z', sources: null, confirmed: true },
      { id: 'ferry-20260102-0002-bbbbbbbb', sequence: 2, createdAt: '2026-01-02T00:00:00Z', sources: ['s'], confirmed: false },
    ],
    bundleCount: 2,
    confirmationsError: null,
  },
};

describe('daemon status page', () => {
  it('renders every part of /status with every value escaped', () => {
    const page = renderStatusPage(status, NOW);
    expect(page).not.toContain('<script>alert');
    expect(page).not.toContain('<img');
    expect(page.match(/<script/g)).toHaveLength(1);
    expect(page).toContain(`<span class="bad">${escapeHtml(EVIL)}</span>`);
    expect(page).toContain('<span class="bad">failed</span>, 2.0 s, 2.0 KiB in 2 blobs');
    expect(page).toContain('1 run skipped (still running)');
    expect(page).toContain('<dd>2 running of 8, 3 waiting</dd>');
    expect(page).toContain('5.0 MiB in 10 blobs; 4 tags, 7 module versions');
    expect(page).toContain('1 tag and 1 module version (2 journal entries).');
    expect(page).toContain('<span class="ok">confirmed imported</span>');
    expect(page).toContain('<span class="warn">not confirmed yet</span>');
    expect(page).toContain('<main data-refresh="3000">');
    expect(page).toContain('<time datetime="2026-01-02T04:00:00Z" title="2026-01-02T04:00:00Z">2026-01-02 04:00:00 UTC</time> <span class="muted">(in 56 min)</span>');
  });

  it('says a run due this second is due now, not "0 s ago"', () => {
    const page = renderStatusPage({ ...status, sources: [job('due', { nextRun: NOW.toISOString() })] }, NOW);
    expect(page).toContain('2026-01-02 03:04:05 UTC</time> <span class="muted">(now)</span>');
    expect(page).not.toContain('(0 s ago)');
  });

  it('shows a deprecated or archived source with its note, escaped, and the scheduled gc', () => {
    const page = renderStatusPage(
      { ...status, sources: [job('old', { lifecycle: 'deprecated', note: `use new ${EVIL}` }), job('gone', { lifecycle: 'archived', note: null, schedule: null, nextRun: null })], gc: job('gc', { kind: 'gc' }) },
      NOW,
    );
    expect(page).toContain(`<span class="warn">deprecated</span>: use new ${escapeHtml(EVIL)}`);
    expect(page).toContain('<span class="muted">archived</span></td>');
    expect(page).toContain('<h3>Scheduled garbage collection</h3>');
    expect(page).not.toContain('<img');
  });

  it('is served at / with a CSP, next to /status, and its assets under /-/ui/', async () => {
    const server = await startHttpServer(
      { host: '127.0.0.1', port: 0 },
      { ready: () => ({ ready: true, detail: {} }), metrics: () => Promise.resolve({ contentType: 'text/plain', body: '' }), status: () => status, page: () => renderStatusPage(status, NOW) },
      pino({ level: 'silent' }),
    );
    try {
      const base = `http://127.0.0.1:${server.address.port}`;
      const res = await fetch(`${base}/`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await res.text()).toContain('<h1>Ferry daemon</h1>');
      expect((await (await fetch(`${base}/status`)).json()) as unknown).toEqual(status);
      const css = UI_ASSETS.get('ferry.css')!;
      const a = await fetch(`${base}${UI_PREFIX}ferry.css`);
      expect(a.status).toBe(200);
      expect(Buffer.from(await a.arrayBuffer()).equals(css.bytes)).toBe(true);
      expect((await fetch(`${base}${UI_PREFIX}ferry.css`, { headers: { 'if-none-match': css.etag } })).status).toBe(304);
      expect((await fetch(`${base}${UI_PREFIX}x.js`)).status).toBe(404);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
