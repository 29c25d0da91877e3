/**
 * Go module sync: choose versions for each root, follow `require` edges transitively without
 * pruning, and store `.info`, `.mod` and `.zip` verbatim for every version reached, each
 * validated (zip rules, module line, h1 hashes) before it is stored.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { GoModuleRoot } from '../config/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import {
  checkModuleZip,
  compare as compareVersions,
  hashGoMod,
  isPseudoVersion,
  isRetracted,
  latestVersion,
  matchesRange,
  parseGoMod,
  type GoMod,
  type GoProxyClient,
} from '../goproxy/index.js';
import { sha256Digest, type Digest } from '../oci/index.js';
import type { SyncContext } from './images.js';
import { allSettledOrThrow } from './settle.js';

/** Outcome of one module root. */
export interface ModuleRootResult {
  readonly name: string;
  readonly ok: boolean;
  /** True when the root's version list was unchanged and nothing else was asked. */
  readonly unchanged: boolean;
  readonly selected: readonly string[];
  readonly versionsChecked: number;
  readonly versionsNew: number;
  readonly errors: ReadonlyArray<{ module?: string; version?: string; code: string; message: string }>;
}

/** Verifies a freshly fetched version against the checksum database (wired in by the caller). */
export type SumCheck = (module: string, version: string, h1Zip: string, h1Mod: string, signal?: AbortSignal) => Promise<void>;

/** Shared state of the module part of one sync pass. */
export interface ModuleSyncContext extends SyncContext {
  readonly proxy: GoProxyClient;
  /** module@version → the visit in progress or done this pass (each resolved once per sync). */
  readonly visits: Map<string, Promise<void>>;
  readonly tmpDir: string;
  readonly sumCheck?: SumCheck | undefined;
  readonly moduleCounters: { checked: number; fresh: number };
}

interface RootRules {
  readonly root: string;
  readonly deps: boolean;
  readonly replace: GoMod['replace'];
  readonly exclude: GoMod['exclude'];
  readonly errors: Array<{ module?: string; version?: string; code: string; message: string }>;
}

/** Creates the per-pass module context (a temp dir for zips under validation). */
export async function createModuleContext(ctx: SyncContext, proxy: GoProxyClient, sumCheck?: SumCheck): Promise<ModuleSyncContext> {
  const tmp = await mkdtemp(join(tmpdir(), 'ferry-zip-'));
  return { ...ctx, proxy, visits: new Map(), tmpDir: tmp, sumCheck, moduleCounters: { checked: 0, fresh: 0 } };
}

/** Removes the per-pass temp dir. */
export async function closeModuleContext(mctx: ModuleSyncContext): Promise<void> {
  await rm(mctx.tmpDir, { recursive: true, force: true });
}

/** Syncs one configured root. Never throws for a version-level failure. */
export async function syncModuleRoot(mctx: ModuleSyncContext, root: GoModuleRoot): Promise<ModuleRootResult> {
  const errors: RootRules['errors'] = [];
  const before = { ...mctx.moduleCounters };
  let selected: string[] = [];
  let unchanged = false;
  mctx.emit({ type: 'module-start', module: root.name });
  try {
    if (root.kind === 'path') {
      const rules: RootRules = { root: root.name, deps: root.deps, replace: [], exclude: [], errors };
      const r = await selectRootVersions(mctx, root);
      selected = r.versions;
      unchanged = r.unchanged;
      if (!r.unchanged) {
        await allSettledOrThrow(selected.map((v) => visit(mctx, root.path, v, rules)));
        if (errors.length === 0 && r.listDigest !== undefined) mctx.store.setModuleList(root.path, r.listDigest);
      }
    } else {
      let text: string;
      try {
        text = await readFile(root.gomod, 'utf8');
      } catch (err) {
        throw new FerryError('GOMOD_INVALID', `${root.gomod}: cannot read: ${(err as Error).message}`, { file: root.gomod });
      }
      const gm = parseGoMod(text, { file: root.gomod });
      const rules: RootRules = { root: root.name, deps: true, replace: gm.replace, exclude: gm.exclude, errors };
      selected = gm.require.map((r) => `${r.path}@${r.version}`);
      await allSettledOrThrow(gm.require.map((r) => visit(mctx, r.path, r.version, rules)));
    }
  } catch (err) {
    const fe = toFerryError(err, 'INTERNAL', { module: root.name });
    errors.push({ module: root.name, code: fe.code, message: fe.message });
  }
  const ok = errors.length === 0;
  for (const e of errors) mctx.logger.error({ root: root.name, module: e.module, version: e.version, code: e.code }, e.message);
  mctx.store.recordSourceResult(root.name, ok ? { ok } : { ok, error: errors[0]?.message ?? 'failed' });
  return {
    name: root.name,
    ok,
    unchanged,
    selected,
    versionsChecked: mctx.moduleCounters.checked - before.checked,
    versionsNew: mctx.moduleCounters.fresh - before.fresh,
    errors,
  };
}

async function selectRootVersions(
  mctx: ModuleSyncContext,
  root: Extract<GoModuleRoot, { kind: 'path' }>,
): Promise<{ versions: string[]; unchanged: boolean; listDigest?: string }> {
  const signal = mctx.signal;
  const list = await mctx.queue.add(() => mctx.proxy.list(root.path, { signal }));
  const listDigest = list ? sha256Digest(list.raw) : sha256Digest('');
  const prev = mctx.store.getModuleList(root.path);
  const explicit = Array.isArray(root.versions) ? (root.versions as readonly string[]) : undefined;
  if (prev && prev.listDigest === listDigest && (!explicit || explicit.every((v) => mctx.store.getModuleVersion(root.path, v)))) {
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
  const row = mctx.store.getModuleVersion(module, version);
  if (row) return mctx.store.readBlobBytes(row.modDigest as Digest, 16 << 20);
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

async function visit(mctx: ModuleSyncContext, path0: string, version0: string, rules: RootRules): Promise<void> {
  const rep = applyReplace(rules, path0, version0);
  if (!rep) return;
  const { path } = rep;
  let { version } = rep;
  if (rules.exclude.some((e) => e.path === path && e.version === version)) {
    // The go command moves an excluded requirement to the next higher version not excluded.
    const list = await mctx.queue.add(() => mctx.proxy.list(path, { signal: mctx.signal }));
    const next = (list?.versions ?? [])
      .filter((v) => !isPseudoVersion(v) && compareVersions(v, version) > 0 && !rules.exclude.some((e) => e.path === path && e.version === v))
      .sort(compareVersions)[0];
    if (!next) return;
    version = next;
  }
  const key = `${path}@${version}`;
  let p = mctx.visits.get(key);
  if (!p) {
    p = visitOnce(mctx, path, version, rules);
    mctx.visits.set(key, p);
  }
  try {
    await p;
  } catch (err) {
    // Recorded once by the visit that failed; later visitors only skip.
    if (!rules.errors.some((e) => e.module === path && e.version === version)) {
      const fe = toFerryError(err, 'INTERNAL', { module: path, version });
      rules.errors.push({ module: path, version, code: fe.code, message: fe.message });
    }
  }
}

async function visitOnce(mctx: ModuleSyncContext, path: string, version: string, rules: RootRules): Promise<void> {
  mctx.moduleCounters.checked++;
  const stored = mctx.store.getModuleVersion(path, version);
  let mod: Buffer;
  if (stored) {
    mod = await mctx.store.readBlobBytes(stored.modDigest as Digest, 16 << 20);
  } else {
    mod = await fetchVersion(mctx, path, version, rules.root);
    mctx.moduleCounters.fresh++;
    mctx.emit({ type: 'module-done', module: path, version, isNew: true });
  }
  if (!rules.deps) return;
  const gm = parseGoMod(mod, { file: `${path}@${version}/go.mod`, lax: true });
  await allSettledOrThrow(gm.require.map((r) => visit(mctx, r.path, r.version, rules)));
}

/** Fetches, validates and stores one version; returns its .mod bytes. */
async function fetchVersion(mctx: ModuleSyncContext, module: string, version: string, root: string): Promise<Buffer> {
  const signal = mctx.signal;
  const ids = { module, version };
  const info = await mctx.queue.add(() => mctx.proxy.info(module, version, { signal }));
  if (!info) throw new FerryError('NOT_FOUND', `${module}@${version}: not found at the proxy`, ids);
  if (info.Version !== version) {
    throw new FerryError('MODULE_INVALID', `${module}@${version}: .info names version ${info.Version}`, ids);
  }
  const mod = await modBytes(mctx, module, version);
  const gm = parseGoMod(mod, { file: `${module}@${version}/go.mod`, lax: true });
  if (gm.module !== module) {
    throw new FerryError('GOMOD_INVALID', `${module}@${version}: go.mod declares module "${gm.module}", not "${module}"`, ids);
  }
  const h1Mod = hashGoMod(mod);
  // The zip goes to a temp file first: its rules and h1 are checked before the store sees it.
  const tmp = join(mctx.tmpDir, `${createHash('sha256').update(`${module}@${version}`).digest('hex')}.zip`);
  try {
    const body = await mctx.queue.add(() => mctx.proxy.zip(module, version, { signal }));
    if (!body) throw new FerryError('NOT_FOUND', `${module}@${version}: zip not found at the proxy`, ids);
    const hash = createHash('sha256');
    let size = 0;
    await pipeline(
      body,
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          hash.update(chunk);
          size += chunk.length;
          mctx.emit({ type: 'blob-progress', bytes: chunk.length });
          yield chunk;
        }
      },
      createWriteStream(tmp),
      { signal },
    );
    const zipDigest = `sha256:${hash.digest('hex')}` as Digest;
    const checked = await checkModuleZip(tmp, { module, version });
    await mctx.sumCheck?.(module, version, checked.h1, h1Mod, signal);
    const infoDigest = sha256Digest(info.raw);
    const modDigest = sha256Digest(mod);
    await mctx.store.writeBlobBytes(infoDigest, info.raw, { mediaType: 'application/json' });
    await mctx.store.writeBlobBytes(modDigest, mod, { mediaType: 'text/plain' });
    await mctx.store.writeBlob(zipDigest, createReadStream(tmp), { size, mediaType: 'application/zip', ...(signal ? { signal } : {}) });
    mctx.counters.blobsFetched += 1;
    mctx.counters.bytesFetched += size;
    mctx.store.putModuleVersion({
      module,
      version,
      time: info.Time ?? '',
      infoDigest,
      modDigest,
      zipDigest,
      h1Zip: checked.h1,
      h1Mod,
      root,
    });
    return mod;
  } finally {
    await rm(tmp, { force: true });
  }
}
