/**
 * Import into an OCI image layout directory (`ferry import --oci-dir DIR`): the chain merged into
 * one layout that skopeo and podman read (`oci:DIR:NAME`) and containerd and the k3s/RKE2 air-gap
 * image folder import as a tar. Blobs go into place as the tar streams (verified while written;
 * a blob no name reaches is invisible); manifests and then index.json are written only in
 * commit(), after every entry verified, through the one copy (oci/copy.ts) from what the bundle
 * carries and what DIR holds from earlier bundles. index.json names each image as the bundle's
 * own index.json does (`org.opencontainers.image.ref.name` and `io.containerd.image.name`): a
 * name a newer bundle moves is replaced, the others stay.
 *
 * Every blob and manifest this import writes is noted in the ledger, so a failed import (this
 * run, or a killed earlier run of the same bundle) removes what nothing came to use.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BundleImageSource, checkFilteredImage, layoutAnnotations, layoutRefNames, MAX_PLAN_BYTES, PLAN_FILE, type BundleManifest } from '../bundle/index.js';
import { FerryError } from '../errors/index.js';
import { ANNOTATION_FILTERED_FROM, copy, MAX_MANIFEST_BYTES, type Digest } from '../oci/index.js';
import { emptyReport, type ImportTarget, type PlanLine, type TagReport, type TargetContext, type TargetReport } from './import-target.js';
import { openSource, spoolCapped, readSmall, type EntrySource } from './import-util.js';
import { OciLayout, type LayoutTag } from './oci-layout.js';

/** The repository part of a layout name (`registry/repo:tag` or `target:tag`), for reports. */
function nameRepository(name: string): string {
  return name.slice(0, name.lastIndexOf(':'));
}

/** An OCI image layout directory as an import target. */
export class OciDirTarget implements ImportTarget {
  readonly name: string;
  readonly kind = 'oci-dir' as const;
  /** The layout's absolute path. */
  readonly dir: string;
  private ctx: TargetContext | undefined;
  private layout: OciLayout | undefined;
  /** The bundle's images as a one-pass source: manifests kept as they stream. */
  private bundle: BundleImageSource | undefined;
  private counts = { uploaded: 0, mounted: 0, existing: 0, skipped: 0, bytes: 0 };
  /** Blobs and manifests this run wrote (the ledger notes them too, for a run killed before its abort). */
  private added = new Map<Digest, 'blob' | 'manifest'>();

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.name = `oci-dir:${this.dir}`;
  }

  wants(path: string): boolean {
    return path.startsWith('blobs/') || path === PLAN_FILE;
  }

  async missingRequires(m: BundleManifest): Promise<string[]> {
    const layout = new OciLayout(this.dir);
    const missing: string[] = [];
    for (const d of m.requires) if (!(await layout.hasDigest(d as Digest))) missing.push(d);
    return missing;
  }

  plan(m: BundleManifest): PlanLine[] {
    const out: PlanLine[] = [];
    for (const f of m.files) {
      if (!f.path.startsWith('blobs/sha256/')) continue;
      const there = existsSync(join(this.dir, 'blobs', 'sha256', f.sha256));
      out.push({ target: this.name, action: there ? 'skip' : 'store-blob', what: join(this.dir, f.path), size: f.size });
    }
    const names = layoutRefNames(m.images);
    m.images.forEach((im, i) => out.push({ target: this.name, action: 'set-tag', what: `${names[i]!} → ${im.digest}`, size: 0 }));
    return out;
  }

  async begin(ctx: TargetContext): Promise<void> {
    this.ctx = ctx;
    this.bundle = new BundleImageSource(ctx.manifest);
    this.layout = await OciLayout.openForWrite(this.dir, {
      onWrite: (d, kind) => {
        this.added.set(d, kind);
        ctx.ledger?.recordItem({ target: this.name, kind, scope: '', key: d, digest: d, state: 'done', bundleId: ctx.manifest.id, detail: null });
      },
    });
  }

  private get c(): TargetContext {
    if (!this.ctx) throw new FerryError('INTERNAL', 'oci-dir target used before begin()');
    return this.ctx;
  }

  private get source(): BundleImageSource {
    if (!this.bundle) throw new FerryError('INTERNAL', 'oci-dir target used before begin()');
    return this.bundle;
  }

  private get out(): OciLayout {
    if (!this.layout) throw new FerryError('INTERNAL', 'oci-dir target used before begin()');
    return this.layout;
  }

  async take(src: EntrySource): Promise<void> {
    const signal = this.c.signal;
    if (src.path === PLAN_FILE) {
      this.source.keepPlan(await spoolCapped(src, this.c.tmpDir, MAX_PLAN_BYTES, signal));
      return;
    }
    const digest = `sha256:${src.sha256}` as Digest;
    if (src.mediaType !== undefined) {
      // Written by the copy in commit(), children first, once every entry verified.
      this.source.keep(digest, await readSmall(openSource(src, signal), MAX_MANIFEST_BYTES, src.path), src.mediaType);
      return;
    }
    const d = { digest, size: src.size, mediaType: 'application/octet-stream' };
    // Left alone, the reader still drains and verifies the entry.
    if (await this.out.hasBlob(d)) {
      this.counts.existing++;
      return;
    }
    await this.out.putBlob(d, () => openSource(src, signal), signal ? { signal } : {});
    this.counts.uploaded++;
    this.counts.bytes += src.size;
  }

  /**
   * After every entry verified: one copy from what the bundle carries (and DIR holds from earlier
   * bundles) into the layout, every manifest walked and every blob checked present (a layout may
   * come from elsewhere: nothing in it is taken on trust), then index.json once, last.
   */
  async commit(): Promise<TargetReport> {
    const m = this.c.manifest;
    const signal = this.c.signal;
    const layout = this.out;
    // On failure the lock stays for abort(), which removes what this import wrote and releases it.
    await this.source.checkPlan();
    const src = this.source;
    const names = layoutRefNames(m.images);
    const roots = src.roots<LayoutTag>((im, at) => ({ name: names[at]!, annotations: layoutAnnotations(im, names[at]!) }));
    const result = await copy(
      {
        manifest: async (ref) => {
          const got = src.carriedManifest(ref as Digest);
          return got ? { digest: ref as Digest, mediaType: got.mediaType, size: got.bytes.length, bytes: got.bytes } : layout.manifest(ref);
        },
        // Every blob the bundle carries is in the layout already (take() put it there).
        blob: (d) => Promise.reject(new FerryError('REQUIRES_MISSING', `${this.dir}: blob ${d.digest} is neither in the bundle nor in the layout`, { file: this.dir, digest: d.digest })),
        hasBlob: (d) => layout.hasBlob(d),
        hasManifest: async (d) => src.carries(d.digest) || layout.hasManifest(d),
      },
      layout,
      roots,
      {
        ...(signal ? { signal } : {}),
        trustSink: false,
        attachments: (d) => src.attachments(d),
        // A foreign layer left out upstream stays out: the manifest names it by its urls.
        foreign: 'if-present',
        missing: (root, lost) => {
          const r = roots.find((x) => x === root)!;
          return new FerryError('REQUIRES_MISSING', `${r.tag.name}: manifest ${lost[0]!.digest} is neither in the bundle nor in ${this.dir}`, { file: this.dir, digest: lost[0]!.digest });
        },
        check: (closures) => {
          for (const { root, closure } of closures) {
            const r = roots.find((x) => x === root)!;
            checkFilteredImage(r.image, r.at, closure);
          }
        },
      },
    );
    // Tags last: index.json in one atomic replacement.
    const changes = new Map((await layout.commitTags()).map((c) => [c.name, c]));
    const tags: TagReport[] = [];
    const foreign = new Set<Digest>();
    for (const { root, image } of result.images) {
      const name = root.tag!.name;
      const filteredFrom = image.digest !== image.root.digest ? image.root.digest : undefined;
      const change = changes.get(name);
      this.c.ledger?.recordItem({
        target: this.name,
        kind: 'tag',
        scope: '',
        key: name,
        digest: image.digest,
        state: 'done',
        bundleId: m.id,
        detail: filteredFrom ? `${ANNOTATION_FILTERED_FROM} ${filteredFrom}` : null,
      });
      tags.push({
        repository: nameRepository(name),
        tag: name.slice(name.lastIndexOf(':') + 1),
        digest: image.digest,
        upstreamDigest: image.root.digest,
        ...(filteredFrom ? { filteredFrom } : {}),
        ...(change && !change.changed ? { skipped: true } : {}),
      });
      for (const f of image.closure.foreign) if (!(await layout.hasBlob(f))) foreign.add(f.digest);
    }
    await layout.close();
    return { ...emptyReport(this.name, 'oci-dir'), blobs: { ...this.counts }, manifests: result.manifests, tags, foreignLayers: [...foreign].sort() };
  }

  /**
   * Removes the blobs and manifests this bundle's imports wrote (this run's, and those the ledger
   * notes from a killed earlier run of the same bundle) that no name in index.json reaches: a
   * failed import leaves the layout as it found it. A kill -9 can still leave some; importing the
   * bundle again either uses them or, failing again, removes them.
   */
  async abort(): Promise<string | undefined> {
    const ctx = this.ctx;
    const layout = this.layout;
    if (!ctx || !layout) return undefined;
    try {
      const m = ctx.manifest;
      const noted = ctx.ledger?.bundleItems(m.id, this.name).filter((i) => (i.kind === 'blob' || i.kind === 'manifest') && i.state === 'done' && i.digest !== null) ?? [];
      const candidates = new Map<Digest, 'blob' | 'manifest'>([...noted.map((i) => [i.digest as Digest, i.kind as 'blob' | 'manifest'] as const), ...this.added]);
      if (candidates.size === 0) return undefined;
      const r = await layout.removeUnreferenced(candidates.keys());
      for (const d of r.removed) {
        const kind = candidates.get(d)!;
        ctx.ledger?.recordItem({ target: this.name, kind, scope: '', key: d, digest: d, state: 'failed', bundleId: m.id, detail: 'removed: the import failed before anything used it' });
      }
      if (r.removed.length === 0) return undefined;
      ctx.logger?.info({ target: this.name, files: r.removed.length, bytes: r.bytes }, 'removed the blobs the failed import had written to the OCI layout');
      return `the ${r.removed.length} blob(s) (${r.bytes} bytes) it had written to ${this.dir} were removed`;
    } finally {
      await layout.close();
    }
  }
}
