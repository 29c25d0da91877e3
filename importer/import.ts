/**
 * `ferry import`: verify first, then one streaming pass. Before anything is written the bundle's
 * signature, parts, chain (the ledger must hold the parent) and `requires` (present at every
 * target) are checked. Then each tar entry, verified against the signed file list as it streams,
 * goes to the targets that want it as invisible writes (blobs, staged files); only when every
 * entry verified do the targets commit what is visible: manifests, tags, module files.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { openBundle, type BundleLifecycle, type OpenedBundle, type TrustedKey } from '../bundle/index.js';
import { errorMessage, FerryError, toFerryError } from '../errors/index.js';
import type { RegistryClient } from '../registry/index.js';
import { sequenceFromBundleId, type Ledger, type LedgerBundle, type Store } from '../store/index.js';
import { buildClientConfig, type ClientConfig } from './client-config.js';
import { GomodTarget } from './import-gomod.js';
import { OciDirTarget } from './import-ocidir.js';
import { RegistryTarget } from './import-registry.js';
import { StoreTarget } from './import-store.js';
import type { ImportTarget, PlanLine, TagReport, TargetContext, TargetReport } from './import-target.js';
import { writeStreamFile, type EntrySource } from './import-util.js';
import { inspectLayoutDir } from './oci-layout.js';

/** The warning printed whenever signatures are skipped. */
export const SKIP_SIGNATURE_WARNING =
  'WARNING: --insecure-skip-signature: bundle signatures are NOT checked. Anyone who could change the disc could have replaced every image and module in it; file hashes only prove the tar matches its own (unsigned) list.';

/** Progress and warnings during an import. */
export type ImportEvent =
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'bundle-start'; readonly id: string; readonly sequence: number; readonly targets: readonly string[] }
  | { readonly type: 'entry'; readonly id: string; readonly path: string; readonly size: number }
  | { readonly type: 'bundle-done'; readonly id: string; readonly status: BundleImportResult['status'] };

/** Options for importBundles. */
export interface ImportOptions {
  /** Bundle paths: a .tar, its first part, a .parts.json, or a directory. */
  readonly bundles: readonly string[];
  /** Public keys trusted to sign bundles. */
  readonly trust: readonly TrustedKey[];
  /** Skip signature checks (loudly). @default false */
  readonly insecureSkipSignature?: boolean;
  /** The intranet registry. */
  readonly registry?: RegistryClient;
  /** Namespace put in front of every image target path. */
  readonly prefix?: string;
  /** A static GOPROXY tree to write Go modules into. */
  readonly gomodDir?: string;
  /** A Ferry store to load everything into. */
  readonly store?: Store;
  /** An OCI image layout directory to write images into (created when absent or empty). */
  readonly ociDir?: string;
  /** The import ledger; required unless `dryRun`. */
  readonly ledger?: Ledger;
  /** Print what would happen; change nothing (not even the ledger). @default false */
  readonly dryRun?: boolean;
  /** Import even when the ledger lacks the parent bundle. @default false */
  readonly force?: boolean;
  /** Delete at the registry the tags a bundle removes (`pruned`), where Ferry placed them. @default true */
  readonly prune?: boolean;
  /** Concurrent registry blob operations. @default 4 */
  readonly concurrency?: number;
  /** Blobs at least this large stream straight from the tar into the upload. @default 8 MiB */
  readonly streamThreshold?: number;
  /** Where temp files go. @default os.tmpdir() */
  readonly tmpDir?: string;
  /** The `ferry serve` URL, for the client configuration. */
  readonly serveUrl?: string;
  /** The registry speaks plain HTTP or uses a private CA (client configuration says `insecure`). */
  readonly insecureRegistry?: boolean;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: ImportEvent) => void;
}

/** What happened to one bundle. */
export interface BundleImportResult {
  readonly id: string;
  readonly name: string;
  readonly sequence: number;
  readonly parent: string | null;
  readonly sourceStore: string;
  /** Name of the key that verified the signature, or null when skipped. */
  readonly signer: string | null;
  /** `sha256:` digest of the signed ferry-bundle.json: what the ledger records of this bundle. */
  readonly manifestDigest: string;
  readonly status: 'imported' | 'already-imported' | 'dry-run';
  /** Per target reports (imports). */
  readonly targets: TargetReport[];
  /** Targets that already had this bundle. */
  readonly alreadyAt: string[];
  /** The plan (dry runs). */
  readonly plan?: PlanLine[];
  /** The sources the bundle announces as deprecated or archived (`lifecycle` in ferry-bundle.json). */
  readonly lifecycle: readonly BundleLifecycle[];
  /** Tags whose digest differs from upstream because the target needed a platform-filtered index (a registry refused the original; a layout holds only complete images). */
  readonly filtered: TagReport[];
}

/** The outcome of importBundles. */
export interface ImportResult {
  readonly ok: true;
  readonly dryRun: boolean;
  readonly bundles: BundleImportResult[];
  readonly clientConfig: ClientConfig;
  readonly warnings: string[];
}

function usage(msg: string): FerryError {
  return new FerryError('USAGE', `import: ${msg}`);
}

/** `sequence (id)` of a bundle id, for messages. */
function describeId(id: string): string {
  const seq = sequenceFromBundleId(id);
  return seq === undefined ? id : `sequence ${seq} (${id})`;
}

/** Verifies and imports bundles into the given targets, in chain order. */
export async function importBundles(opts: ImportOptions): Promise<ImportResult> {
  if (!Array.isArray(opts.bundles) || opts.bundles.length === 0) throw usage('name at least one bundle');
  if (!opts.registry && opts.gomodDir === undefined && !opts.store && opts.ociDir === undefined) throw usage('name at least one target: --registry, --gomod-dir, --store or --oci-dir');
  if (!opts.dryRun && !opts.ledger) throw usage('a ledger is required (except for --dry-run)');
  if (!opts.insecureSkipSignature && opts.trust.length === 0) throw usage('pass --trust PUB (the bundle signer\'s public key)');
  if (opts.concurrency !== undefined && (!Number.isSafeInteger(opts.concurrency) || opts.concurrency < 1)) throw usage(`concurrency must be a positive integer, got ${String(opts.concurrency)}`);
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    opts.logger?.warn(message);
    opts.onEvent?.({ type: 'warning', message });
  };
  if (opts.ociDir !== undefined) {
    const dirs: Array<[string, string | undefined]> = [['--gomod-dir', opts.gomodDir], ['--store', opts.store?.dir]];
    for (const [flag, d] of dirs) {
      if (d !== undefined && resolve(d) === resolve(opts.ociDir)) throw usage(`--oci-dir and ${flag} name the same directory ${resolve(d)}`);
    }
    // Refused before any bundle is read or anything written.
    await inspectLayoutDir(opts.ociDir);
  }
  if (opts.insecureSkipSignature) warn(SKIP_SIGNATURE_WARNING);

  const opened: OpenedBundle[] = [];
  for (const p of opts.bundles) {
    const b = await openBundle(p, { trust: opts.trust, ...(opts.insecureSkipSignature ? { skipSignature: true } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    const twin = opened.find((o) => o.manifest.id === b.manifest.id);
    if (!twin) opened.push(b);
    else if (twin.manifestDigest !== b.manifestDigest) {
      throw new FerryError(
        'BUNDLE_CONFLICT',
        `bundles ${twin.name} and ${b.name} both claim the id ${b.manifest.id} but their signed manifests differ ` +
          `(${twin.manifestDigest} and ${b.manifestDigest}); nothing imported`,
        { op: 'import', file: b.name },
      );
    }
  }
  // Chain order, whatever order the operator named them in.
  opened.sort((a, b) => (a.manifest.store.id < b.manifest.store.id ? -1 : a.manifest.store.id > b.manifest.store.id ? 1 : a.manifest.sequence - b.manifest.sequence));

  const targetOpts = { ...(opts.prefix ? { prefix: opts.prefix } : {}) };
  // Fresh target objects per bundle: their state belongs to one pass.
  const makeTargets = (): ImportTarget[] => {
    const out: ImportTarget[] = [];
    if (opts.registry) {
      out.push(
        new RegistryTarget({
          client: opts.registry,
          ...targetOpts,
          ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          ...(opts.streamThreshold !== undefined ? { streamThreshold: opts.streamThreshold } : {}),
          ...(opts.prune === false ? { prune: false } : {}),
        }),
      );
    }
    if (opts.gomodDir !== undefined) out.push(new GomodTarget(opts.gomodDir));
    if (opts.store) out.push(new StoreTarget(opts.store, targetOpts));
    if (opts.ociDir !== undefined) out.push(new OciDirTarget(opts.ociDir));
    return out;
  };

  const results: BundleImportResult[] = [];
  for (const b of opened) {
    results.push(await importOne(b, makeTargets(), opts, warn));
  }

  // Walked, not copied: one object per tag would be tens of thousands for a configuration of a few lines.
  const images = (function* () {
    for (const b of opened) yield* b.manifest.images;
  })();
  const sumdb = [...new Set(results.flatMap((r) => r.targets.flatMap((t) => t.sumdb)).concat(opened.flatMap((b) => sumdbNames(b))))].sort();
  const clientConfig = buildClientConfig({
    ...(opts.gomodDir !== undefined ? { gomodDir: resolve(opts.gomodDir) } : {}),
    ...(opts.store ? { store: opts.store.dir } : {}),
    ...(opts.ociDir !== undefined ? { ociDir: resolve(opts.ociDir) } : {}),
    ...(opts.serveUrl !== undefined ? { serveUrl: opts.serveUrl } : {}),
    ...(opts.registry ? { registry: opts.registry.host } : {}),
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    ...(opts.insecureRegistry ? { insecureRegistry: true } : {}),
    images,
    sumdb,
    modules: opened.some((b) => b.manifest.modules.length > 0),
  });
  return { ok: true, dryRun: opts.dryRun === true, bundles: results, clientConfig, warnings };
}

function sumdbNames(b: OpenedBundle): string[] {
  const out = new Set<string>();
  for (const f of b.manifest.files) {
    const m = /^gomod\/sumdb\/([^/]+)\//.exec(f.path);
    if (m) out.add(m[1]!);
  }
  return [...out];
}

async function importOne(b: OpenedBundle, targets: ImportTarget[], opts: ImportOptions, warn: (m: string) => void): Promise<BundleImportResult> {
  const m = b.manifest;
  const ledger = opts.ledger;
  const signal = opts.signal;
  const manifestDigest = b.manifestDigest;
  const base = { id: m.id, name: b.name, sequence: m.sequence, parent: m.parent, sourceStore: m.store.id, signer: b.signer, manifestDigest, lifecycle: m.lifecycle ?? [] };
  if (ledger) checkSameBundle(ledger, b, manifestDigest, warn);
  const alreadyAt = targets.filter((t) => ledger?.isImported(m.id, t.name)).map((t) => t.name);
  const active = targets.filter((t) => !alreadyAt.includes(t.name));
  if (active.length === 0) {
    opts.onEvent?.({ type: 'bundle-done', id: m.id, status: 'already-imported' });
    return { ...base, status: 'already-imported', targets: [], alreadyAt, filtered: [] };
  }

  // The chain: every active target must already hold the parent.
  if (m.parent !== null) {
    for (const t of active) {
      if (ledger?.isImported(m.parent, t.name)) continue;
      if (opts.force) {
        warn(`--force: bundle ${describeId(m.id)} imported into ${t.name} without its parent ${describeId(m.parent)}`);
        continue;
      }
      const needed = m.chain.filter((id) => !ledger?.isImported(id, t.name));
      throw new FerryError(
        'CHAIN_BROKEN',
        `bundle ${m.id} (sequence ${m.sequence}) continues bundle ${describeId(m.parent)}, which ${t.name} has not imported; ` +
          `import first: ${needed.map(describeId).join(', ')} (or pass --force when the content is known to be there)`,
        { op: 'import', file: b.name },
      );
    }
  }
  // requires: content earlier bundles carried must be at every target.
  for (const t of active) {
    const missing = await t.missingRequires(m, ledger, signal);
    if (missing.length > 0) {
      const shown = missing.slice(0, 20).join(', ');
      throw new FerryError(
        'REQUIRES_MISSING',
        `bundle ${m.id} (sequence ${m.sequence}) needs ${missing.length} blob(s) that ${t.name} does not have: ${shown}${missing.length > 20 ? `, and ${missing.length - 20} more` : ''}` +
          (m.parent !== null ? ` (they travelled in ${m.chain.map(describeId).join(', ')})` : ''),
        { op: 'import', file: b.name, ...(missing[0] ? { digest: missing[0] } : {}) },
      );
    }
  }

  if (opts.dryRun) {
    announceDeprecated(m.lifecycle, opts.prefix, warn);
    const plan = active.flatMap((t) => t.plan(m, ledger));
    opts.onEvent?.({ type: 'bundle-done', id: m.id, status: 'dry-run' });
    return { ...base, status: 'dry-run', targets: [], alreadyAt, plan, filtered: [] };
  }
  if (!ledger) throw usage('a ledger is required');

  opts.onEvent?.({ type: 'bundle-start', id: m.id, sequence: m.sequence, targets: active.map((t) => t.name) });
  for (const t of active) {
    ledger.startBundle({ id: m.id, target: t.name, sequence: m.sequence, parent: m.parent, chain: m.chain, sourceStore: m.store.id, created: m.created, manifestDigest, sources: m.sources ?? null });
  }
  const tmp = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'ferry-import-'));
  const committed: TargetReport[] = [];
  try {
    const ctx: TargetContext = {
      manifest: m,
      ledger,
      tmpDir: tmp,
      reread: async (paths, each) => {
        for await (const e of b.entries(signal ? { signal } : {})) {
          if (paths.has(e.path)) await each({ path: e.path, size: e.size, sha256: e.sha256, ...(e.mediaType ? { mediaType: e.mediaType } : {}), stream: e.stream });
        }
      },
      ...(signal ? { signal } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    };
    for (const t of active) await t.begin(ctx);
    let n = 0;
    for await (const e of b.entries(signal ? { signal } : {})) {
      const consumers = active.filter((t) => t.wants(e.path, e.mediaType));
      opts.onEvent?.({ type: 'entry', id: m.id, path: e.path, size: e.size });
      if (consumers.length === 0) continue; // the reader drains and verifies it
      const meta = { path: e.path, size: e.size, sha256: e.sha256, ...(e.mediaType ? { mediaType: e.mediaType } : {}) };
      if (consumers.length === 1) {
        await consumers[0]!.take({ ...meta, stream: e.stream });
        continue;
      }
      // Several targets want it: spool once (verified while written), then hand each the file.
      const file = join(tmp, `entry-${n++}`);
      await writeStreamFile(e.stream, file, signal);
      const src: EntrySource = { ...meta, file };
      for (const t of consumers) await t.take(src);
    }
    // Every entry is verified: now make the bundle visible, target by target.
    for (const t of active) {
      const report = await t.commit();
      committed.push(report);
      // Each tag is its own ledger row already: the summary counts them (a list would be megabytes at scale).
      ledger.finishBundle(m.id, t.name, 'ok', { summary: { ...report, tags: report.tags.length } });
    }
  } catch (err) {
    // What the failed import leaves at (or removed from) each target it did not commit to.
    const notes: string[] = [];
    for (const t of active) {
      if (committed.some((c) => c.target === t.name)) continue;
      const note = await t.abort().catch((e: unknown) => `${t.name}: cleaning up failed: ${errorMessage(e)}`);
      if (note !== undefined) notes.push(note);
    }
    let fe = toFerryError(err);
    if (notes.length > 0) fe = new FerryError(fe.code, `${fe.message}; ${notes.join('; ')}`, fe.details);
    const result = committed.length > 0 ? 'partial' : 'failed';
    for (const t of active) {
      if (committed.some((c) => c.target === t.name)) continue;
      ledger.finishBundle(m.id, t.name, result, { error: `${fe.code}: ${errorMessage(fe)}` });
    }
    throw fe;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const foreign = [...new Set(committed.flatMap((r) => r.foreignLayers ?? []))].sort();
  if (foreign.length > 0) {
    warn(`bundle ${m.id}: ${foreign.length} foreign layer(s) not carried (non-distributable; clients fetch them from their urls): ${foreign.join(', ')}`);
  }
  const filtered: TagReport[] = [];
  for (const r of committed) {
    for (const f of r.tags) {
      if (f.filteredFrom === undefined) continue;
      filtered.push(f);
      warn(
        r.kind === 'oci-dir'
          ? `${f.repository}:${f.tag} in ${r.target} names ${f.digest}, not upstream's ${f.upstreamDigest}: the index with only the platforms carried (annotation io.ferry.filtered-from), since layout readers such as containerd import every child of an index`
          : `${f.repository}:${f.tag} points at ${f.digest}, not upstream's ${f.upstreamDigest}: the registry refused the index with platforms left out, so Ferry pushed it filtered (annotation io.ferry.filtered-from)`,
      );
    }
  }
  ledger.recordLifecycle(m.store.id, m.id, m.sequence, m.lifecycle ?? []);
  announceDeprecated(m.lifecycle, opts.prefix, warn);
  opts.onEvent?.({ type: 'bundle-done', id: m.id, status: 'imported' });
  return { ...base, status: 'imported', targets: committed, alreadyAt, filtered };
}

/** One warning per deprecated image and module root a bundle announces, with its note. */
function announceDeprecated(lifecycle: readonly BundleLifecycle[] | undefined, prefix: string | undefined, warn: (m: string) => void): void {
  for (const l of lifecycle ?? []) {
    if (l.state !== 'deprecated') continue;
    const what =
      l.kind === 'image'
        ? `image ${prefix ? `${prefix}/` : ''}${l.target ?? l.name}`
        : l.target !== null
          ? `Go module ${l.target}`
          : `Go module root ${l.name}`;
    warn(`${what} is deprecated${l.note !== undefined ? `: ${l.note}` : ' (no note given)'}`);
  }
}

/**
 * A bundle id names one signed manifest: every ledger record of this id must be of the same
 * ferry-bundle.json bytes, else BUNDLE_CONFLICT names both digests (a bundle re-signed with
 * the id of one already imported, or an altered copy, is never taken for it). Records written
 * before the digest was kept are compared on what they hold (sequence, parent, chain, source
 * store, creation time): a difference is a conflict; a match is accepted with a warning that
 * the content itself could not be compared.
 */
function checkSameBundle(ledger: Ledger, b: OpenedBundle, digest: string, warn: (m: string) => void): void {
  const m = b.manifest;
  const records = ledger.bundleRecords(m.id);
  const where = (r: LedgerBundle): string => `${r.target} (${r.result}, ${r.finishedAt ?? r.startedAt})`;
  const other = records.find((r) => r.manifestDigest !== null && r.manifestDigest !== digest);
  if (other) {
    throw new FerryError(
      'BUNDLE_CONFLICT',
      `bundle ${m.id} (${b.name}): the ledger ${ledger.file} records this id for a bundle whose signed manifest is ${other.manifestDigest} ` +
        `(imported into ${where(other)}), but this one's is ${digest}: the same id with different content. Nothing imported; ` +
        `a bundle id names one bundle, so check where this one came from (a re-signed or altered copy?)`,
      { op: 'import', file: b.name },
    );
  }
  const legacy = records.filter((r) => r.manifestDigest === null);
  for (const r of legacy) {
    const differs: string[] = [];
    if (r.sequence !== m.sequence) differs.push(`sequence ${r.sequence} vs ${m.sequence}`);
    if (r.parent !== m.parent) differs.push(`parent ${String(r.parent)} vs ${String(m.parent)}`);
    if (JSON.stringify(r.chain) !== JSON.stringify(m.chain)) differs.push('chain');
    if (r.sourceStore !== m.store.id) differs.push(`source store ${r.sourceStore} vs ${m.store.id}`);
    if (r.created !== m.created) differs.push(`created ${r.created} vs ${m.created}`);
    if (differs.length > 0) {
      throw new FerryError(
        'BUNDLE_CONFLICT',
        `bundle ${m.id} (${b.name}, signed manifest ${digest}): the ledger ${ledger.file} records this id for another bundle ` +
          `(imported into ${where(r)}; ${differs.join(', ')}): the same id with different content. Nothing imported`,
        { op: 'import', file: b.name },
      );
    }
  }
  if (legacy.some((r) => r.result === 'ok')) {
    warn(
      `bundle ${m.id}: the ledger's record of it was written by an older Ferry that did not keep the signed manifest's digest; ` +
        `its sequence, parent, chain, source store and creation time match this bundle (${digest}), but its content could not be compared`,
    );
  }
}

/**
 * Where the ledger lives unless --ledger says: beside the store, in the Go module tree, in the OCI
 * layout (a `.ferry-` name layout readers never look at), else here.
 */
export function defaultLedgerPath(t: { readonly store?: string; readonly gomodDir?: string; readonly ociDir?: string }): string {
  if (t.store !== undefined) return join(resolve(t.store), 'ledger.db');
  if (t.gomodDir !== undefined) return join(resolve(t.gomodDir), '.ferry-ledger.db');
  if (t.ociDir !== undefined) return join(resolve(t.ociDir), '.ferry-ledger.db');
  return resolve('ferry-ledger.db');
}

export { buildClientConfig, type ClientConfig, type ClientConfigInput } from './client-config.js';
export { GomodTarget } from './import-gomod.js';
export { OciDirTarget } from './import-ocidir.js';
export { FERRY_PRIVATE_PREFIX, inspectLayoutDir, LAYOUT_LOCK_FILE, OciLayout, type LayoutState, type LayoutTag, type LayoutTagChange, type OciLayoutOptions } from './oci-layout.js';
export { ANNOTATION_FILTERED_FROM, filteredIndex } from '../oci/index.js';
export { RegistryTarget, type RegistryTargetOptions } from './import-registry.js';
export { StoreTarget } from './import-store.js';
export type { ImportTarget, PlanLine, PruneReport, TagReport, TargetContext, TargetReport } from './import-target.js';
