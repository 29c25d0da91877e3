/**
 * What the catalog page of `ferry serve` lists, read from what the server serves: the images of
 * a store (by intranet repository, as `/v2/` serves them), the Go modules of the store or of the
 * static GOPROXY tree that answers for modules, and the bundles the import ledger beside them
 * records. Cheap to call per request: the store's tags come from one query, re-run only when
 * the journal moved; manifest rows (sizes, platforms) and the notes read from manifest and
 * config bytes are immutable, so each is read once per digest, the rows in one query.
 * Each tag's attachments (signatures, SBOMs, attestations, other referrers) come from the
 * store's attachments records, all read in one query per rebuild; the lifecycle state of the
 * sources (deprecated or archived, with a note) from the import ledger beside the store or tree.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errorMessage } from '../errors/index.js';
import { compare, isPseudoVersion, unescapePath, unescapeVersion } from '../gomod/index.js';
import { attachmentArtifactType, isDigest, isIndexMediaType, parseDigestTag, type Attachment, type Digest } from '../oci/index.js';
import { Ledger, type LedgerChainStatus, type LedgerLifecycle, type ManifestSummary, type Store, type TagRow } from '../store/index.js';
import type { OciRepositories } from './oci.js';

/** One tag of a served repository. */
export interface CatalogTag {
  readonly tag: string;
  /** The stored (upstream) digest of what the tag points at; also served by digest. */
  readonly digest: Digest;
  /** True for an image index (several platforms), false for a single image. */
  readonly index: boolean;
  /** `os/arch[/variant]` of the images carried, sorted; empty when unknown. */
  readonly platforms: readonly string[];
  /** Compressed bytes of the manifests, configs and layers carried, summed over platforms; undefined when not all are recorded. */
  readonly size: number | undefined;
  /** The manifest's `org.opencontainers.image.description` (or title) annotation: upstream text. */
  readonly description: string | undefined;
  /** When the tag's digest last changed here. */
  readonly changedAt: string;
  /** What is attached to the tag's manifest (signatures, SBOMs, …), by kind then digest. */
  readonly attachments: readonly CatalogAttachment[];
}

/** What an attachment is, as the page names it. */
export type CatalogAttachmentKind = 'signature' | 'sbom' | 'attestation' | 'referrer';

/** One attachment of a tag's manifest. */
export interface CatalogAttachment {
  readonly kind: CatalogAttachmentKind;
  /** The attachment manifest's digest. */
  readonly digest: Digest;
  /** Its artifact type (or the cosign tag kind's), upstream text; undefined when unknown. */
  readonly artifactType: string | undefined;
  /** The cosign digest tag it is found by; undefined for an OCI referrer. */
  readonly tag: string | undefined;
}

const KIND_ORDER: readonly CatalogAttachmentKind[] = ['signature', 'sbom', 'attestation', 'referrer'];

/**
 * The kind of an attachment: a cosign digest tag's suffix says it; otherwise its artifact type
 * (cosign's, Notation's, sigstore bundles, in-toto, SPDX and CycloneDX); anything else is a referrer.
 */
export function attachmentKind(a: Attachment): CatalogAttachmentKind {
  const cosign = a.tag === undefined ? undefined : parseDigestTag(a.tag)?.kind;
  if (cosign === 'sig') return 'signature';
  if (cosign === 'sbom') return 'sbom';
  if (cosign === 'att') return 'attestation';
  const t = (attachmentArtifactType(a) ?? '').toLowerCase();
  if (t === 'application/vnd.dev.cosign.artifact.sig.v1+json' || t.startsWith('application/vnd.cncf.notary.signature') || t.startsWith('application/vnd.dev.sigstore.bundle')) return 'signature';
  if (t === 'application/vnd.dev.cosign.artifact.sbom.v1+json' || t.includes('spdx') || t.includes('cyclonedx')) return 'sbom';
  if (t === 'application/vnd.dev.cosign.artifact.att.v1+json' || t.startsWith('application/vnd.in-toto')) return 'attestation';
  return 'referrer';
}

/** A subject's attachments as the page shows them, by kind then digest. */
function catalogAttachments(list: readonly Attachment[] | undefined): CatalogAttachment[] {
  if (!list) return [];
  return list
    .map((a) => ({ kind: attachmentKind(a), digest: a.descriptor.digest, artifactType: attachmentArtifactType(a), tag: a.tag }))
    .sort((x, y) => KIND_ORDER.indexOf(x.kind) - KIND_ORDER.indexOf(y.kind) || (x.digest < y.digest ? -1 : x.digest > y.digest ? 1 : 0));
}

/** One served repository. */
export interface CatalogRepository {
  readonly name: string;
  readonly tags: readonly CatalogTag[];
}

/** One version of a Go module. */
export interface CatalogVersion {
  readonly version: string;
  readonly pseudo: boolean;
  /** The `.info` time; undefined when unreadable. */
  readonly time: string | undefined;
  /** The zip's size; undefined when only go.mod is carried (the go command resolves it but cannot build it). */
  readonly zipSize: number | undefined;
  /** The retraction rationale when the module's latest go.mod retracts the version. */
  readonly retracted: string | undefined;
}

/** One Go module with its versions, newest first. */
export interface CatalogModule {
  readonly path: string;
  readonly versions: readonly CatalogVersion[];
}

/** The import ledger's view, when a ledger sits beside the store or tree. */
export interface CatalogLedger {
  readonly file: string;
  /** Per source store: bundles imported, gaps in the chain, partial exports. */
  readonly chains: readonly LedgerChainStatus[];
  /** The sources the imported bundles announced as deprecated or archived (empty when none or unread). */
  readonly lifecycle: readonly LedgerLifecycle[];
  /** Set instead of `chains` when the ledger could not be read. */
  readonly error?: string;
}

/** Everything the catalog page shows. */
export interface CatalogData {
  /** Undefined when the server has no store (it serves no images). */
  readonly repositories: readonly CatalogRepository[] | undefined;
  readonly modules: readonly CatalogModule[];
  /** Where modules are served from. */
  readonly modulesFrom: 'store' | 'tree' | 'none';
  /** Checksum databases this server answers for under `/sumdb/` (their `supported` file is here). */
  readonly sumdbs: readonly string[];
  readonly ledger: CatalogLedger | undefined;
}

/** Options for CatalogReader. */
export interface CatalogReaderOptions {
  readonly store?: Store;
  /** The repositories the OCI routes serve (shared with them: one view of the tags). */
  readonly repos?: OciRepositories;
  /** The static GOPROXY tree, when it answers for modules. */
  readonly gomodDir?: string;
  /**
   * Bounds on a module tree walk: directories visited and versions listed.
   * @default { dirs: 100000, versions: 200000 }
   */
  readonly limits?: { readonly dirs: number; readonly versions: number };
}

/** How many manifests (and configs) are read at once for their notes. */
const NOTES_CONCURRENCY = 16;
/** The longest annotation text kept for the page. */
const MAX_DESCRIPTION = 300;
/** The largest manifest or config read for the page (they are small; a huge one is skipped). */
const MAX_MANIFEST = 4 << 20;

/** Reads the catalog's data, caching what does not change until the store's journal moves. */
export class CatalogReader {
  /** The journal sequence and attachments stamp the images were built at. */
  private seq = '';
  private images: CatalogRepository[] | undefined;
  private storeModules: CatalogModule[] = [];
  private readonly notesCache = new Map<Digest, ManifestNotes>();
  private readonly summaries = new Map<Digest, ManifestSummary>();
  private refreshing: { readonly seq: string; readonly done: Promise<void> } | undefined;
  private readonly treeCache = new Map<string, { mtimeMs: number; versions: CatalogVersion[] }>();

  constructor(private readonly opts: CatalogReaderOptions) {}

  /** The catalog as of now. */
  async read(signal?: AbortSignal): Promise<CatalogData> {
    const { store, gomodDir } = this.opts;
    if (store) await this.refreshStore(store);
    const modules = gomodDir !== undefined ? await this.treeModules(gomodDir, signal) : this.storeModules;
    return {
      repositories: store ? (this.images ?? []) : undefined,
      modules,
      modulesFrom: gomodDir !== undefined ? 'tree' : store ? 'store' : 'none',
      sumdbs: gomodDir !== undefined ? await treeSumdbs(gomodDir) : store ? store.sumdb.namesWithFile('supported') : [],
      ledger: readLedger(store ? join(store.dir, 'ledger.db') : gomodDir !== undefined ? join(resolve(gomodDir), '.ferry-ledger.db') : undefined),
    };
  }

  /**
   * Brings the store's part up to the journal. One rebuild at a time, shared by the requests
   * that wait for it, and not tied to any one request: a client hanging up neither stops the
   * reads the others wait for nor leaves a manifest's notes cached as empty.
   */
  private refreshStore(store: Store): Promise<void> {
    const seq = `${store.journal.currentSeq()}/${store.attachments.stamp()}`;
    if (seq === this.seq && this.images) return Promise.resolve();
    if (this.refreshing?.seq === seq) return this.refreshing.done;
    const done = this.rebuild(store, seq).finally(() => {
      if (this.refreshing?.done === done) this.refreshing = undefined;
    });
    this.refreshing = { seq, done };
    return done;
  }

  private async rebuild(store: Store, seq: string): Promise<void> {
    const repos = this.opts.repos;
    const grouped = (repos ? repos.names() : []).map((name) => ({
      name,
      rows: [...(repos?.tags(name)?.values() ?? [])].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0)),
    }));
    // Manifest rows never change: only those not seen yet are queried, all in one pass.
    const unseen = new Set<Digest>();
    for (const r of grouped) {
      for (const row of r.rows) for (const d of [row.digest, ...row.keptDigests]) if (!this.summaries.has(d)) unseen.add(d);
    }
    if (unseen.size > 0) for (const [d, m] of store.content.manifestSummaries([...unseen])) this.summaries.set(d, m);
    const summaries = this.summaries;
    const rowsByRepo = grouped.map(({ name, rows }) => ({ name, rows: rows.map((row) => ({ row, t: describeTag(row, summaries) })) }));
    // Each manifest's own bytes are read once per process (manifests never change), many at once.
    const todo = new Map<Digest, boolean>();
    for (const r of rowsByRepo) for (const { row, t } of r.rows) if (!this.notesCache.has(row.digest)) todo.set(row.digest, !t.index && t.platforms.length === 0);
    const queue = [...todo];
    const worker = async (): Promise<void> => {
      for (let next = queue.pop(); next; next = queue.pop()) await this.notes(store, next[0], next[1]);
    };
    await Promise.all(Array.from({ length: Math.min(NOTES_CONCURRENCY, queue.length) }, worker));
    // Every attachment in one query, grouped by the manifest it is attached to.
    const attached = new Map<Digest, Attachment[]>();
    for (const a of store.attachments.all()) {
      const list = attached.get(a.subject) ?? [];
      list.push(a);
      attached.set(a.subject, list);
    }
    const out: CatalogRepository[] = rowsByRepo.map(({ name, rows }) => ({
      name,
      tags: rows.map(({ row, t }) => {
        const notes = this.notesCache.get(row.digest) ?? {};
        return { ...t, platforms: notes.platform ? [notes.platform] : t.platforms, description: notes.description, attachments: catalogAttachments(attached.get(row.digest)) };
      }),
    }));
    const byModule = new Map<string, CatalogVersion[]>();
    for (const v of store.modules.listWithSizes()) {
      const list = byModule.get(v.module) ?? [];
      list.push({ version: v.version, pseudo: isPseudoVersion(v.version), time: v.time, zipSize: v.zipSize ?? undefined, retracted: v.retracted ?? undefined });
      byModule.set(v.module, list);
    }
    this.storeModules = [...byModule].map(([path, versions]) => ({ path, versions: versions.sort((a, b) => compare(b.version, a.version)) }));
    this.images = out;
    this.seq = seq;
  }

  /**
   * What the page shows from a stored manifest's own bytes, read once per digest (manifests
   * never change): its description annotation and, for a single image whose platform the index
   * row does not name, the platform its config states.
   */
  private async notes(store: Store, digest: Digest, needPlatform: boolean): Promise<ManifestNotes> {
    const hit = this.notesCache.get(digest);
    if (hit) return hit;
    const out: { description?: string; platform?: string } = {};
    try {
      const doc = await readJson(store, digest);
      const a = typeof doc['annotations'] === 'object' && doc['annotations'] !== null ? (doc['annotations'] as Record<string, unknown>) : {};
      const v = a['org.opencontainers.image.description'] ?? a['org.opencontainers.image.title'];
      if (typeof v === 'string' && v !== '') out.description = v.length > MAX_DESCRIPTION ? `${v.slice(0, MAX_DESCRIPTION)}…` : v;
      const config = doc['config'] as { digest?: unknown } | undefined;
      if (needPlatform && typeof config?.digest === 'string' && isDigest(config.digest)) {
        const c = await readJson(store, config.digest);
        if (typeof c['os'] === 'string' && typeof c['architecture'] === 'string') {
          out.platform = `${c['os']}/${c['architecture']}${typeof c['variant'] === 'string' && c['variant'] !== '' ? `/${c['variant']}` : ''}`;
        }
      }
      this.notesCache.set(digest, out);
    } catch {
      // A manifest or config that cannot be read shows nothing more this time (fsck reports
      // damage); it is not cached, so the next rebuild tries again.
    }
    return out;
  }

  /** The modules of a static GOPROXY tree: every `<escaped path>/@v/` directory, walked with bounds. */
  private async treeModules(dir: string, signal: AbortSignal | undefined): Promise<CatalogModule[]> {
    const root = resolve(dir);
    const limits = this.opts.limits ?? { dirs: 100_000, versions: 200_000 };
    const out: CatalogModule[] = [];
    let dirs = 0;
    let versions = 0;
    const walk = async (rel: string[]): Promise<void> => {
      signal?.throwIfAborted();
      if (++dirs > limits.dirs) return;
      let entries;
      try {
        entries = await readdir(join(root, ...rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        if (!e.isDirectory() || e.name.startsWith('.')) continue;
        if (rel.length === 0 && e.name === 'sumdb') continue;
        if (e.name === '@v') {
          let path: string;
          try {
            path = unescapePath(rel.join('/'));
          } catch {
            continue;
          }
          const list = await this.treeVersions(join(root, ...rel, '@v'), limits.versions - versions);
          versions += list.length;
          if (list.length > 0) out.push({ path, versions: list });
          continue;
        }
        await walk([...rel, e.name]);
      }
    };
    await walk([]);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The versions in one `@v/` directory (every version has its `.mod`), cached until the directory changes. */
  private async treeVersions(vdir: string, room: number): Promise<CatalogVersion[]> {
    const st = await stat(vdir);
    const hit = this.treeCache.get(vdir);
    if (hit && hit.mtimeMs === st.mtimeMs) return hit.versions.slice(0, Math.max(0, room));
    const names = new Set(await readdir(vdir));
    const versions: CatalogVersion[] = [];
    for (const n of names) {
      if (!n.endsWith('.mod') || n.startsWith('.')) continue;
      const base = n.slice(0, -4);
      let version: string;
      try {
        version = unescapeVersion(base);
      } catch {
        continue;
      }
      const zipSize = names.has(`${base}.zip`) ? (await stat(join(vdir, `${base}.zip`))).size : undefined;
      versions.push({ version, pseudo: isPseudoVersion(version), time: await infoTime(join(vdir, `${base}.info`)), zipSize, retracted: undefined });
    }
    versions.sort((a, b) => compare(b.version, a.version));
    this.treeCache.set(vdir, { mtimeMs: st.mtimeMs, versions });
    return versions.slice(0, Math.max(0, room));
  }
}

/** What a manifest's bytes add to its row. */
interface ManifestNotes {
  readonly description?: string;
  readonly platform?: string;
}

/** A small stored JSON document (a manifest or config), as an object. */
async function readJson(store: Store, digest: Digest): Promise<Record<string, unknown>> {
  const bytes = await store.content.readBlobBytes(digest, MAX_MANIFEST);
  const doc = JSON.parse(bytes.toString('utf8')) as unknown;
  return typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>) : {};
}

/** Platforms and size of a tag from the manifest summaries: an image, or an index's kept children. */
function describeTag(row: TagRow, summaries: ReadonlyMap<Digest, ManifestSummary>): Omit<CatalogTag, 'description' | 'attachments'> {
  const top = summaries.get(row.digest);
  const index = isIndexMediaType(row.mediaType);
  const base = { tag: row.tag, digest: row.digest, index, changedAt: row.changedAt };
  if (!top) return { ...base, platforms: [], size: undefined };
  if (!index) return { ...base, platforms: top.platform ? [top.platform] : (row.platforms ?? []), size: top.size + top.refsSize };
  let size: number | undefined = top.size;
  const platforms: string[] = [];
  for (const d of row.keptDigests) {
    const child = summaries.get(d);
    if (!child) {
      size = undefined;
      continue;
    }
    if (size !== undefined) size += child.size + child.refsSize;
    if (child.platform) platforms.push(child.platform);
  }
  return { ...base, platforms: platforms.sort(), size };
}

/** The `.info` file's Time, or undefined. */
async function infoTime(file: string): Promise<string | undefined> {
  try {
    const doc = JSON.parse(await readFile(file, 'utf8')) as { Time?: unknown };
    return typeof doc.Time === 'string' ? doc.Time : undefined;
  } catch {
    return undefined;
  }
}

/** The checksum databases a tree answers for: `sumdb/<name>/supported` exists. */
async function treeSumdbs(dir: string): Promise<string[]> {
  try {
    const names = await readdir(join(resolve(dir), 'sumdb'));
    return names.filter((n) => !n.startsWith('.') && existsSync(join(resolve(dir), 'sumdb', n, 'supported'))).sort();
  } catch {
    return [];
  }
}

/** The ledger's chains, read-only, or undefined when there is no ledger there. */
function readLedger(file: string | undefined): CatalogLedger | undefined {
  if (file === undefined || !existsSync(file)) return undefined;
  let ledger: Ledger | undefined;
  try {
    ledger = Ledger.open(file, { readonly: true });
    return { file, chains: ledger.chainStatus(), lifecycle: ledger.lifecycle() };
  } catch (err) {
    return { file, chains: [], lifecycle: [], error: errorMessage(err) };
  } finally {
    ledger?.close();
  }
}
