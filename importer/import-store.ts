/**
 * Import into a Ferry store: the same blobs, manifests, tags and module versions that sync would
 * have written, journalled, so `ferry serve --store` serves them and `ferry export` carries them
 * one hop further. Blobs go in as they stream (a stored blob nothing references is invisible);
 * manifests, tags and module versions are recorded only in commit(). Each blob this import adds
 * is noted in the ledger, so a failed import (this run, or a killed earlier run of the same
 * bundle) removes the ones nothing came to use.
 */
import { BundleImageSource, BundleModuleChecks, checkFilteredImage, MAX_PLAN_BYTES, moduleFilePath, PLAN_FILE, type BundleManifest } from '../bundle/index.js';
import { FerryError } from '../errors/index.js';
import { escapePath, escapeVersion } from '../gomod/index.js';
import { copy, MAX_MANIFEST_BYTES, sha256Digest, parseReference, type Digest } from '../oci/index.js';
import { StoreSink, StoreSource, type Store } from '../store/index.js';
import { planSumdbMerge, splitSumdbPath, sumdbFileKind, type SumdbMergePlan } from './import-sumdb.js';
import { emptyReport, type ImportTarget, type PlanLine, type TargetContext, type TargetReport } from './import-target.js';
import { openSource, spoolCapped, prefixed, readSmall, type EntrySource } from './import-util.js';

/** Cap on one checksum-database file (a data tile of 256 records is the largest, well below). */
const MAX_SUMDB_FILE_BYTES = 16 * 1024 * 1024;

/** A Ferry store as an import target. */
export class StoreTarget implements ImportTarget {
  readonly name: string;
  readonly kind = 'store' as const;
  private readonly store: Store;
  private readonly prefix: string | undefined;
  private ctx: TargetContext | undefined;
  /** The bundle's images as a one-pass source: manifests kept as they stream. */
  private bundle: BundleImageSource | undefined;
  private counts = { uploaded: 0, mounted: 0, existing: 0, skipped: 0, bytes: 0 };
  /** Blobs this run added to the store (the ledger notes them too, for a run killed before its abort). */
  private added = new Set<Digest>();
  /** Checksum-database files by database, then by path under `sumdb/<name>/` (all small). */
  private sumdb = new Map<string, Map<string, Buffer>>();
  private checks: BundleModuleChecks | undefined;

  constructor(store: Store, opts: { readonly prefix?: string } = {}) {
    this.store = store;
    this.prefix = opts.prefix;
    this.name = `store:${store.dir}`;
  }

  wants(path: string): boolean {
    if (splitSumdbPath(path)) return true;
    return path.startsWith('blobs/') || path === PLAN_FILE || moduleFilePath(path) !== undefined;
  }

  async missingRequires(m: BundleManifest): Promise<string[]> {
    return m.requires.filter((d) => !this.store.content.hasBlob(d));
  }

  plan(m: BundleManifest): PlanLine[] {
    const out: PlanLine[] = [];
    for (const f of m.files) {
      if (!this.wants(f.path) || f.path === PLAN_FILE) continue;
      const d = `sha256:${f.sha256}` as Digest;
      out.push({ target: this.name, action: this.store.content.hasBlob(d) ? 'skip' : 'store-blob', what: `${f.path}`, size: f.size });
    }
    for (const im of m.images) out.push({ target: this.name, action: 'set-tag', what: `${im.reference} → ${im.digest}`, size: 0 });
    for (const x of m.modules) out.push({ target: this.name, action: 'record-module', what: `${x.path}@${x.version}`, size: 0 });
    return out;
  }

  async begin(ctx: TargetContext): Promise<void> {
    this.ctx = ctx;
    this.bundle = new BundleImageSource(ctx.manifest);
    this.checks = new BundleModuleChecks(ctx.manifest);
  }

  private get source(): BundleImageSource {
    if (!this.bundle) throw new FerryError('INTERNAL', 'store target used before begin()');
    return this.bundle;
  }

  private get c(): TargetContext {
    if (!this.ctx) throw new FerryError('INTERNAL', 'store target used before begin()');
    return this.ctx;
  }

  async take(src: EntrySource): Promise<void> {
    const d = `sha256:${src.sha256}` as Digest;
    const signal = this.c.signal;
    const sum = splitSumdbPath(src.path);
    if (sum) {
      // Tiles are 8 KiB, lookups a few hundred bytes: kept in memory until commit() decides.
      const bytes = await readSmall(openSource(src, signal), MAX_SUMDB_FILE_BYTES, src.path);
      const files = this.sumdb.get(sum.name) ?? new Map<string, Buffer>();
      files.set(sum.rel, bytes);
      this.sumdb.set(sum.name, files);
      return;
    }
    if (src.path === PLAN_FILE) {
      this.source.keepPlan(await spoolCapped(src, this.c.tmpDir, MAX_PLAN_BYTES, signal));
      return;
    }
    if (src.mediaType !== undefined) {
      const bytes = await readSmall(openSource(src, signal), MAX_MANIFEST_BYTES, src.path);
      this.source.keep(d, bytes, src.mediaType);
      return;
    }
    if (this.store.content.hasBlob(d)) {
      // Left alone, the reader still drains and verifies the entry.
      this.counts.existing++;
    } else {
      const w = await this.store.content.writeBlob(d, openSource(src, signal), { size: src.size, ...(signal ? { signal } : {}) });
      if (w.written) {
        this.counts.uploaded++;
        this.counts.bytes += w.size;
        this.added.add(d);
        this.c.ledger?.recordItem({ target: this.name, kind: 'blob', scope: '', key: d, digest: d, state: 'done', bundleId: this.c.manifest.id, detail: null });
      } else this.counts.existing++;
    }
    await this.checks!.check(src.path, { file: this.store.content.blobPath(d) }, signal);
  }

  async commit(): Promise<TargetReport> {
    const m = this.c.manifest;
    this.checks!.finish();
    const signal = this.c.signal;
    // Decided before anything is recorded: a module version without its files, or a forked log,
    // refuses the bundle with the store untouched.
    const sha = new Map(m.files.map((f) => [f.path, `sha256:${f.sha256}` as Digest]));
    const modules = m.modules.map((x) => {
      const base = `gomod/${moduleBase(x.path, x.version)}`;
      const info = sha.get(`${base}.info`);
      const mod = sha.get(`${base}.mod`);
      const zip = x.h1 !== null ? sha.get(`${base}.zip`) : undefined;
      if (!info || !mod || (x.h1 !== null && !zip)) throw new FerryError('BUNDLE_INVALID', `${x.path}@${x.version}: the bundle lacks its .info, .mod or .zip`, { module: x.path, version: x.version });
      const row = { module: x.path, version: x.version, time: x.time, infoDigest: info, modDigest: mod, zipDigest: zip ?? null, h1Zip: x.h1, h1Mod: x.goModH1, root: x.path };
      return { x, row };
    });
    const sumdbPlans = new Map<string, SumdbMergePlan>();
    for (const [name, files] of this.sumdb) {
      const kept = await this.store.sumdb.readFile(name, 'latest', signal ? { signal } : {});
      sumdbPlans.set(name, planSumdbMerge(name, files.get('latest'), kept, `store ${this.store.dir}`));
    }
    await this.source.checkPlan();
    // The images: one copy from what the bundle carries (and the store holds from earlier
    // bundles) into the store, through the graph; tags last.
    const store = this.store;
    const src = this.source;
    const roots = src.roots((im) => {
      const ref = parseReference(im.reference);
      const target = prefixed(this.prefix, im.target);
      return { registry: ref.registry, repository: ref.repository, tag: im.tag, source: importedSource(ref.registry, ref.repository, im.target), target };
    });
    const held = new StoreSource(store);
    const result = await copy(
      {
        manifest: async (ref) => {
          const got = src.carriedManifest(ref as Digest);
          return got ? { digest: ref as Digest, mediaType: got.mediaType, size: got.bytes.length, bytes: got.bytes } : held.manifest(ref, signal ? { signal } : {});
        },
        // Every blob the bundle carries is in the store already (take() put it there).
        blob: (d) => Promise.reject(new FerryError('REQUIRES_MISSING', `blob ${d.digest} is neither in the bundle nor in the store`, { digest: d.digest })),
        hasBlob: async (d) => store.content.hasBlob(d.digest),
        hasManifest: async (d) => src.carries(d.digest) || store.content.hasManifest(d.digest),
      },
      new StoreSink(store),
      roots,
      {
        ...(signal ? { signal } : {}),
        attachments: (d) => src.attachments(d),
        // Foreign layers left out upstream: recorded as references, absent by design (fsck knows).
        foreign: 'if-present',
        missing: (root, lost) => {
          const im = roots.find((r) => r === root)!.image;
          return new FerryError('REQUIRES_MISSING', `${im.reference}: manifest ${lost[0]!.digest} is neither in the bundle nor in the store`, { digest: lost[0]!.digest });
        },
        check: (closures) => {
          for (const { root, closure } of closures) {
            const r = roots.find((x) => x === root)!;
            checkFilteredImage(r.image, r.at, closure);
          }
        },
      },
    );
    const foreign = new Set<Digest>();
    for (const { image } of result.images) for (const f of image.closure.foreign) if (!store.content.hasBlob(f.digest)) foreign.add(f.digest);
    const manifests = result.manifests;
    const tags = [];
    for (const r of roots) {
      this.c.ledger?.recordItem({ target: this.name, kind: 'tag', scope: r.tag.target, key: r.image.tag, digest: r.image.digest, state: 'done', bundleId: m.id, detail: null });
      tags.push({ repository: r.tag.target, tag: r.image.tag, digest: r.image.digest, upstreamDigest: r.image.digest });
    }

    for (const { x, row } of modules) {
      this.store.modules.put(row);
      this.c.ledger?.recordItem({ target: this.name, kind: 'module', scope: '', key: `${x.path}@${x.version}`, digest: null, state: 'done', bundleId: m.id, detail: null });
    }
    let files = 0;
    for (const [name, plan] of sumdbPlans) files += await this.mergeSumdb(name, this.sumdb.get(name)!, plan);
    // The ledger records this bundle as done next: what it carried must outlive a power cut first.
    this.store.flush('importCommit');
    return { ...emptyReport(this.name, 'store'), blobs: { ...this.counts }, manifests, tags, modules: m.modules.length, files, sumdb: [...this.sumdb.keys()].sort(), foreignLayers: [...foreign].sort() };
  }

  /**
   * Keeps one database's files in the store, as `ferry serve --store` answers them under
   * `/sumdb/<name>/`: tiles first and `latest` last (a client reading the new head finds its
   * tiles); `latest` only moves forward; lookups follow the newest head and otherwise only fill
   * gaps; a tile is never replaced (its path names its content) and one that differs is reported.
   * Returns the number of files written.
   */
  private async mergeSumdb(name: string, files: ReadonlyMap<string, Buffer>, plan: SumdbMergePlan): Promise<number> {
    const signal = this.c.signal;
    const call = signal ? { signal } : {};
    const logger = this.c.logger;
    if (files.has('latest') && !plan.current) {
      logger?.info({ database: name, bundleTree: plan.incomingSize, keptTree: plan.keptSize }, 'checksum database: the bundle carries an older head; the newer one stays');
    }
    const rank = (rel: string): number => ({ tile: 0, lookup: 1, other: 1, supported: 2, latest: 3 })[sumdbFileKind(rel)];
    let written = 0;
    for (const rel of [...files.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))) {
      const bytes = files.get(rel)!;
      const kind = sumdbFileKind(rel);
      const kept = this.store.sumdb.getFile(name, rel);
      let put: boolean;
      if (kind === 'latest') put = plan.replaceLatest;
      else if (kind === 'tile') {
        put = kept === undefined;
        if (kept !== undefined && kept.digest !== sha256Digest(bytes)) {
          logger?.warn({ database: name, file: rel }, 'checksum database: a carried tile differs from the one already in the store; keeping the stored tile (tiles never change)');
        }
      } else put = kept === undefined || (plan.current && kept.digest !== sha256Digest(bytes));
      if (!put) continue;
      await this.store.sumdb.putFile(name, rel, bytes, call);
      written++;
    }
    return written;
  }

  /**
   * Removes the blobs this bundle's imports added (this run's, and those the ledger notes from a
   * killed earlier run of the same bundle) that nothing in the store uses: a failed import leaves
   * the store as it found it. A kill -9 can still leave some; `ferry fsck` lists them as
   * unreferenced, and importing the bundle again either uses them or, failing again, removes them.
   */
  async abort(): Promise<string | undefined> {
    const ctx = this.ctx;
    if (!ctx) return undefined;
    const m = ctx.manifest;
    const noted = ctx.ledger?.bundleItems(m.id, this.name).filter((i) => i.kind === 'blob' && i.state === 'done' && i.digest !== null) ?? [];
    const candidates = new Set<Digest>([...this.added, ...noted.map((i) => i.digest as Digest)]);
    if (candidates.size === 0) return undefined;
    const r = await this.store.content.removeUnreferencedBlobs(candidates);
    for (const b of r.removed) {
      ctx.ledger?.recordItem({ target: this.name, kind: 'blob', scope: '', key: b.digest, digest: b.digest, state: 'failed', bundleId: m.id, detail: 'removed: the import failed before anything used it' });
    }
    if (r.removed.length === 0) return undefined;
    ctx.logger?.info({ target: this.name, blobs: r.removed.length, bytes: r.bytes }, 'removed the blobs the failed import had added to the store');
    return `the ${r.removed.length} blob(s) (${r.bytes} bytes) it had added to ${this.name} were removed`;
  }
}

/**
 * The source (image entry) an imported tag is recorded under. Bundles name no entries, so the
 * upstream repository stands for one; an entry with a target of its own adds it (`#target`), so
 * the entries that split one upstream repository (by platform, tags or target) keep their own
 * rows here too.
 */
export function importedSource(registry: string, repository: string, target: string): string {
  return target === repository ? `${registry}/${repository}` : `${registry}/${repository}#${target}`;
}

function moduleBase(path: string, version: string): string {
  return `${escapePath(path)}/@v/${escapeVersion(version)}`;
}
