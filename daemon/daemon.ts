/**
 * The long-running daemon: one cron job per source (its own schedule, the Go modules default or
 * the global one) and one for the automatic export, a catch-up pass at start, skip-if-still-
 * running, one shared transfer queue, reload on demand, and shutdown as stop schedules → let
 * in-flight transfers finish within a grace period → abort → close (regsync's shape).
 */
import { setMaxListeners } from 'node:events';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createTask, validateDetailed, type ScheduledTask } from 'node-cron';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { confirmedCoverage, exportBundle, lifecycleChanged, pendingChanges } from '../bundle/export.js';
import { inactiveSources, loadConfig, moduleConcurrency, parseByteSize, parseDuration, resolveSecret, type Config, type LifecycleState } from '../config/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import { Store } from '../store/index.js';
import { RegistryClients } from '../sync/clients.js';
import type { SumCheck } from '../sync/modules.js';
import { runSync, type RunSyncOptions } from '../sync/run.js';
import { formatListen, parseListen, startHttpServer, type DaemonHttpServer, type ListenAddress } from './http.js';
import { DEFAULT_GRACE_MS } from './defaults.js';
import { DaemonMetrics } from './metrics.js';
import { storeOverview, type StoreOverview } from './overview.js';
import { pruneBundles, readConfirmations } from './retention.js';
import { renderStatusPage } from './status-page.js';

/** The job name of the automatic export. */
export const EXPORT_JOB = 'export';
/** The job name of the scheduled garbage collection (`gc.schedule`). */
export const GC_JOB = 'gc';

/** Job kinds that sync a source (the others are the export and gc). */
function isSource(kind: string | undefined): boolean {
  return kind === 'image' || kind === 'module';
}
/** Default grace period for in-flight transfers at shutdown (in defaults.ts so `--help` loads no daemon code). */
export { DEFAULT_GRACE_MS } from './defaults.js';
/** File in `export.out` remembering when the next automatic export is due (missed ones run at start). */
export const EXPORT_DUE_FILE = '.ferry-export-due';

/** Options for a Daemon. */
export interface DaemonOptions {
  /** The configuration file; `reload()` reads it again. */
  readonly configFile: string;
  /** An already loaded configuration of `configFile` (loaded at start otherwise). */
  readonly config?: Config;
  readonly logger: Logger;
  /** `HOST:PORT` for /healthz, /readyz, /metrics, /status; no HTTP server when absent. */
  readonly listen?: string | ListenAddress;
  /** How long in-flight transfers may run on after stop() before they are aborted. @default 30000 */
  readonly graceMs?: number;
  /** Sync every source once at start. @default true */
  readonly catchUp?: boolean;
  /** Retries of upstream requests, passed to runSync and the registry clients. */
  readonly retry?: RunSyncOptions['retry'];
  /** Checksum-database verification of new module versions, passed to runSync. */
  readonly sumCheck?: SumCheck;
  /** Called after a configuration was loaded (at start and on each successful reload). */
  readonly onConfig?: (config: Config) => void;
  /** Include Node process metrics in /metrics. @default true */
  readonly processMetrics?: boolean;
  readonly now?: () => Date;
}

/** The outcome of a job's last run. */
export interface JobRun {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly ok: boolean;
  readonly aborted: boolean;
  readonly error?: string;
  /** Export only: the bundle written, or why none was. */
  readonly bundle?: string;
  /** Bytes written: blob bytes fetched and stored (a sync), or the bundle's size (an export). */
  readonly bytes?: number;
  /** Sync only: blobs fetched and stored. */
  readonly blobs?: number;
  readonly skippedReason?: string;
}

/** One job in /status. */
export interface JobStatus {
  readonly name: string;
  readonly kind: 'image' | 'module' | 'export' | 'gc';
  readonly schedule: string | null;
  /** The source's `lifecycle` (`active` for the export job); an archived source is never run. */
  readonly lifecycle: LifecycleState;
  /** The source's lifecycle `note`, or null. */
  readonly note: string | null;
  readonly state: 'idle' | 'running';
  readonly runningSince: string | null;
  readonly lastRun: JobRun | null;
  readonly nextRun: string | null;
  /** The last error this source reported (kept in the store across restarts). */
  readonly lastError: string | null;
  readonly lastErrorAt: string | null;
  readonly lastSuccess: string | null;
  /** Scheduled runs skipped because this job was still running. */
  readonly skipped: number;
}

/** The /status document. */
export interface DaemonStatus {
  readonly startedAt: string;
  readonly config: string;
  readonly store: string;
  readonly stopping: boolean;
  /** Registry transfers (`concurrency`). */
  readonly queue: { readonly size: number; readonly pending: number; readonly concurrency: number };
  /** GOPROXY requests (`goModules.concurrency`). */
  readonly moduleQueue: { readonly size: number; readonly pending: number; readonly concurrency: number };
  readonly sources: readonly JobStatus[];
  readonly export: JobStatus | null;
  /** The scheduled garbage collection, when `gc.schedule` is set. */
  readonly gc: JobStatus | null;
  readonly lastBundle: { readonly id: string; readonly sequence: number; readonly createdAt: string } | null;
  /** The store's size, what an export would carry now, the bundles exported and their confirmation; null before the store is open. */
  readonly overview: StoreOverview | null;
}

/** The outcome of reload(). */
export type ReloadResult = { readonly ok: true; readonly added: readonly string[]; readonly removed: readonly string[] } | { readonly ok: false; readonly error: FerryError };

interface Job {
  readonly name: string;
  readonly kind: 'image' | 'module' | 'export' | 'gc';
  schedule: string | undefined;
  lifecycle: LifecycleState;
  note: string | undefined;
  task: ScheduledTask | undefined;
  running: Promise<void> | undefined;
  runningSince: Date | undefined;
  lastRun: JobRun | undefined;
  skipped: number;
}

interface JobSpec {
  readonly name: string;
  readonly kind: Job['kind'];
  readonly schedule: string | undefined;
  readonly lifecycle: LifecycleState;
  readonly note: string | undefined;
}

/**
 * Every job a configuration defines, with its effective schedule. An archived source keeps its
 * job (for /status and the metrics) but has no schedule: it is never contacted upstream again.
 */
export function jobSpecs(config: Config): JobSpec[] {
  const sched = (lifecycle: LifecycleState, s: string | undefined): string | undefined => (lifecycle === 'archived' ? undefined : s);
  const specs: JobSpec[] = config.images.map((i) => ({ name: i.name, kind: 'image', schedule: sched(i.lifecycle, i.schedule ?? config.schedule), lifecycle: i.lifecycle, note: i.note }));
  for (const r of config.goModules?.roots ?? []) {
    specs.push({ name: r.name, kind: 'module', schedule: sched(r.lifecycle, r.schedule ?? config.goModules?.schedule ?? config.schedule), lifecycle: r.lifecycle, note: r.note });
  }
  if (config.export?.schedule !== undefined) specs.push({ name: EXPORT_JOB, kind: 'export', schedule: config.export.schedule, lifecycle: 'active', note: undefined });
  if (config.gc?.schedule !== undefined) specs.push({ name: GC_JOB, kind: 'gc', schedule: config.gc.schedule, lifecycle: 'active', note: undefined });
  return specs;
}

/**
 * Checks what the daemon needs beyond the schema: cron expressions node-cron accepts, and a
 * complete `export` section when it is scheduled. Throws CONFIG_INVALID naming the key.
 */
export function checkDaemonConfig(config: Config): void {
  const bad = (key: string, why: string): FerryError => new FerryError('CONFIG_INVALID', `${config.file}: ${key}: ${why}`, { file: config.file });
  const cron = (key: string, expr: string | undefined): void => {
    if (expr === undefined) return;
    const v = validateDetailed(expr);
    if (!v.valid) throw bad(key, `invalid cron expression "${expr}": ${v.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
  };
  cron('schedule', config.schedule);
  config.images.forEach((img, i) => cron(`images[${i}].schedule`, img.schedule));
  cron('goModules.schedule', config.goModules?.schedule);
  config.goModules?.roots.forEach((r, i) => cron(`goModules.modules[${i}].schedule`, r.schedule));
  const exp = config.export;
  if (exp?.schedule !== undefined) {
    cron('export.schedule', exp.schedule);
    if (exp.out === undefined) throw bad('export.out', 'a scheduled export needs an output folder');
    if (exp.signingKey === undefined) throw bad('export.signingKey', 'a scheduled export needs a signing key');
    if (exp.splitSize !== undefined) {
      try {
        parseByteSize(exp.splitSize);
      } catch (err) {
        throw bad('export.splitSize', (err as Error).message);
      }
    }
  }
  if (exp?.schedule !== undefined && jobSpecs(config).some((s) => s.name === EXPORT_JOB && s.kind !== 'export')) {
    throw bad('images', `no source may be named "${EXPORT_JOB}" while export.schedule is set (the automatic export job has that name)`);
  }
  cron('gc.schedule', config.gc?.schedule);
  if (config.gc?.minAge !== undefined) parseDuration(config.gc.minAge);
  if (config.gc?.schedule !== undefined && jobSpecs(config).some((s) => s.name === GC_JOB && s.kind !== 'gc')) {
    throw bad('images', `no source may be named "${GC_JOB}" while gc.schedule is set (the garbage collection job has that name)`);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Ferry's daemon. Create, `start()`, then `reload()` and `stop()` as signals arrive. */
export class Daemon {
  private config: Config;
  private store: Store | undefined;
  private readonly queue: PQueue;
  /** GOPROXY requests: small files, many at once, apart from the registries' transfers. */
  private readonly moduleQueue: PQueue;
  private clients: RegistryClients;
  private readonly jobs = new Map<string, Job>();
  /** Every run in flight, including runs of jobs a reload removed. */
  private readonly inflight = new Set<Promise<void>>();
  /** Aborts every run at shutdown; each in-flight request and stream of every run listens on it. */
  private readonly abort = (() => {
    const ac = new AbortController();
    setMaxListeners(0, ac.signal);
    return ac;
  })();
  private readonly metrics: DaemonMetrics;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private http: DaemonHttpServer | undefined;
  private startedAt: Date | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;

  constructor(private readonly opts: DaemonOptions) {
    if (opts.graceMs !== undefined && (!Number.isFinite(opts.graceMs) || opts.graceMs < 0)) {
      throw new FerryError('USAGE', `grace must be a non-negative number of milliseconds, got ${String(opts.graceMs)}`);
    }
    this.logger = opts.logger;
    this.now = opts.now ?? (() => new Date());
    this.config = opts.config ?? loadConfig(opts.configFile);
    checkDaemonConfig(this.config);
    this.queue = new PQueue({ concurrency: this.config.concurrency });
    this.moduleQueue = new PQueue({ concurrency: moduleConcurrency(this.config) });
    this.metrics = new DaemonMetrics({
      store: () => this.store?.stats(),
      queue: () => ({ size: this.queue.size + this.moduleQueue.size, pending: this.queue.pending + this.moduleQueue.pending }),
      ...(opts.processMetrics !== undefined ? { processMetrics: opts.processMetrics } : {}),
    });
    this.clients = this.newClients(this.config);
  }

  /** The bound HTTP address, once started with `listen`. */
  get address(): ListenAddress | undefined {
    return this.http?.address;
  }

  /** The configuration in force. */
  get currentConfig(): Config {
    return this.config;
  }

  /** Opens the store, starts the HTTP server and the schedules, and launches the catch-up pass. */
  async start(): Promise<void> {
    if (this.startedAt) throw new FerryError('USAGE', 'daemon already started');
    this.startedAt = this.now();
    this.opts.onConfig?.(this.config);
    this.store = Store.open(this.config.store, { logger: this.logger });
    try {
      if (this.opts.listen !== undefined) {
        const listen = typeof this.opts.listen === 'string' ? parseListen(this.opts.listen) : this.opts.listen;
        this.http = await startHttpServer(
          listen,
          { ready: () => this.readiness(), metrics: () => this.metrics.render(), status: () => this.status(), page: () => renderStatusPage(this.status(), this.now()) },
          this.logger,
        );
        const addr = formatListen(this.http.address);
        this.logger.info({ listen: addr, url: `http://${addr}` }, `listening on http://${addr}`);
      }
    } catch (err) {
      this.store.close();
      this.store = undefined;
      throw err;
    }
    const missedExport = await this.exportMissed();
    this.applyJobs(this.config);
    const sources = [...this.jobs.values()].filter((j) => isSource(j.kind) && j.lifecycle !== 'archived');
    const archived = [...this.jobs.values()].filter((j) => j.lifecycle === 'archived').map((j) => j.name);
    const unscheduled = sources.filter((j) => j.schedule === undefined).map((j) => j.name);
    if (unscheduled.length > 0) this.logger.warn({ sources: unscheduled }, 'no schedule for these sources: synced at start and on reload only');
    if (archived.length > 0) this.logger.info({ sources: archived }, 'archived sources: never contacted upstream (their content stays in the store)');
    this.logger.info({ config: this.config.file, store: this.config.store, sources: sources.length, archived: archived.length, export: this.jobs.has(EXPORT_JOB) }, 'daemon started');
    if (this.opts.catchUp !== false) {
      for (const j of sources) this.trigger(j.name);
    }
    if (missedExport) {
      // After the catch-up, so the missed bundle carries what changed while we were down.
      this.logger.info('a scheduled export was missed while the daemon was down: exporting after the catch-up sync');
      void Promise.allSettled([...this.inflight]).then(() => {
        if (this.jobs.get(EXPORT_JOB)?.kind === 'export') this.trigger(EXPORT_JOB);
      });
    }
  }

  /**
   * Starts a run of a job now, unless it is still running (then the run is skipped and
   * counted). Returns the run's promise, or undefined when skipped or stopping.
   */
  trigger(name: string): Promise<void> | undefined {
    const job = this.jobs.get(name);
    if (!job) throw new FerryError('USAGE', `no job named "${name}" (jobs: ${[...this.jobs.keys()].join(', ') || 'none'})`);
    if (this.stopping || !this.store) return undefined;
    if (job.lifecycle === 'archived') {
      this.logger.debug({ job: name }, 'archived source: not synced');
      return undefined;
    }
    if (job.running) {
      job.skipped++;
      this.metrics.recordSkip(name);
      this.logger.warn({ job: name, runningSince: job.runningSince?.toISOString(), skipped: job.skipped }, 'previous run still going: skipped this one');
      return undefined;
    }
    const config = this.config;
    const started = this.now();
    job.runningSince = started;
    this.metrics.setRunning(name, true);
    const work = job.kind === 'export' ? this.runExport(job, config, started) : job.kind === 'gc' ? this.runGc(job, config, started) : this.runSource(job, config, started);
    const p: Promise<void> = work
      .catch((err: unknown) => {
        // Only bugs and store faults get here: runSync reports source failures in its summary.
        const fe = toFerryError(err, 'INTERNAL');
        this.logger.error({ job: name, code: fe.code, err: fe.message }, 'run failed');
        this.finish(job, started, { ok: false, aborted: this.abort.signal.aborted, error: fe.message });
      })
      .finally(() => {
        this.inflight.delete(p);
        if (job.running === p) job.running = undefined;
        job.runningSince = undefined;
        this.metrics.setRunning(name, false);
      });
    job.running = p;
    this.inflight.add(p);
    return p;
  }

  /** Requests running in both queues. */
  private transfers(): number {
    return this.queue.pending + this.moduleQueue.pending;
  }

  /** Resolves when no run is in flight. */
  async whenIdle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /**
   * Reads the configuration file again. An invalid file (or one that moves the store) leaves
   * the running configuration in force and is logged with the loader's file:line:column.
   */
  async reload(): Promise<ReloadResult> {
    if (this.stopping || !this.store) {
      return { ok: false, error: new FerryError('USAGE', 'the daemon is not running') };
    }
    let next: Config;
    try {
      next = loadConfig(this.opts.configFile);
      checkDaemonConfig(next);
      if (next.store !== this.config.store) {
        throw new FerryError('CONFIG_INVALID', `${next.file}: store: changing the store (${this.config.store} → ${next.store}) needs a restart`, { file: next.file });
      }
    } catch (err) {
      const fe = toFerryError(err, 'CONFIG_INVALID');
      this.metrics.recordReload(false);
      this.logger.error({ code: fe.code, err: fe.message, config: this.opts.configFile }, `configuration reload failed, keeping the running configuration: ${fe.message}`);
      return { ok: false, error: fe };
    }
    const before = new Set([...this.jobs.keys()]);
    this.config = next;
    this.queue.concurrency = next.concurrency;
    this.moduleQueue.concurrency = moduleConcurrency(next);
    // Fresh clients pick up changed credentials and TLS settings; runs in flight keep theirs,
    // and the old connection pools close once those runs are done.
    const old = this.clients;
    this.clients = this.newClients(next);
    void this.whenIdle().then(() => old.close());
    this.opts.onConfig?.(next);
    this.applyJobs(next);
    const added = [...this.jobs.keys()].filter((n) => !before.has(n));
    const removed = [...before].filter((n) => !this.jobs.has(n));
    this.metrics.recordReload(true);
    this.logger.info({ config: next.file, added, removed }, 'configuration reloaded');
    for (const n of added) if (isSource(this.jobs.get(n)?.kind) && this.jobs.get(n)?.lifecycle !== 'archived') this.trigger(n);
    return { ok: true, added, removed };
  }

  /**
   * Stops scheduling, lets transfers already running finish for up to the grace period, then
   * aborts what is left, waits for every run to wind down, and closes the server and store.
   */
  stop(opts: { readonly graceMs?: number } = {}): Promise<void> {
    this.stopped ??= this.shutdown(opts.graceMs ?? this.opts.graceMs ?? DEFAULT_GRACE_MS);
    return this.stopped;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const j of this.jobs.values()) await this.unschedule(j);
    if (this.inflight.size > 0) {
      this.logger.info({ runs: this.inflight.size, transfers: this.transfers(), graceSeconds: graceMs / 1000 }, 'stopping: letting in-flight transfers finish');
      // Nothing new starts; what already started may finish within the grace period.
      this.queue.pause();
      this.moduleQueue.pause();
      const timer = new AbortController();
      const drained = await Promise.race([
        Promise.all([this.queue.onPendingZero(), this.moduleQueue.onPendingZero()]).then(() => true),
        Promise.allSettled([...this.inflight]).then(() => true),
        sleep(graceMs, timer.signal).then(() => false),
      ]);
      timer.abort();
      if (!drained) this.logger.warn({ transfers: this.transfers() }, 'grace period over: aborting in-flight transfers');
    }
    this.abort.abort(new FerryError('ABORTED', 'the daemon is stopping'));
    // Queued tasks now start with an aborted signal and fail at once, so every run can end.
    this.queue.start();
    this.moduleQueue.start();
    await this.whenIdle();
    await this.http?.close();
    await this.clients.close();
    this.store?.close();
    this.store = undefined;
    this.logger.info('daemon stopped');
  }

  /** The readiness verdict: store open, not stopping, and no source whose last run failed (archived sources do not run, so they count for nothing). */
  readiness(): { ready: boolean; detail: { ready: boolean; store: boolean; stopping: boolean; failing: string[] } } {
    const failing = [...this.jobs.values()]
      .filter((j) => isSource(j.kind) && j.lifecycle !== 'archived' && j.lastRun !== undefined && !j.lastRun.ok)
      .map((j) => j.name);
    const store = this.store !== undefined;
    const ready = store && !this.stopping && failing.length === 0;
    return { ready, detail: { ready, store, stopping: this.stopping, failing } };
  }

  /** The /status document. */
  status(): DaemonStatus {
    const states = new Map((this.store?.runs.sourceStates() ?? []).map((s) => [s.source, s]));
    const last = this.store?.bundles.last();
    const view = (j: Job): JobStatus => {
      const st = states.get(j.name);
      const exportError = !isSource(j.kind) && j.lastRun && !j.lastRun.ok ? j.lastRun : undefined;
      return {
        name: j.name,
        kind: j.kind,
        schedule: j.schedule ?? null,
        lifecycle: j.lifecycle,
        note: j.note ?? null,
        state: j.running ? 'running' : 'idle',
        runningSince: j.runningSince?.toISOString() ?? null,
        lastRun: j.lastRun ?? null,
        nextRun: j.task && !this.stopping ? (j.task.getNextRun()?.toISOString() ?? null) : null,
        lastError: st?.lastError ?? exportError?.error ?? (j.lastRun && !j.lastRun.ok ? (j.lastRun.error ?? null) : null),
        lastErrorAt: st?.lastErrorAt ?? exportError?.finishedAt ?? null,
        lastSuccess: st?.lastOk ?? (j.kind === 'export' && last ? last.createdAt : null),
        skipped: j.skipped,
      };
    };
    const jobs = [...this.jobs.values()];
    const exp = this.jobs.get(EXPORT_JOB);
    return {
      startedAt: this.startedAt?.toISOString() ?? '',
      config: this.config.file,
      store: this.config.store,
      stopping: this.stopping,
      queue: { size: this.queue.size, pending: this.queue.pending, concurrency: this.queue.concurrency },
      moduleQueue: { size: this.moduleQueue.size, pending: this.moduleQueue.pending, concurrency: this.moduleQueue.concurrency },
      sources: jobs.filter((j) => isSource(j.kind)).map(view),
      export: exp ? view(exp) : null,
      gc: this.jobs.get(GC_JOB)?.kind === 'gc' ? view(this.jobs.get(GC_JOB)!) : null,
      lastBundle: last ? { id: last.id, sequence: last.sequence, createdAt: last.createdAt } : null,
      overview: this.store ? storeOverview(this.store, this.config) : null,
    };
  }

  /** The Prometheus exposition (what /metrics serves). */
  metricsText(): Promise<{ contentType: string; body: string }> {
    return this.metrics.render();
  }

  private newClients(config: Config): RegistryClients {
    return new RegistryClients({
      config,
      logger: this.logger,
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
      onResponse: (info) => this.metrics.observeResponse(info),
    });
  }

  /** Brings the job table in line with a configuration, keeping the state of surviving jobs. */
  private applyJobs(config: Config): void {
    const specs = jobSpecs(config);
    const wanted = new Set(specs.map((s) => s.name));
    for (const [name, job] of this.jobs) {
      if (wanted.has(name)) continue;
      if (isSource(job.kind)) this.metrics.forgetLifecycle(name);
      void this.unschedule(job);
      this.jobs.delete(name); // a run in flight finishes on its own (it stays in `inflight`)
    }
    for (const spec of specs) {
      let job = this.jobs.get(spec.name);
      if (!job) {
        job = { name: spec.name, kind: spec.kind, schedule: undefined, lifecycle: spec.lifecycle, note: spec.note, task: undefined, running: undefined, runningSince: undefined, lastRun: undefined, skipped: 0 };
        this.jobs.set(spec.name, job);
        if (isSource(spec.kind)) this.metrics.declareSource(spec.name);
      }
      job.lifecycle = spec.lifecycle;
      job.note = spec.note;
      if (isSource(spec.kind)) this.metrics.setLifecycle(spec.name, spec.lifecycle);
      if (job.task && job.schedule === spec.schedule) continue;
      void this.unschedule(job);
      job.schedule = spec.schedule;
      if (spec.schedule === undefined) continue;
      const name = spec.name;
      // The task body only hands off to trigger(), so node-cron never sees a busy task:
      // overlap is decided (and counted) here, not by node-cron's noOverlap.
      const task = createTask(spec.schedule, () => void this.trigger(name), { name: `ferry:${name}`, noOverlap: false, suppressMissedWarning: true });
      job.task = task;
      void Promise.resolve(task.start()).catch((err: unknown) => this.logger.error({ job: name, err: String(err) }, 'cannot start the schedule'));
      if (spec.kind === 'export') void this.rememberExportDue();
    }
  }

  private async unschedule(job: Job): Promise<void> {
    const t = job.task;
    job.task = undefined;
    if (t) await t.destroy();
  }

  private finish(job: Job, started: Date, r: Omit<JobRun, 'startedAt' | 'finishedAt' | 'durationMs'>): JobRun {
    const finished = this.now();
    const run: JobRun = { startedAt: started.toISOString(), finishedAt: finished.toISOString(), durationMs: finished.getTime() - started.getTime(), ...r };
    job.lastRun = run;
    return run;
  }

  private async runSource(job: Job, config: Config, started: Date): Promise<void> {
    const store = this.store;
    if (!store) return;
    const log = this.logger.child({ source: job.name });
    log.debug('sync started');
    const s = await runSync({
      config,
      store,
      logger: log,
      only: [job.name],
      signal: this.abort.signal,
      queue: this.queue,
      moduleQueue: this.moduleQueue,
      clients: this.clients,
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
      ...(this.opts.sumCheck ? { sumCheck: this.opts.sumCheck } : {}),
    });
    const aborted = this.abort.signal.aborted;
    const first = s.failures[0];
    const run = this.finish(job, started, { ok: s.ok, aborted, bytes: s.blobs.bytes, blobs: s.blobs.fetched, ...(first ? { error: first.message } : {}) });
    const img = s.results[0];
    const mod = s.moduleResults[0];
    this.metrics.recordRun({
      source: job.name,
      ok: s.ok,
      aborted,
      finishedAt: new Date(run.finishedAt),
      durationMs: run.durationMs,
      bytes: s.blobs.bytes,
      blobs: s.blobs.fetched,
      tracked: img ? img.tagsSelected : mod ? mod.selected.length : undefined,
      errorCodes: s.failures.map((f) => f.code),
    });
    const fields = { ok: s.ok, aborted, durationMs: run.durationMs, blobs: s.blobs.fetched, bytes: s.blobs.bytes, changed: s.tags.changed, newVersions: s.modules.versionsNew, modOnly: s.modules.modOnly };
    if (s.ok) log.info(fields, 'sync finished');
    else if (aborted) log.warn(fields, 'sync aborted');
    else log.error({ ...fields, failures: s.failures.length, error: first?.message }, 'sync failed');
  }

  private async runExport(job: Job, config: Config, started: Date): Promise<void> {
    const store = this.store;
    const exp = config.export;
    if (!store || !exp?.out || !exp.signingKey) return;
    const log = this.logger.child({ job: EXPORT_JOB });
    try {
      const last = store.bundles.last();
      // Per source: after an operator's `export --only`, the other sources' changes are still due.
      // A lifecycle change alone (deprecated, archived, active again) is due too: only a bundle tells the inside.
      const lifecycle = inactiveSources(config);
      if (pendingChanges(store, last) === 0 && !lifecycleChanged(store, lifecycle)) {
        log.info({ lastBundle: last?.id ?? null, journal: store.journal.currentSeq() }, 'nothing changed since the last bundle: no export');
        this.finish(job, started, { ok: true, aborted: false, skippedReason: 'nothing changed since the last bundle' });
        return;
      }
      const passphrase = exp.signingKeyPassphrase ? resolveSecret(exp.signingKeyPassphrase, 'export.signingKeyPassphrase', dirname(config.file)) : undefined;
      const r = await exportBundle({
        store,
        outDir: exp.out,
        signingKey: exp.signingKey,
        ...(passphrase !== undefined ? { passphrase } : {}),
        ...(exp.splitSize !== undefined ? { splitSize: parseByteSize(exp.splitSize) } : {}),
        lifecycle,
        logger: log,
        signal: this.abort.signal,
        now: this.now,
      });
      this.metrics.recordExport(r.bytes, this.now());
      log.info({ bundle: r.id, sequence: r.sequence, parent: r.parent, files: r.files, bytes: r.bytes, images: r.images, modules: r.modules, blobs: r.blobs }, `bundle ${r.name} written`);
      if (exp.keep !== undefined) {
        await pruneBundles({ dir: exp.out, keep: exp.keep, confirmations: exp.confirmations, store, logger: log, signal: this.abort.signal });
      }
      this.finish(job, started, { ok: true, aborted: false, bundle: r.id, bytes: r.bytes });
    } catch (err) {
      const fe = toFerryError(err, 'INTERNAL');
      if (fe.code === 'EXPORT_BUSY') {
        // An operator's `ferry export` holds the store: this round is skipped, the next one exports.
        this.metrics.recordSkip(job.name);
        log.warn({ code: fe.code, err: fe.message }, 'another export is running: skipped this round');
        this.finish(job, started, { ok: true, aborted: false, skippedReason: fe.message });
        return;
      }
      this.metrics.recordExportError(fe.code);
      log.error({ code: fe.code, err: fe.message }, 'export failed');
      this.finish(job, started, { ok: false, aborted: this.abort.signal.aborted, error: fe.message });
    } finally {
      await this.rememberExportDue();
    }
  }

  /** One scheduled gc (`ferry gc -c` of the configuration in force): source syncs may run beside it (see `gc.minAge`). */
  private async runGc(job: Job, config: Config, started: Date): Promise<void> {
    const store = this.store;
    if (!store) return;
    const log = this.logger.child({ job: GC_JOB });
    try {
      const file = config.export?.confirmations;
      const covered = file === undefined ? undefined : confirmedCoverage(store.bundles, await readConfirmations(file));
      const r = await store.gc({
        keepSources: new Set(config.images.map((i) => i.name)),
        ...(config.gc?.minAge !== undefined ? { minAgeMs: parseDuration(config.gc.minAge) } : {}),
        ...(covered ? { journalCovered: covered } : {}),
      });
      this.metrics.recordGc(r.bytes, r.blobs);
      log.info({ dropped: r.droppedSources, manifests: r.manifests, blobs: r.blobs, bytes: r.bytes, resumed: r.resumed, runs: r.runs, journal: r.journal }, 'garbage collected');
      this.finish(job, started, { ok: true, aborted: false });
    } catch (err) {
      const fe = toFerryError(err, 'INTERNAL');
      log.error({ code: fe.code, err: fe.message }, 'gc failed');
      this.finish(job, started, { ok: false, aborted: false, error: fe.message });
    }
  }

  /** True when the due time remembered in `export.out` has passed (an export was missed). */
  private async exportMissed(): Promise<boolean> {
    const out = this.config.export?.schedule !== undefined ? this.config.export.out : undefined;
    if (!out) return false;
    try {
      const due = new Date((await readFile(join(out, EXPORT_DUE_FILE), 'utf8')).trim());
      return !Number.isNaN(due.getTime()) && due.getTime() <= this.now().getTime();
    } catch {
      return false;
    }
  }

  /** Writes the next due time of the export job into `export.out` (temp + rename). */
  private async rememberExportDue(): Promise<void> {
    const out = this.config.export?.out;
    const next = this.jobs.get(EXPORT_JOB)?.task?.getNextRun();
    if (!out || !next) return;
    const file = join(out, EXPORT_DUE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await mkdir(out, { recursive: true });
      await writeFile(tmp, `${next.toISOString()}\n`);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      this.logger.warn({ file, err: (err as Error).message }, 'cannot remember when the next export is due');
    }
  }
}
