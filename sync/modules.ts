/**
 * Go module sync: choose versions for each root, follow `require` edges transitively without
 * pruning, and store `.info`, `.mod` and `.zip` verbatim for every version reached, each
 * validated (gomod's checkModFiles and checkModuleVersion, as verify and import check them)
 * before it is stored. A version whose zip the proxy does not have (404/410 while its .info and
 * .mod are there) is stored with those two only: go reads the go.mod of every version minimal
 * version selection visits but needs the zip only of those it builds.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import PQueue from 'p-queue';
import type { GoModuleRoot } from '../config/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import type { GoProxyClient, ProxyInfo } from '../goproxy/index.js';
import {
  checkModFiles,
  checkModuleVersion,
  compare as compareVersions,
  IN_MEMORY_ZIP,
  isPseudoVersion,
  isRetracted,
  latestVersion,
  matchesRange,
  parseGoMod,
  proxyPath,
  type CheckedModFiles,
  type GoMod,
} from '../gomod/index.js';
import { sha256Digest, type Digest } from '../oci/index.js';
import type { SourceResultInput, Store, StoreModules } from '../store/index.js';
import type { SyncContext } from './images.js';

/** Outcome of one module root. */
export interface ModuleRootResult {
  readonly name: string;
  readonly ok: boolean;
  /** True when the root's version list was unchanged and nothing else was asked. */
  readonly unchanged: boolean;
  readonly selected: readonly string[];
  readonly versionsChecked: number;
  readonly versionsNew: number;
  /** module@version reached from this root and carried with only .info and .mod (the proxy has no zip), sorted. */
  readonly modOnly: readonly string[];
  readonly errors: ReadonlyArray<{ module?: string; version?: string; code: string; message: string }>;
}

/**
 * Verifies a freshly fetched version against the checksum database (wired in by the caller);
 * `h1Zip` is undefined for a version carried without its zip (only its go.mod line is checked).
 */
export type SumCheck = (module: string, version: string, h1Zip: string | undefined, h1Mod: string, signal?: AbortSignal) => Promise<void>;

/** Shared state of the module part of one sync pass. */
export interface ModuleSyncContext extends SyncContext {
  readonly proxy: GoProxyClient;
  /** module@version → its work this pass (each version fetched at most once, shared by every root). */
  readonly visits: Map<string, VersionVisit>;
  /** Zips under validation: a directory under the store's tmp/, so a valid zip moves in by rename. */
  readonly tmpDir: string;
  readonly sumCheck?: SumCheck | undefined;
  /** Pass totals: versions reached and versions newly stored, each counted once however many roots reach it. */
  readonly moduleCounters: { checked: number; fresh: number };
  /** Records stored versions, one commit per event-loop turn. */
  readonly recorder: VersionRecorder;
  /**
   * New versions in work at once: each holds a slot from its .info and .mod requests to its
   * index row (zip fetched, checked, files durably written, row committed), so what a pass holds
   * in flight is bounded whatever the size of the graph (versionsInFlight).
   */
  readonly versionSlots: PQueue;
  /** The roots' outcomes, recorded with the run's end (one commit for all of them). */
  readonly outcomes: SourceResultInput[];
}

type VersionEntry = Parameters<StoreModules['putMany']>[0][number];

/**
 * Records stored versions: the rows that become ready in one turn of the event loop share one
 * commit (commits are not fsynced, see store/db.ts INDEX_SYNCHRONOUS, but each is still a
 * SQLite transaction). Each caller resumes once its own row is committed.
 */
export class VersionRecorder {
  private pending: Array<{ entry: VersionEntry; resolve: () => void; reject: (err: unknown) => void }> = [];

  constructor(private readonly store: Store) {}

  /** Records one version (with the others of this turn); settles when its commit has. */
  record(entry: VersionEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.pending.push({ entry, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    let results: ReturnType<StoreModules['putMany']>;
    try {
      results = this.store.modules.putMany(batch.map((b) => b.entry));
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    batch.forEach((b, i) => {
      const r = results[i];
      if (r instanceof Error) b.reject(r);
      else b.resolve();
    });
  }
}

/** One version's work in a pass, shared by the roots that reach it. */
export interface VersionVisit {
  /** Its go.mod `require` lines, as soon as the .mod is in hand (stored or fetched and checked). */
  requires(): Promise<GoMod['require']>;
  /** Settles once the version is stored (at once when it already was), saying whether with its zip. */
  readonly done: Promise<{ readonly zip: boolean }>;
  /** True when this pass fetches it. */
  readonly fresh: boolean;
}

interface RootRules {
  readonly root: string;
  readonly deps: boolean;
  readonly replace: GoMod['replace'];
  readonly exclude: GoMod['exclude'];
  readonly errors: Array<{ module?: string; version?: string; code: string; message: string }>;
  /** module@version reached from this root (a require cycle ends here). */
  readonly seen: Set<string>;
  /** What this root itself reached and found new (overlapping other roots'). */
  readonly counts: { checked: number; fresh: number };
  /** module@version this root reached that are carried without a zip. */
  readonly modOnly: Set<string>;
}

/**
 * New versions in work at once, per GOPROXY request in flight (goModules.concurrency): a version
 * spends most of its time after its requests (checks, durable writes, the index commit), so
 * twice the request width keeps the requests busy while bounding the rest.
 */
export const VERSIONS_PER_REQUEST_SLOT = 2;

/** Creates the per-pass module context (a temp dir under the store for zips under validation). */
export async function createModuleContext(ctx: SyncContext, proxy: GoProxyClient, sumCheck?: SumCheck): Promise<ModuleSyncContext> {
  const tmp = await ctx.store.content.makeTempDir('zips');
  const width = Number.isFinite(ctx.queue.concurrency) ? ctx.queue.concurrency : 16;
  return {
    ...ctx,
    proxy,
    visits: new Map(),
    tmpDir: tmp,
    sumCheck,
    moduleCounters: { checked: 0, fresh: 0 },
    recorder: new VersionRecorder(ctx.store),
    versionSlots: new PQueue({ concurrency: Math.max(1, width * VERSIONS_PER_REQUEST_SLOT) }),
    outcomes: [],
  };
}

/** Removes the per-pass temp dir. */
export async function closeModuleContext(mctx: ModuleSyncContext): Promise<void> {
  await rm(mctx.tmpDir, { recursive: true, force: true });
}

/** Syncs one configured root; its outcome waits in `mctx.outcomes` for the run's end. Never throws for a version-level failure. */
export async function syncModuleRoot(mctx: ModuleSyncContext, root: GoModuleRoot): Promise<ModuleRootResult> {
  const errors: RootRules['errors'] = [];
  const counts = { checked: 0, fresh: 0 };
  const modOnly = new Set<string>();
  let selected: string[] = [];
  let unchanged = false;
  /** The root's `@v/list` digest, recorded with its outcome when every version it reached is stored. */
  let list: { module: string; listDigest: string } | undefined;
  mctx.emit({ type: 'module-start', module: root.name });
  try {
    if (root.kind === 'path') {
      const rules: RootRules = { root: root.name, deps: root.deps, replace: [], exclude: [], errors, seen: new Set(), counts, modOnly };
      const r = await selectRootVersions(mctx, root);
      selected = r.versions;
      unchanged = r.unchanged;
      if (!r.unchanged) {
        await walkRoot(mctx, selected.map((version) => ({ path: root.path, version })), rules);
        if (r.listDigest !== undefined) list = { module: root.path, listDigest: r.listDigest };
      }
    } else {
      let text: string;
      try {
        text = await readFile(root.gomod, 'utf8');
      } catch (err) {
        throw new FerryError('GOMOD_INVALID', `${root.gomod}: cannot read: ${(err as Error).message}`, { file: root.gomod });
      }
      const gm = parseGoMod(text, { file: root.gomod });
      const rules: RootRules = { root: root.name, deps: true, replace: gm.replace, exclude: gm.exclude, errors, seen: new Set(), counts, modOnly };
      selected = gm.require.map((r) => `${r.path}@${r.version}`);
      await walkRoot(mctx, gm.require, rules);
    }
  } catch (err) {
    const fe = toFerryError(err, 'INTERNAL', { module: root.name });
    errors.push({ module: root.name, code: fe.code, message: fe.message });
  }
  const ok = errors.length === 0;
  for (const e of errors) mctx.logger.error({ root: root.name, module: e.module, version: e.version, code: e.code }, e.message);
  const without = [...modOnly].sort();
  for (const mv of without) mctx.logger.warn({ root: root.name, module: mv }, modOnlyMessage(mv));
  mctx.outcomes.push(ok ? { source: root.name, ok, moduleList: list } : { source: root.name, ok, error: errors[0]?.message ?? 'failed' });
  return { name: root.name, ok, unchanged, selected, versionsChecked: counts.checked, versionsNew: counts.fresh, modOnly: without, errors };
}

/** The warning for a version carried without its zip. */
export function modOnlyMessage(moduleAtVersion: string): string {
  return `${moduleAtVersion}: the proxy has no zip for it; carried its .info and .mod only (go can read its requirements, not build its packages)`;
}

async function selectRootVersions(
  mctx: ModuleSyncContext,
  root: Extract<GoModuleRoot, { kind: 'path' }>,
): Promise<{ versions: string[]; unchanged: boolean; listDigest?: string }> {
  const signal = mctx.signal;
  const list = await mctx.queue.add(() => mctx.proxy.list(root.path, { signal }));
  const listDigest = list ? sha256Digest(list.raw) : sha256Digest('');
  const prev = mctx.store.modules.getList(root.path);
  const explicit = Array.isArray(root.versions) ? (root.versions as readonly string[]) : undefined;
  if (prev && prev.listDigest === listDigest && (!explicit || explicit.every((v) => mctx.store.modules.get(root.path, v)))) {
    return { versions: [], unchanged: true, listDigest };
  }
  if (explicit) return { versions: [...explicit], unchanged: false, listDigest };
  const versions = (list?.versions ?? []).filter((v) => !isPseudoVersion(v));
  // Retractions come from the go.mod of the highest version (go.dev/ref/mod#go-mod-file-retract).
  let retract: GoMod['retract'] = [];
  const newest = [...versions].sort(compareVersions).at(-1);
  if (newest) retract = parseGoMod(await modBytes(mctx, root.path, newest), { file: `${root.path}@${newest}/go.mod`, lax: true }).retract;
  const retracted = (v: string): boolean => isRetracted(v, retract);
  for (const v of versions.filter(retracted)) mctx.logger.info({ module: root.path, version: v }, 'retracted version skipped');
  if (root.versions === 'latest') {
    let v = latestVersion(versions, { isRetracted: retracted });
    if (!v) {
      const info = await mctx.queue.add(() => mctx.proxy.latest(root.path, { signal }));
      if (!info) throw new FerryError('NOT_FOUND', `${root.path}: no versions at the proxy`, { module: root.path });
      v = info.Version;
    }
    return { versions: [v], unchanged: false, listDigest };
  }
  const range = root.versions as string;
  const picked = versions.filter((v) => matchesRange(v, range) && !retracted(v));
  if (picked.length === 0) {
    throw new FerryError('NOT_FOUND', `${root.path}: no version matches "${range}" (available: ${versions.join(' ') || 'none'})`, { module: root.path });
  }
  return { versions: picked, unchanged: false, listDigest };
}

/** The .mod bytes of a version: from the store when carried, else from the proxy. */
async function modBytes(mctx: ModuleSyncContext, module: string, version: string): Promise<Buffer> {
  const row = mctx.store.modules.get(module, version);
  if (row) return mctx.store.content.readBlobBytes(row.modDigest as Digest, 16 << 20);
  const b = await mctx.queue.add(() => mctx.proxy.mod(module, version, { signal: mctx.signal }));
  if (!b) throw new FerryError('NOT_FOUND', `${module}@${version}: go.mod not found at the proxy`, { module, version });
  return b;
}

function applyReplace(rules: RootRules, path: string, version: string): { path: string; version: string } | undefined {
  const r = rules.replace.find((x) => x.old.path === path && x.old.version === version) ?? rules.replace.find((x) => x.old.path === path && !x.old.version);
  if (!r) return { path, version };
  if (!r.new.version) return undefined; // replaced by a local directory: nothing to mirror
  return { path: r.new.path, version: r.new.version };
}

/**
 * Walks a root's starting versions and (when the root follows dependencies) everything they
 * require, then waits until each version reached is stored or failed. Never rejects: failures
 * are recorded in the root's errors. The walk and the waiting are two loops over flat lists,
 * not a recursion that holds a suspended call per (root, version) until its whole subtree is
 * stored: roots share most of their graph, and those frames were most of a pass's heap.
 */
async function walkRoot(mctx: ModuleSyncContext, starts: ReadonlyArray<{ path: string; version: string }>, rules: RootRules): Promise<void> {
  const reached: Reached[] = [];
  const walks: Array<Promise<void> | undefined> = [];
  for (const s of starts) {
    const w = reach(mctx, s.path, s.version, rules, reached, walks);
    if (w !== undefined) walks.push(w);
  }
  // `walks` grows while it is awaited: each reached version adds the walks of its requirements.
  for (let i = 0; i < walks.length; i++) {
    await walks[i];
    walks[i] = undefined;
  }
  for (const r of reached) {
    try {
      const { zip } = await r.visit.done;
      if (r.visit.fresh) rules.counts.fresh++;
      if (!zip) rules.modOnly.add(`${r.path}@${r.version}`);
    } catch (err) {
      recordError(rules, r.path, r.version, err);
    }
  }
}

interface Reached {
  readonly path: string;
  readonly version: string;
  readonly visit: VersionVisit;
}

function recordError(rules: RootRules, path: string, version: string, err: unknown): void {
  // Each root records a failed version once; the fetch itself ran once for all roots.
  if (!rules.errors.some((e) => e.module === path && e.version === version)) {
    const fe = toFerryError(err, 'INTERNAL', { module: path, version });
    rules.errors.push({ module: path, version, code: fe.code, message: fe.message });
  }
}

/**
 * Reaches one version for one root: starts its work (once per pass) and, when the root follows
 * dependencies, the walks of its requirements as soon as its go.mod is in hand, while its zip
 * is still downloading (the graph is explored at the speed of .mod fetches, not one whole level
 * at a time). Undefined when there is nothing to wait for (a version this root reached already,
 * the common case: roots share most of their graph, and each of those was an async call held
 * in `walks` until the walk got to it); else a promise that never rejects.
 */
function reach(
  mctx: ModuleSyncContext,
  path0: string,
  version0: string,
  rules: RootRules,
  reached: Reached[],
  walks: Array<Promise<void> | undefined>,
): Promise<void> | undefined {
  const rep = applyReplace(rules, path0, version0);
  if (!rep) return undefined;
  const { path, version } = rep;
  if (rules.exclude.some((e) => e.path === path && e.version === version)) return reachExcluded(mctx, path, version, rules, reached, walks);
  return reachVersion(mctx, path, version, rules, reached, walks);
}

/** reach for a version the root's go.mod excludes: the go command moves to the next higher one not excluded. */
async function reachExcluded(mctx: ModuleSyncContext, path: string, version: string, rules: RootRules, reached: Reached[], walks: Array<Promise<void> | undefined>): Promise<void> {
  try {
    const list = await mctx.queue.add(() => mctx.proxy.list(path, { signal: mctx.signal }));
    const next = (list?.versions ?? [])
      .filter((v) => !isPseudoVersion(v) && compareVersions(v, version) > 0 && !rules.exclude.some((e) => e.path === path && e.version === v))
      .sort(compareVersions)[0];
    if (!next) return;
    await reachVersion(mctx, path, next, rules, reached, walks);
  } catch (err) {
    recordError(rules, path, version, err);
  }
}

/** reach once replacements and exclusions are applied. */
function reachVersion(mctx: ModuleSyncContext, path: string, version: string, rules: RootRules, reached: Reached[], walks: Array<Promise<void> | undefined>): Promise<void> | undefined {
  const key = `${path}@${version}`;
  if (rules.seen.has(key)) return undefined;
  rules.seen.add(key);
  rules.counts.checked++;
  let v: VersionVisit;
  try {
    v = startVisit(mctx, path, version, rules.root);
  } catch (err) {
    recordError(rules, path, version, err);
    return undefined;
  }
  reached.push({ path, version, visit: v });
  if (!rules.deps) return undefined;
  return v.requires().then(
    (requires) => {
      for (const r of requires) {
        const w = reach(mctx, r.path, r.version, rules, reached, walks);
        if (w !== undefined) walks.push(w);
      }
    },
    (err: unknown) => recordError(rules, path, version, err),
  );
}

/** The pass's work for one version, started by the first root that reaches it. */
function startVisit(mctx: ModuleSyncContext, path: string, version: string, root: string): VersionVisit {
  const key = `${path}@${version}`;
  const known = mctx.visits.get(key);
  if (known) return known;
  mctx.moduleCounters.checked++;
  const file = `${path}@${version}/go.mod`;
  let v: VersionVisit;
  const stored = mctx.store.modules.get(path, version);
  if (stored) {
    let requires: Promise<GoMod['require']> | undefined;
    v = {
      requires: () => (requires ??= mctx.store.content.readBlobBytes(stored.modDigest as Digest, 16 << 20).then((mod) => parseGoMod(mod, { file, lax: true }).require)),
      done: Promise.resolve({ zip: stored.zipDigest !== null }),
      fresh: false,
    };
  } else {
    let settleRequires!: { resolve: (r: GoMod['require']) => void; reject: (err: unknown) => void };
    const requires = new Promise<GoMod['require']>((resolve, reject) => (settleRequires = { resolve, reject }));
    // The whole version in one slot: its requirements are handed to the walk as soon as its
    // .mod is checked, and the slot is released once its row is committed (or it failed).
    const done = mctx.versionSlots.add(async () => {
      let h: ModFiles;
      try {
        h = await fetchModFiles(mctx, path, version);
      } catch (err) {
        settleRequires.reject(err);
        throw err;
      }
      settleRequires.resolve(h.files.gomod.require);
      const zip = await storeVersion(mctx, path, version, root, h);
      mctx.moduleCounters.fresh++;
      mctx.emit({ type: 'module-done', module: path, version, isNew: true });
      return { zip };
    });
    // Every root awaits `done` (and `requires` when it follows dependencies): these only keep
    // a failure from counting as unhandled before a root has looked.
    requires.catch(() => undefined);
    done.catch(() => undefined);
    v = { requires: () => requires, done, fresh: true };
  }
  mctx.visits.set(key, v);
  return v;
}

interface ModFiles {
  readonly info: ProxyInfo;
  readonly mod: Buffer;
  /** What checkModFiles found in them. */
  readonly files: CheckedModFiles;
}

/** Fetches a version's .info and .mod (in parallel) and checks them (checkModFiles). */
async function fetchModFiles(mctx: ModuleSyncContext, module: string, version: string): Promise<ModFiles> {
  const signal = mctx.signal;
  const ids = { module, version };
  const [infoR, modR] = await Promise.allSettled([
    mctx.queue.add(() => mctx.proxy.info(module, version, { signal })),
    mctx.queue.add(() => mctx.proxy.mod(module, version, { signal })),
  ]);
  if (infoR.status === 'rejected') throw infoR.reason;
  const info = infoR.value;
  if (!info) throw new FerryError('NOT_FOUND', `${module}@${version}: not found at the proxy`, ids);
  if (modR.status === 'rejected') throw modR.reason;
  const mod = modR.value;
  if (!mod) throw new FerryError('NOT_FOUND', `${module}@${version}: go.mod not found at the proxy`, ids);
  return { info, mod, files: checkModFiles(module, version, info.raw, mod) };
}

/**
 * Downloads and validates the zip, then stores the files and records the version in one commit;
 * resolves true when the zip is carried, false when the proxy has none (404/410 on the .zip while
 * .info and .mod were there: the version is stored with those two). A zip up to IN_MEMORY_ZIP
 * is read whole and checked in memory (module zips are mostly a few KiB, and a stream and a temp
 * file written only to be read back cost more than the check); a bigger one streams to a temp
 * file under the store, which moves into place by rename.
 */
async function storeVersion(mctx: ModuleSyncContext, module: string, version: string, root: string, h: ModFiles): Promise<boolean> {
  const signal = mctx.signal;
  const so = signal ? { signal } : {};
  let data: Buffer | undefined;
  let absent = false;
  try {
    data = await mctx.queue.add(() => mctx.proxy.zipBytes(module, version, IN_MEMORY_ZIP, so));
    absent = data === undefined;
  } catch (err) {
    // Bigger than IN_MEMORY_ZIP (known from Content-Length before the body, as proxies send it):
    // asked again as a stream. Past the zip size limit, that fetch fails in turn.
    if (!(err instanceof FerryError && err.code === 'BODY_TOO_LARGE')) throw err;
  }
  const tmp = data || absent ? undefined : join(mctx.tmpDir, `${createHash('sha256').update(`${module}@${version}`).digest('hex')}.zip`);
  try {
    let size = 0;
    let spilledDigest: Digest | undefined;
    if (data) {
      size = data.length;
      mctx.emit({ type: 'blob-progress', bytes: size });
    } else if (tmp) {
      ({ size, zipDigest: spilledDigest } = await spillZip(mctx, module, version, tmp));
    }
    const where = tmp ?? proxyPath(module, 'zip', version);
    const checked = await checkModuleVersion(h.files, absent ? undefined : { file: where, ...(data ? { data } : {}) }, so);
    const zipDigest = checked.zip ? (spilledDigest ?? sha256Digest(data!)) : null;
    await mctx.sumCheck?.(module, version, checked.zip?.h1, checked.h1Mod, signal);
    const infoDigest = sha256Digest(h.info.raw);
    const modDigest = sha256Digest(h.mod);
    // Files first, each durably in place; their rows and the version row then share one commit.
    const written = await Promise.allSettled([
      mctx.store.content.writeBlobBytes(infoDigest, h.info.raw, { mediaType: 'application/json', index: false, ...so }),
      mctx.store.content.writeBlobBytes(modDigest, h.mod, { mediaType: 'text/plain', index: false, ...so }),
      zipDigest === null
        ? Promise.resolve()
        : data
          ? mctx.store.content.writeBlobBytes(zipDigest, data, { mediaType: 'application/zip', index: false, ...so })
          : // The validated temp file moves in by rename: no second copy of the zip is written.
            mctx.store.content.importFile(tmp!, zipDigest, size, { mediaType: 'application/zip', index: false, ...so }),
    ]);
    const failed = written.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (zipDigest !== null) {
      mctx.counters.blobsFetched += 1;
      mctx.counters.bytesFetched += size;
    }
    await mctx.recorder.record({
      row: { module, version, time: h.info.Time ?? '', infoDigest, modDigest, zipDigest, h1Zip: checked.zip?.h1 ?? null, h1Mod: checked.h1Mod, root },
      opts: {
        blobs: [
          { digest: infoDigest, size: h.info.raw.length, mediaType: 'application/json' },
          { digest: modDigest, size: h.mod.length, mediaType: 'text/plain' },
          ...(zipDigest === null ? [] : [{ digest: zipDigest, size, mediaType: 'application/zip' }]),
        ],
      },
    });
    return zipDigest !== null;
  } finally {
    if (tmp) await rm(tmp, { force: true });
  }
}

/**
 * Streams a zip bigger than IN_MEMORY_ZIP to `tmp`, hashing it on the way. The whole transfer
 * runs in one queue slot, headers to last byte (as for image blobs): goModules.concurrency bounds
 * the bodies being read, not just the requests being started.
 */
async function spillZip(mctx: ModuleSyncContext, module: string, version: string, tmp: string): Promise<{ size: number; zipDigest: Digest }> {
  return mctx.queue.add(() => spillZipBody(mctx, module, version, tmp));
}

async function spillZipBody(mctx: ModuleSyncContext, module: string, version: string, tmp: string): Promise<{ size: number; zipDigest: Digest }> {
  const ids = { module, version };
  const body = await mctx.proxy.zip(module, version, mctx.signal ? { signal: mctx.signal } : {});
  if (!body) throw new FerryError('NOT_FOUND', `${module}@${version}: zip not found at the proxy`, ids);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx');
  } catch (err) {
    body.destroy();
    throw new FerryError('STORE_IO', `${module}@${version}: cannot create ${tmp}: ${(err as Error).message}`, { ...ids, file: tmp, cause: err });
  }
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      mctx.emit({ type: 'blob-progress', bytes: chunk.length });
      await writeChunk(fh, chunk, tmp, ids);
    }
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  try {
    await fh.close();
  } catch (err) {
    throw new FerryError('STORE_IO', `${module}@${version}: writing ${tmp} failed: ${(err as Error).message}`, { ...ids, file: tmp, cause: err });
  }
  return { size, zipDigest: `sha256:${hash.digest('hex')}` as Digest };
}

async function writeChunk(fh: FileHandle, chunk: Buffer, file: string, ids: { module: string; version: string }): Promise<void> {
  try {
    // At the current position, resumed after a short write.
    await fh.writeFile(chunk);
  } catch (err) {
    throw new FerryError('STORE_IO', `${ids.module}@${ids.version}: writing ${file} failed: ${(err as Error).message}`, { ...ids, file, cause: err });
  }
}
