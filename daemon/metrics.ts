/** The daemon's Prometheus metrics, on a dedicated prom-client Registry (never the global one). */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { LIFECYCLE_STATES } from '../config/index.js';
import type { StoreStats } from '../store/index.js';

/** What the metrics read at scrape time. */
export interface MetricsSources {
  /** Store counts, or undefined when the store is closed. */
  readonly store: () => StoreStats | undefined;
  /** Queue depth (waiting) and in-progress tasks. */
  readonly queue: () => { readonly size: number; readonly pending: number };
  /** Include Node process metrics (CPU, memory, event loop). @default true */
  readonly processMetrics?: boolean;
}

/** One finished source run, as the metrics see it. */
export interface RunMetrics {
  readonly source: string;
  readonly ok: boolean;
  readonly aborted: boolean;
  readonly finishedAt: Date;
  readonly durationMs: number;
  readonly bytes: number;
  readonly blobs: number;
  /** Tags (image) or versions (module root) the source tracks, when the run learned it. */
  readonly tracked?: number | undefined;
  /** Error codes of the run's failures. */
  readonly errorCodes: readonly string[];
}

/**
 * Parses a `ratelimit-remaining` / `ratelimit-limit` header: Docker Hub sends `100;w=21600`
 * (count; window in seconds), IETF drafts send a bare number.
 */
export function parseRateLimitHeader(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  const m = /^\s*(\d+)\s*(?:[;,].*)?$/.exec(s);
  return m ? Number(m[1]) : undefined;
}

/** Holds every metric the daemon exports. */
export class DaemonMetrics {
  /** The dedicated registry `/metrics` renders. */
  readonly registry = new Registry();
  private readonly lastSuccess: Gauge<'source'>;
  private readonly lastRun: Gauge<'source'>;
  private readonly lastOk: Gauge<'source'>;
  private readonly lastDuration: Gauge<'source'>;
  private readonly bytes: Counter<'source'>;
  private readonly blobs: Counter<'source'>;
  private readonly tracked: Gauge<'source'>;
  private readonly errors: Counter<'source' | 'code'>;
  private readonly runs: Counter<'source' | 'result'>;
  private readonly skipped: Counter<'source'>;
  private readonly running: Gauge<'source'>;
  private readonly bundles: Counter;
  private readonly bundleBytes: Counter;
  private readonly bundleLast: Gauge;
  private readonly exportErrors: Counter<'code'>;
  private readonly rateRemaining: Gauge<'registry'>;
  private readonly rateLimit: Gauge<'registry'>;
  private readonly reloads: Counter<'result'>;
  private readonly lifecycle: Gauge<'source' | 'state'>;
  private readonly gcBytes: Counter;
  private readonly gcBlobs: Counter;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    this.lastSuccess = new Gauge({ name: 'ferry_source_last_success_timestamp_seconds', help: 'Unix time of the last successful sync of a source', labelNames: ['source'], registers });
    this.lastRun = new Gauge({ name: 'ferry_source_last_run_timestamp_seconds', help: 'Unix time the last sync of a source finished', labelNames: ['source'], registers });
    this.lastOk = new Gauge({ name: 'ferry_source_last_run_ok', help: '1 when the last sync of a source succeeded, 0 when it failed or was aborted', labelNames: ['source'], registers });
    this.lastDuration = new Gauge({ name: 'ferry_source_last_duration_seconds', help: 'Duration of the last sync of a source', labelNames: ['source'], registers });
    this.bytes = new Counter({ name: 'ferry_source_fetched_bytes_total', help: 'Blob bytes fetched from upstream and stored', labelNames: ['source'], registers });
    this.blobs = new Counter({ name: 'ferry_source_fetched_blobs_total', help: 'Blobs fetched from upstream and stored', labelNames: ['source'], registers });
    this.tracked = new Gauge({ name: 'ferry_source_tracked', help: 'Tags (images) or root versions (Go modules) a source selects', labelNames: ['source'], registers });
    this.errors = new Counter({ name: 'ferry_source_errors_total', help: 'Sync failures by error code', labelNames: ['source', 'code'], registers });
    this.runs = new Counter({ name: 'ferry_source_runs_total', help: 'Finished syncs of a source by result (ok, failed, aborted)', labelNames: ['source', 'result'], registers });
    this.skipped = new Counter({
      name: 'ferry_source_skipped_runs_total',
      help: 'Scheduled runs skipped because the previous run of the same job was still going',
      labelNames: ['source'],
      registers,
    });
    this.running = new Gauge({ name: 'ferry_source_running', help: '1 while a sync of the source is running', labelNames: ['source'], registers });
    this.bundles = new Counter({ name: 'ferry_bundles_exported_total', help: 'Bundles written by the scheduled export', registers });
    this.bundleBytes = new Counter({ name: 'ferry_bundle_exported_bytes_total', help: 'Bytes of bundles written by the scheduled export', registers });
    this.bundleLast = new Gauge({ name: 'ferry_bundle_last_export_timestamp_seconds', help: 'Unix time of the last bundle written', registers });
    this.exportErrors = new Counter({ name: 'ferry_bundle_export_errors_total', help: 'Failed scheduled exports by error code', labelNames: ['code'], registers });
    this.rateRemaining = new Gauge({
      name: 'ferry_registry_ratelimit_remaining',
      help: 'Pulls left in the window, as the upstream last reported (ratelimit-remaining)',
      labelNames: ['registry'],
      registers,
    });
    this.rateLimit = new Gauge({ name: 'ferry_registry_ratelimit_limit', help: 'Pull limit of the window, as the upstream last reported (ratelimit-limit)', labelNames: ['registry'], registers });
    this.lifecycle = new Gauge({
      name: 'ferry_source_lifecycle',
      help: "1 for a source's lifecycle state (active, deprecated, archived), 0 for the others",
      labelNames: ['source', 'state'],
      registers,
    });
    this.gcBytes = new Counter({ name: 'ferry_gc_freed_bytes_total', help: 'Bytes of blobs removed by the scheduled gc', registers });
    this.gcBlobs = new Counter({ name: 'ferry_gc_removed_blobs_total', help: 'Blobs removed by the scheduled gc', registers });
    this.reloads = new Counter({ name: 'ferry_config_reloads_total', help: 'Configuration reloads by result (ok, failed)', labelNames: ['result'], registers });

    const store = (pick: (s: StoreStats) => number) =>
      function (this: Gauge): void {
        const s = src.store();
        if (s) this.set(pick(s));
      };
    new Gauge({ name: 'ferry_store_bytes', help: 'Bytes of blobs in the store', registers, collect: store((s) => s.bytes) });
    new Gauge({ name: 'ferry_store_blobs', help: 'Blobs in the store', registers, collect: store((s) => s.blobs) });
    new Gauge({ name: 'ferry_store_tags', help: 'Tags in the store', registers, collect: store((s) => s.tags) });
    new Gauge({ name: 'ferry_store_module_versions', help: 'Go module versions in the store', registers, collect: store((s) => s.moduleVersions) });
    new Gauge({ name: 'ferry_store_journal_sequence', help: 'Current journal sequence of the store', registers, collect: store((s) => s.journalSeq) });
    new Gauge({
      name: 'ferry_queue_depth',
      help: 'Transfers waiting in the shared queues (registries and GOPROXY)',
      registers,
      collect() {
        this.set(src.queue().size);
      },
    });
    new Gauge({
      name: 'ferry_queue_pending',
      help: 'Transfers running in the shared queues (registries and GOPROXY)',
      registers,
      collect() {
        this.set(src.queue().pending);
      },
    });
    if (src.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Declares a source so its series exist (at zero) before its first run. */
  declareSource(source: string): void {
    this.skipped.inc({ source }, 0);
    this.runs.inc({ source, result: 'ok' }, 0);
    this.bytes.inc({ source }, 0);
    this.blobs.inc({ source }, 0);
    this.running.set({ source }, 0);
  }

  /** Sets a source's lifecycle state: 1 on its state, 0 on the others. */
  setLifecycle(source: string, state: string): void {
    for (const s of LIFECYCLE_STATES) this.lifecycle.set({ source, state: s }, s === state ? 1 : 0);
  }

  /** Records a scheduled gc. */
  recordGc(bytes: number, blobs: number): void {
    this.gcBytes.inc(bytes);
    this.gcBlobs.inc(blobs);
  }

  /** Drops a source's lifecycle series (the source left the configuration). */
  forgetLifecycle(source: string): void {
    for (const state of LIFECYCLE_STATES) this.lifecycle.remove({ source, state });
  }

  /** Marks a source running or idle. */
  setRunning(source: string, running: boolean): void {
    this.running.set({ source }, running ? 1 : 0);
  }

  /** Records a finished run. */
  recordRun(r: RunMetrics): void {
    const at = r.finishedAt.getTime() / 1000;
    this.lastRun.set({ source: r.source }, at);
    this.lastOk.set({ source: r.source }, r.ok ? 1 : 0);
    if (r.ok) this.lastSuccess.set({ source: r.source }, at);
    this.lastDuration.set({ source: r.source }, r.durationMs / 1000);
    this.bytes.inc({ source: r.source }, r.bytes);
    this.blobs.inc({ source: r.source }, r.blobs);
    if (r.tracked !== undefined) this.tracked.set({ source: r.source }, r.tracked);
    for (const code of r.errorCodes) this.errors.inc({ source: r.source, code });
    this.runs.inc({ source: r.source, result: r.aborted ? 'aborted' : r.ok ? 'ok' : 'failed' });
  }

  /** Counts a run skipped because the previous one was still going. */
  recordSkip(source: string): void {
    this.skipped.inc({ source });
  }

  /** Records a bundle written. */
  recordExport(bytes: number, at: Date): void {
    this.bundles.inc();
    this.bundleBytes.inc(bytes);
    this.bundleLast.set(at.getTime() / 1000);
  }

  /** Records a failed export. */
  recordExportError(code: string): void {
    this.exportErrors.inc({ code });
  }

  /** Records a configuration reload. */
  recordReload(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'failed' });
  }

  /** Reads rate-limit headers from a registry response (runSync's `onResponse`). */
  observeResponse(info: { url: string; headers: Record<string, string | string[] | undefined> }): void {
    const remaining = parseRateLimitHeader(info.headers['ratelimit-remaining']);
    const limit = parseRateLimitHeader(info.headers['ratelimit-limit']);
    if (remaining === undefined && limit === undefined) return;
    let registry: string;
    try {
      registry = new URL(info.url).host;
    } catch {
      return;
    }
    if (remaining !== undefined) this.rateRemaining.set({ registry }, remaining);
    if (limit !== undefined) this.rateLimit.set({ registry }, limit);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
