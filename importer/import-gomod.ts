/**
 * Import into a static GOPROXY tree (`GOPROXY=file:///DIR` or any web server over DIR). Files are
 * staged in a hidden directory inside DIR while the tar streams (the go command never asks for a
 * path starting with a dot), every module file checked as `ferry verify` checks it
 * (BundleModuleChecks: the module zip rules, .info, .mod and zip agreeing, the h1 hashes of the
 * signed module list), and renamed into place only in commit(); `@v/list` is merged with what was
 * there.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BundleModuleChecks, moduleFilePath, type BundleManifest } from '../bundle/index.js';
import { FerryError } from '../errors/index.js';
import { compare, escapePath, escapeVersion, isPseudoVersion } from '../gomod/index.js';
import type { Ledger } from '../store/index.js';
import { planSumdbMerge, sumdbFileKind } from './import-sumdb.js';
import { emptyReport, type ImportTarget, type PlanLine, type TargetContext, type TargetReport } from './import-target.js';
import { openSource, readSmall, writeFileAtomic, writeStreamFile, type EntrySource } from './import-util.js';

const STAGING_PREFIX = '.ferry-staging-';
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const LIST_FILE = /^(.+)\/@v\/list$/;

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
  private checks: BundleModuleChecks | undefined;

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
        const mf = moduleFilePath(f.path);
        const done = mf !== undefined && ledger?.isDone(this.name, 'module', '', `${mf.module}@${mf.version}`) === true && existsSync(join(this.dir, rel));
        return { target: this.name, action: done ? 'skip' : 'write-file', what: join(this.dir, rel), size: f.size } satisfies PlanLine;
      });
  }

  async begin(ctx: TargetContext): Promise<void> {
    this.ctx = ctx;
    this.checks = new BundleModuleChecks(ctx.manifest);
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
    await this.checks!.check(src.path, { file }, ctx.signal);
    this.staged.push(rel);
  }

  async commit(): Promise<TargetReport> {
    const ctx = this.ctx;
    if (!ctx) throw new FerryError('INTERNAL', 'gomod target used before begin()');
    try {
      this.checks!.finish();
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
