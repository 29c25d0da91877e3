/**
 * Import into a static GOPROXY tree (`GOPROXY=file:///DIR` or any web server over DIR). Files are
 * staged in a hidden directory inside DIR while the tar streams (the go command never asks for a
 * path starting with a dot), every .mod and .zip re-hashed against the signed module list, and
 * renamed into place only in commit(); `@v/list` is merged with what was there.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { BundleManifest, BundleModule } from '../bundle/index.js';
import { FerryError, errorMessage } from '../errors/index.js';
import { checkModuleZip, compare, escapePath, escapeVersion, hashGoMod, isPseudoVersion, unescapePath, unescapeVersion } from '../goproxy/index.js';
import type { Ledger } from '../store/index.js';
import { planSumdbMerge, sumdbFileKind } from './import-sumdb.js';
import { emptyReport, type ImportTarget, type PlanLine, type TargetContext, type TargetReport } from './import-target.js';
import { openSource, readSmall, writeFileAtomic, writeStreamFile, type EntrySource } from './import-util.js';

const STAGING_PREFIX = '.ferry-staging-';
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const MODULE_FILE = /^(.+)\/@v\/([^/]+)\.(info|mod|zip)$/;
const LIST_FILE = /^(.+)\/@v\/list$/;

/** A module file path under the tree, split; undefined for other files. */
export function parseModuleFile(rel: string): { module: string; version: string; ext: 'info' | 'mod' | 'zip' } | undefined {
  if (rel.startsWith('sumdb/')) return undefined;
  const m = MODULE_FILE.exec(rel);
  if (!m) return undefined;
  try {
    return { module: unescapePath(m[1]!), version: unescapeVersion(m[2]!), ext: m[3] as 'info' | 'mod' | 'zip' };
  } catch (err) {
    throw new FerryError('BUNDLE_INVALID', `gomod/${rel}: not a valid module file path: ${errorMessage(err)}`, { file: `gomod/${rel}` });
  }
}

/**
 * Re-checks a module file against the signed module list: the .mod's h1, the zip's h1 (and the
 * zip rules the go command enforces). The file is already verified against its sha256.
 */
export async function checkModuleFile(
  path: string,
  file: string,
  mf: { module: string; version: string; ext: string },
  modules: ReadonlyMap<string, BundleModule>,
  signal?: AbortSignal,
): Promise<void> {
  const entry = modules.get(`${mf.module}@${mf.version}`);
  const ids = { file: path, module: mf.module, version: mf.version };
  if (!entry) throw new FerryError('BUNDLE_INVALID', `${path}: ${mf.module}@${mf.version} is not listed in the bundle's modules`, ids);
  if (mf.ext === 'mod') {
    const h1 = hashGoMod(await readFile(file));
    if (h1 !== entry.goModH1) throw new FerryError('DIGEST_MISMATCH', `${path}: go.mod hash is ${h1}, the signed module list says ${entry.goModH1}`, ids);
  } else if (mf.ext === 'zip') {
    if (entry.h1 === null) throw new FerryError('BUNDLE_INVALID', `${path}: a zip is carried but the module list gives it no h1`, ids);
    let h1: string;
    try {
      h1 = (await checkModuleZip(file, { module: mf.module, version: mf.version, ...(signal ? { signal } : {}) })).h1;
    } catch (err) {
      throw new FerryError('ZIP_INVALID', `${path}: ${errorMessage(err)}`, { ...ids, cause: err });
    }
    if (h1 !== entry.h1) throw new FerryError('DIGEST_MISMATCH', `${path}: zip hash is ${h1}, the signed module list says ${entry.h1}`, ids);
  }
}

/** The signed module list keyed by `path@version`. */
export function moduleMap(m: BundleManifest): Map<string, BundleModule> {
  return new Map(m.modules.map((x) => [`${x.path}@${x.version}`, x]));
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A static GOPROXY directory as an import target. */
export class GomodTarget implements ImportTarget {
  readonly name: string;
  readonly kind = 'gomod' as const;
  /** The tree's absolute path. */
  readonly dir: string;
  private ctx: TargetContext | undefined;
  private staging = '';
  private staged: string[] = [];
  private lists = new Map<string, string[]>();
  private sumdb = new Set<string>();
  private modules = new Map<string, BundleModule>();

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.name = `gomod:${this.dir}`;
  }

  wants(path: string): boolean {
    return path.startsWith('gomod/');
  }

  async missingRequires(): Promise<string[]> {
    return []; // modules never depend on earlier bundles' files
  }

  plan(m: BundleManifest, ledger: Ledger | undefined): PlanLine[] {
    return m.files
      .filter((f) => f.path.startsWith('gomod/'))
      .map((f) => {
        const rel = f.path.slice('gomod/'.length);
        const mf = parseModuleFile(rel);
        const done = mf !== undefined && ledger?.isDone(this.name, 'module', '', `${mf.module}@${mf.version}`) === true && existsSync(join(this.dir, rel));
        return { target: this.name, action: done ? 'skip' : 'write-file', what: join(this.dir, rel), size: f.size } satisfies PlanLine;
      });
  }

  async begin(ctx: TargetContext): Promise<void> {
    this.ctx = ctx;
    this.modules = moduleMap(ctx.manifest);
    await mkdir(this.dir, { recursive: true });
    // Staging directories of killed imports: remove them (their pid is gone).
    for (const name of await readdir(this.dir)) {
      const m = new RegExp(`^${STAGING_PREFIX.replace(/\./g, '\\.')}(\\d+)-`).exec(name);
      if (m && !pidAlive(Number(m[1]))) await rm(join(this.dir, name), { recursive: true, force: true });
    }
    this.staging = join(this.dir, `${STAGING_PREFIX}${process.pid}-${ctx.manifest.id}`);
    await rm(this.staging, { recursive: true, force: true });
    await mkdir(this.staging, { recursive: true });
  }

  async take(src: EntrySource): Promise<void> {
    const ctx = this.ctx;
    if (!ctx) throw new FerryError('INTERNAL', 'gomod target used before begin()');
    const rel = src.path.slice('gomod/'.length);
    const sum = /^sumdb\/([^/]+)\//.exec(rel);
    if (sum) this.sumdb.add(sum[1]!);
    const list = sum ? null : LIST_FILE.exec(rel);
    if (list) {
      const text = (await readSmall(openSource(src, ctx.signal), MAX_LIST_BYTES, src.path)).toString('utf8');
      this.lists.set(list[1]!, text.split('\n').map((l) => l.trim()).filter((l) => l !== ''));
      return;
    }
    const file = join(this.staging, rel);
    await writeStreamFile(openSource(src, ctx.signal), file, ctx.signal);
    const mf = parseModuleFile(rel);
    if (mf) await checkModuleFile(src.path, file, mf, this.modules, ctx.signal);
    this.staged.push(rel);
  }

  async commit(): Promise<TargetReport> {
    const ctx = this.ctx;
    if (!ctx) throw new FerryError('INTERNAL', 'gomod target used before begin()');
    try {
      // Decided before anything moves: a forked log refuses the bundle with the tree untouched.
      const keep = await this.sumdbFilesToKeep();
      // .info and .mod first, then the database (tiles, lookups, `latest` last, so a client that
      // reads the new head finds its tiles), and .zip last: a version never appears as a zip
      // without its metadata and its checksum-database record.
      const order = (p: string): number => {
        if (p.endsWith('.zip') && !p.startsWith('sumdb/')) return 4;
        if (!p.startsWith('sumdb/')) return 0;
        const kind = sumdbFileKind(p.split('/').slice(2).join('/'));
        return kind === 'tile' ? 1 : kind === 'latest' ? 3 : 2;
      };
      const moved: string[] = [];
      for (const rel of [...this.staged].sort((a, b) => order(a) - order(b))) {
        if (!keep.has(rel)) continue;
        const final = join(this.dir, rel);
        await mkdir(dirname(final), { recursive: true });
        await rename(join(this.staging, rel), final);
        moved.push(rel);
      }
      this.staged = moved;
      for (const x of ctx.manifest.modules) if (x.h1 !== null && !this.lists.has(escapePath(x.path))) this.lists.set(escapePath(x.path), [x.version]);
      for (const [esc, versions] of this.lists) await this.mergeList(esc, versions);
      for (const x of ctx.manifest.modules) {
        ctx.ledger?.recordItem({ target: this.name, kind: 'module', scope: '', key: `${x.path}@${x.version}`, digest: null, state: 'done', bundleId: ctx.manifest.id, detail: null });
      }
    } finally {
      await rm(this.staging, { recursive: true, force: true });
    }
    return { ...emptyReport(this.name, 'gomod'), modules: ctx.manifest.modules.length, files: this.staged.length + this.lists.size, sumdb: [...this.sumdb].sort() };
  }

  /**
   * The staged files to move into place: everything but the checksum-database files the tree
   * already has in a newer or immutable form. `latest` never moves backwards (an older bundle
   * imported after a newer one); its lookups only fill gaps; a tile is never replaced (its path
   * names its content), and one that differs is reported.
   */
  private async sumdbFilesToKeep(): Promise<Set<string>> {
    const keep = new Set(this.staged);
    const logger = this.ctx?.logger;
    for (const name of this.sumdb) {
      const latestRel = `sumdb/${name}/latest`;
      const incoming = this.staged.includes(latestRel) ? await readFile(join(this.staging, latestRel)) : undefined;
      const kept = await readIfExists(join(this.dir, latestRel));
      const plan = planSumdbMerge(name, incoming, kept, this.dir);
      if (incoming !== undefined && !plan.replaceLatest) keep.delete(latestRel);
      if (incoming !== undefined && !plan.current) {
        logger?.info({ database: name, bundleTree: plan.incomingSize, keptTree: plan.keptSize }, 'checksum database: the bundle carries an older head; the newer one stays');
      }
      for (const rel of this.staged) {
        if (!rel.startsWith(`sumdb/${name}/`)) continue;
        const kind = sumdbFileKind(rel.slice(`sumdb/${name}/`.length));
        if (kind === 'latest') continue;
        const final = join(this.dir, rel);
        if (kind === 'tile') {
          const old = await readIfExists(final);
          if (old === undefined) continue;
          keep.delete(rel);
          if (!old.equals(await readFile(join(this.staging, rel)))) {
            logger?.warn({ database: name, file: final }, 'checksum database: a carried tile differs from the one already in the tree; keeping the existing tile (tiles never change)');
          }
        } else if (!plan.current && existsSync(final)) {
          keep.delete(rel);
        }
      }
    }
    return keep;
  }

  /** `@v/list` = what was there ∪ what the bundle lists, keeping tagged versions whose zip is in the tree, in Go semver order. */
  private async mergeList(escModule: string, versions: readonly string[]): Promise<void> {
    const file = join(this.dir, escModule, '@v', 'list');
    let existing: string[] = [];
    try {
      existing = (await readFile(file, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const all = [...new Set([...existing, ...versions])].filter((v) => {
      if (isPseudoVersion(v)) return false;
      try {
        return existsSync(join(this.dir, escModule, '@v', `${escapeVersion(v)}.zip`));
      } catch {
        return false;
      }
    });
    all.sort(compare);
    await writeFileAtomic(file, all.map((v) => `${v}\n`).join(''));
  }

  async abort(): Promise<undefined> {
    if (this.staging !== '') await rm(this.staging, { recursive: true, force: true });
    return undefined;
  }
}
