/** One sync pass over the configured sources: registry requests share one concurrency-limited queue, GOPROXY requests another. */
import { dirname } from 'node:path';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import type { SourceResultInput, Store } from '../store/index.js';
import { RegistryClients, type ResponseHook } from './clients.js';
import { syncImage, type ForeignLayerReport, type ImageResult, type SyncContext, type SyncEvent } from './images.js';
import { closeModuleContext, createModuleContext, modOnlyMessage, syncModuleRoot, type ModuleRootResult, type SumCheck } from './modules.js';
import { createSumChecker, type SumChecker } from './sumdb.js';
import { createDispatcher, type RetryOptions } from '../net/index.js';
import { GoProxyClient } from '../goproxy/index.js';
import { moduleConcurrency, parseDuration, resolveSecret } from '../config/index.js';

/** Options for runSync. */
export interface RunSyncOptions {
  readonly config: Config;
  readonly store: Store;
  readonly logger: Logger;
  /** Only these source names (image names or module roots); all when empty. */
  readonly only?: readonly string[];
  readonly signal?: AbortSignal;
  /**
   * The registry requests' queue (the daemon passes its own); a new one with `config.concurrency`
   * otherwise. Go module requests have a queue of their own (moduleQueue).
   */
  readonly queue?: PQueue;
  /** The GOPROXY requests' queue (the daemon passes its own); a new one with `goModules.concurrency` otherwise. */
  readonly moduleQueue?: PQueue;
  readonly onEvent?: (e: SyncEvent) => void;
  readonly onResponse?: ResponseHook;
  readonly retry?: RetryOptions;
  /** Registry clients to reuse across passes (the daemon keeps one). */
  readonly clients?: RegistryClients;
  /**
   * Checksum-database verification for new module versions; by default one is built from
   * `goModules.sumdb` (none when it is `off`).
   */
  readonly sumCheck?: SumCheck | SumChecker;
}

/** What one sync pass did. */
export interface SyncSummary {
  readonly ok: boolean;
  readonly images: { checked: number; changed: number; unchanged: number; failed: number };
  readonly tags: { checked: number; changed: number; unchanged: number; failed: number };
  readonly blobs: { fetched: number; bytes: number };
  readonly manifestsFetched: number;
  readonly durationMs: number;
  /** `modOnly`: versions reached this pass that are carried with only .info and .mod (the proxy has no zip). */
  readonly modules: { roots: number; unchanged: number; versionsChecked: number; versionsNew: number; modOnly: number; failed: number };
  readonly failures: ReadonlyArray<{ source: string; tag?: string; module?: string; version?: string; code: string; message: string }>;
  /** What worked but deserves a look: each version a root reached that is carried without its zip. */
  readonly warnings: ReadonlyArray<{ source: string; module: string; version: string; message: string }>;
  /** Foreign (non-distributable) layers of the manifests fetched: `stored` false when left out. */
  readonly foreignLayers: ReadonlyArray<{ source: string } & ForeignLayerReport>;
  readonly results: readonly ImageResult[];
  readonly moduleResults: readonly ModuleRootResult[];
  /** Tags that left the store's live tags this pass (`prune: true`), by source. */
  readonly pruned: ReadonlyArray<{ readonly source: string; readonly tag: string }>;
  /** Sources left alone because their `lifecycle` is `archived` (no upstream request; not a failure). */
  readonly archived: readonly string[];
}

/** Builds the GOPROXY client for the configured proxy (TLS, CA and credentials as for registries). */
export function createProxyClient(config: Config, retry?: RetryOptions): GoProxyClient | undefined {
  const gm = config.goModules;
  if (!gm) return undefined;
  const baseDir = dirname(config.file);
  const credentials =
    gm.username !== undefined && gm.password !== undefined
      ? { username: resolveSecret(gm.username, 'goModules.username', baseDir), password: resolveSecret(gm.password, 'goModules.password', baseDir) }
      : undefined;
  return new GoProxyClient({
    baseUrl: gm.proxy,
    ...(gm.proxy.startsWith('file:')
      ? {}
      : {
          dispatcher: createDispatcher({
            tls: gm.tls,
            ...(gm.caFile ? { caFile: gm.caFile } : {}),
            ...(gm.idleTimeout !== undefined ? { bodyTimeoutMs: parseDuration(gm.idleTimeout) } : {}),
          }),
        }),
    ...(retry ? { retry } : {}),
    ...(credentials ? { credentials } : {}),
  });
}

/** Checks that every `--only` name exists in the configuration. */
export function checkOnly(config: Config, only: readonly string[] | undefined): void {
  if (!only || only.length === 0) return;
  const names = new Set([...config.images.map((i) => i.name), ...(config.goModules?.roots.map((r) => r.name) ?? [])]);
  const unknown = only.filter((n) => !names.has(n));
  if (unknown.length > 0) {
    throw new FerryError('USAGE', `--only ${unknown.join(', ')}: no such source in ${config.file} (sources: ${[...names].join(', ') || 'none'})`);
  }
}

/** Runs one sync pass. Never throws for a source failure: see `ok` and `failures`. */
export async function runSync(opts: RunSyncOptions): Promise<SyncSummary> {
  const { config, store, logger } = opts;
  checkOnly(config, opts.only);
  const started = Date.now();
  const queue = opts.queue ?? new PQueue({ concurrency: config.concurrency });
  const clients =
    opts.clients ??
    new RegistryClients({ config, logger, ...(opts.retry ? { retry: opts.retry } : {}), ...(opts.onResponse ? { onResponse: opts.onResponse } : {}) });
  const ctx: SyncContext = {
    store,
    queue,
    logger,
    signal: opts.signal,
    emit: opts.onEvent ?? (() => {}),
    inflight: new Map(),
    counters: { blobsFetched: 0, bytesFetched: 0, manifestsFetched: 0 },
  };
  const wanted = (name: string): boolean => !opts.only || opts.only.length === 0 || opts.only.includes(name);
  // An archived source is never contacted upstream again: it is not part of the pass at all.
  const archived = [...config.images, ...(config.goModules?.roots ?? [])].filter((s) => wanted(s.name) && s.lifecycle === 'archived').map((s) => s.name);
  if (archived.length > 0) logger.info({ sources: archived }, 'archived sources: not contacted upstream');
  const images = config.images.filter((i) => wanted(i.name) && i.lifecycle !== 'archived');
  const roots = (config.goModules?.roots ?? []).filter((r) => wanted(r.name) && r.lifecycle !== 'archived');
  const runId = store.runs.start('sync', { sources: [...images.map((i) => i.name), ...roots.map((r) => r.name)] });
  const imageWork = Promise.all(images.map((img) => syncImage(ctx, img, clients.get(img.ref.registry))));
  // Pass totals: a version reached from several roots counts once here (the roots' own counts overlap).
  let moduleTotals = { checked: 0, fresh: 0 };
  // The module roots' outcomes, recorded with the run's end.
  let moduleOutcomes: SourceResultInput[] = [];
  const moduleWork = (async (): Promise<ModuleRootResult[]> => {
    if (roots.length === 0) return [];
    let mctx;
    let checker: SumCheck | SumChecker | undefined;
    try {
      const proxy = createProxyClient(config, opts.retry);
      if (!proxy) return [];
      checker = opts.sumCheck ?? createSumChecker({ store, config, logger, ...(opts.retry ? { retry: opts.retry } : {}) });
      // GOPROXY files are small and many: their own, wider queue (goModules.concurrency).
      const moduleQueue = opts.moduleQueue ?? new PQueue({ concurrency: moduleConcurrency(config) });
      mctx = await createModuleContext({ ...ctx, queue: moduleQueue }, proxy, checker);
      moduleTotals = mctx.moduleCounters;
      moduleOutcomes = mctx.outcomes;
    } catch (err) {
      // A proxy that cannot even be set up (a missing secret, say) fails every module root.
      const fe = toFerryError(err);
      moduleOutcomes = roots.map((r) => ({ source: r.name, ok: false, error: fe.message }));
      return roots.map((r) => ({ name: r.name, ok: false, unchanged: false, selected: [], versionsChecked: 0, versionsNew: 0, modOnly: [], errors: [{ code: fe.code, message: fe.message }] }));
    }
    try {
      const results = await Promise.all(roots.map((r) => syncModuleRoot(mctx, r)));
      const full = checker && 'complete' in checker ? (checker as SumChecker) : undefined;
      if (full && !opts.signal?.aborted) {
        // Prove every record against the newest head now, so the next export has its tiles.
        try {
          await full.complete(opts.signal ? { signal: opts.signal } : {});
        } catch (err) {
          const fe = toFerryError(err);
          logger.error({ code: fe.code, database: full.database }, `checksum database: ${fe.message}`);
          return [
            ...results,
            { name: `sumdb:${full.database}`, ok: false, unchanged: false, selected: [], versionsChecked: 0, versionsNew: 0, modOnly: [], errors: [{ code: fe.code, message: fe.message }] },
          ];
        }
      }
      return results;
    } finally {
      await closeModuleContext(mctx);
    }
  })();
  const [results, moduleResults] = await Promise.all([imageWork, moduleWork]);
  const failures = [
    ...results.flatMap((r) =>
      r.errors.map((e) => ({ source: r.name, ...(e.tag !== undefined ? { tag: e.tag } : {}), code: e.code, message: e.message })),
    ),
    ...moduleResults.flatMap((r) =>
      r.errors.map((e) => ({
        source: r.name,
        ...(e.module !== undefined ? { module: e.module } : {}),
        ...(e.version !== undefined ? { version: e.version } : {}),
        code: e.code,
        message: e.message,
      })),
    ),
  ];
  const warnings = moduleResults.flatMap((r) =>
    r.modOnly.map((mv) => {
      const at = mv.lastIndexOf('@');
      return { source: r.name, module: mv.slice(0, at), version: mv.slice(at + 1), message: modOnlyMessage(mv) };
    }),
  );
  const sum = (f: (r: ImageResult) => number): number => results.reduce((a, r) => a + f(r), 0);
  const summary: SyncSummary = {
    ok: failures.length === 0,
    images: {
      checked: results.length,
      changed: results.filter((r) => r.changed > 0).length,
      unchanged: results.filter((r) => r.ok && r.changed === 0).length,
      failed: results.filter((r) => !r.ok).length,
    },
    tags: { checked: sum((r) => r.tagsSelected), changed: sum((r) => r.changed), unchanged: sum((r) => r.unchanged), failed: sum((r) => r.failed) },
    blobs: { fetched: ctx.counters.blobsFetched, bytes: ctx.counters.bytesFetched },
    manifestsFetched: ctx.counters.manifestsFetched,
    durationMs: Date.now() - started,
    modules: {
      roots: moduleResults.length,
      unchanged: moduleResults.filter((r) => r.unchanged).length,
      versionsChecked: moduleTotals.checked,
      versionsNew: moduleTotals.fresh,
      modOnly: new Set(moduleResults.flatMap((r) => r.modOnly)).size,
      failed: moduleResults.filter((r) => !r.ok).length,
    },
    failures,
    warnings,
    foreignLayers: results.flatMap((r) => r.foreignLayers.map((f) => ({ source: r.name, ...f }))),
    results,
    moduleResults,
    pruned: results.flatMap((r) => r.pruned.map((tag) => ({ source: r.name, tag }))),
    archived,
  };
  const aborted = opts.signal?.aborted === true;
  const sources = results.length + moduleResults.length;
  const failedSources = summary.images.failed + summary.modules.failed;
  store.runs.finish(runId, {
    sources: moduleOutcomes,
    status: aborted ? 'aborted' : summary.ok ? 'ok' : failedSources === sources ? 'failed' : 'partial',
    summary: { ...summary, results: undefined, moduleResults: undefined },
    ...(failures[0] ? { error: `${failures[0].source}: ${failures[0].message}` } : {}),
  });
  return summary;
}
