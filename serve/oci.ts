/**
 * The pull side of the OCI distribution API over a store (opencontainers/distribution-spec):
 * repositories are the tags' intranet targets; manifests are served as their exact stored
 * bytes; what a tag exposes and which digests a repository serves come from the image graph
 * (oci/graph.ts), as export carries them: a digest is served only under a repository whose
 * tags' closures reach it, and a tag whose platforms leave children of its index out serves the
 * filtered index (whose children are all there), as an import into a registry tags it.
 * Attachments the store records travel with their tags here too: cosign digest tags are served
 * as tags, and OCI referrers are listed by `GET /v2/<name>/referrers/<digest>` (distribution-spec
 * 1.1 "Listing Referrers").
 */
import { ALL_ATTACHMENTS, closure, isDigest, isValidRepository, MediaType, referrerDescriptor, type Descriptor, type Digest, type FilteredIndex } from '../oci/index.js';
import { latestRow, StoreSource, storeReader, type Store, type StoreContent, type TagRow } from '../store/index.js';
import { bufferResource, sendJson, sendResource, storeBlobResource, type ServeContext } from './http.js';

/** Sent on every /v2 response; clients use it to recognise a registry. */
export const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;

/** The distribution error codes this server answers with. */
export type DistributionErrorCode =
  | 'NAME_UNKNOWN'
  | 'NAME_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'BLOB_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'UNSUPPORTED'
  | 'PAGINATION_NUMBER_INVALID';

/** Sends `{"errors":[{code,message,detail}]}` as the distribution spec defines it. */
export function sendDistributionError(ctx: ServeContext, status: number, code: DistributionErrorCode, message: string, detail?: unknown, headers: Record<string, string> = {}): void {
  sendJson(ctx, status, { errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] }, { ...API_VERSION_HEADER, ...headers });
}

/** What one repository's tags reach, through the graph. */
interface Reach {
  readonly manifests: Set<Digest>;
  readonly blobs: Set<Digest>;
  /** The filtered indexes its tags stand for, by digest (made, not stored). */
  readonly filtered: Map<Digest, FilteredIndex>;
  /** The digest each tag serves: its root, or the root's filtered index. */
  readonly tagDigest: Map<string, Digest>;
  /** The cosign digest tags of the attachments its tags reach. */
  readonly digestTags: Map<string, Digest>;
  /** The OCI referrers of each subject its tags reach, as the referrers API lists them. */
  readonly referrers: Map<Digest, Descriptor[]>;
}

/**
 * The repositories of a store, rebuilt whenever the store's journal moves (every tag change is
 * journalled), so a sync running in another process shows up without a restart.
 */
export class OciRepositories {
  private seq = -1;
  private repos = new Map<string, Map<string, TagRow>>();
  private reach = new Map<string, Promise<Reach>>();

  constructor(private readonly store: Store) {}

  private refresh(): void {
    const seq = this.store.journal.currentSeq();
    if (seq === this.seq) return;
    const grouped = new Map<string, TagRow[]>();
    for (const t of this.store.tags.list()) {
      const list = grouped.get(`${t.target}\0${t.tag}`) ?? [];
      list.push(t);
      grouped.set(`${t.target}\0${t.tag}`, list);
    }
    const repos = new Map<string, Map<string, TagRow>>();
    for (const rows of grouped.values()) {
      // Two sources carried to one target with one tag name: the latest change wins, as a push would.
      const t = latestRow(rows)!;
      const tags = repos.get(t.target) ?? new Map<string, TagRow>();
      tags.set(t.tag, t);
      repos.set(t.target, tags);
    }
    this.repos = repos;
    this.reach = new Map();
    this.seq = seq;
  }

  /** Repository names, sorted. */
  names(): string[] {
    this.refresh();
    return [...this.repos.keys()].sort();
  }

  /** The tags of a repository, or undefined when there is no such repository. */
  tags(name: string): Map<string, TagRow> | undefined {
    this.refresh();
    return this.repos.get(name);
  }

  /** The manifests and blobs a repository's tags select, each tag's closure read from the store. */
  reachable(name: string): Promise<Reach> {
    this.refresh();
    const cached = this.reach.get(name);
    if (cached) return cached;
    const p = this.walk(this.repos.get(name)?.values() ?? []);
    // A failed walk (the store gone away) is not cached: the next request tries again.
    p.catch(() => this.reach.delete(name));
    this.reach.set(name, p);
    return p;
  }

  private async walk(tags: Iterable<TagRow>): Promise<Reach> {
    const r: Reach = { manifests: new Set(), blobs: new Set(), filtered: new Map(), tagDigest: new Map(), digestTags: new Map(), referrers: new Map() };
    const read = storeReader(this.store);
    const source = new StoreSource(this.store);
    for (const t of tags) {
      let c;
      try {
        c = await closure({ digest: t.digest, mediaType: t.mediaType, size: 0 }, read, { platforms: t.platforms, attachments: ALL_ATTACHMENTS }, (d) => source.attachments(d));
      } catch {
        // A damaged stored manifest (fsck names it): its tag serves what it names, nothing below.
        r.manifests.add(t.digest);
        r.tagDigest.set(t.tag, t.digest);
        continue;
      }
      // A manifest the store lacks (left out, or a hole fsck reports) is simply not served.
      for (const m of c.manifests) r.manifests.add(m.digest);
      for (const d of [...c.blobs, ...c.foreign]) r.blobs.add(d.digest);
      if (c.filtered) {
        r.filtered.set(c.filtered.digest, c.filtered);
        r.manifests.add(c.filtered.digest);
      }
      r.tagDigest.set(t.tag, c.filtered?.digest ?? t.digest);
      for (const a of c.attachments) {
        const m = c.manifests.find((x) => x.digest === a.descriptor.digest);
        if (!m) continue;
        if (a.tag !== undefined) {
          r.digestTags.set(a.tag, m.digest);
          continue;
        }
        const list = r.referrers.get(a.subject) ?? [];
        if (!list.some((d) => d.digest === m.digest)) list.push(referrerDescriptor(m.bytes, m.digest, m.mediaType));
        r.referrers.set(a.subject, list);
      }
    }
    return r;
  }
}

/** A parsed /v2 route. */
type OciRoute =
  | { readonly kind: 'base' }
  | { readonly kind: 'catalog' }
  | { readonly kind: 'tags'; readonly name: string }
  | { readonly kind: 'referrers'; readonly name: string; readonly digest: string }
  | { readonly kind: 'manifest' | 'blob'; readonly name: string; readonly ref: string };

/** Parses a /v2 path; repository names may hold slashes, so the route is read from the right. */
export function parseOciPath(rawPath: string): OciRoute | undefined {
  if (rawPath === '/v2' || rawPath === '/v2/') return { kind: 'base' };
  if (rawPath === '/v2/_catalog') return { kind: 'catalog' };
  let m = /^\/v2\/(.+)\/tags\/list$/.exec(rawPath);
  if (m) return { kind: 'tags', name: m[1] ?? '' };
  m = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(rawPath);
  if (m) {
    try {
      return { kind: 'referrers', name: m[1] ?? '', digest: decodeURIComponent(m[2] ?? '') };
    } catch {
      return undefined;
    }
  }
  m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(rawPath);
  if (!m) return undefined;
  let ref: string;
  try {
    ref = decodeURIComponent(m[3] ?? '');
  } catch {
    return undefined;
  }
  return { kind: m[2] === 'manifests' ? 'manifest' : 'blob', name: m[1] ?? '', ref };
}

/** Pages a sorted list by `n` and `last`; `next` is the last item sent when more remain. */
function paginate(ctx: ServeContext, items: readonly string[]): { page: string[]; n?: number; next?: string } | undefined {
  const nText = ctx.query.get('n');
  const last = ctx.query.get('last');
  let rest = last === null ? [...items] : items.filter((t) => t > last);
  if (nText === null || nText === '') return { page: rest };
  if (!/^\d+$/.test(nText)) {
    sendDistributionError(ctx, 400, 'PAGINATION_NUMBER_INVALID', 'invalid number of results requested', { n: nText });
    return undefined;
  }
  const n = Number(nText);
  const more = rest.length > n;
  rest = rest.slice(0, n);
  return more && n > 0 ? { page: rest, n, next: rest[rest.length - 1] } : { page: rest };
}

function nextLink(path: string, n: number, last: string): Record<string, string> {
  return { Link: `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"` };
}

/** Serves one /v2 request from the store. */
export async function serveOci(ctx: ServeContext, content: StoreContent, repos: OciRepositories): Promise<void> {
  const route = parseOciPath(ctx.rawPath);
  if (!route) return sendDistributionError(ctx, 404, 'NAME_UNKNOWN', 'no such route in the registry API', { path: ctx.rawPath });
  if (route.kind === 'base') return sendJson(ctx, 200, {}, { ...API_VERSION_HEADER });
  if (route.kind === 'catalog') {
    const p = paginate(ctx, repos.names());
    if (!p) return;
    const link = p.next !== undefined && p.n !== undefined ? nextLink('/v2/_catalog', p.n, p.next) : {};
    return sendJson(ctx, 200, { repositories: p.page }, { ...API_VERSION_HEADER, ...link });
  }
  const { name } = route;
  if (!isValidRepository(name)) return sendDistributionError(ctx, 400, 'NAME_INVALID', 'invalid repository name', { name });
  const tags = repos.tags(name);
  if (!tags) return sendDistributionError(ctx, 404, 'NAME_UNKNOWN', 'repository name not known to registry', { name });

  if (route.kind === 'tags') {
    const reach = await repos.reachable(name);
    const p = paginate(ctx, [...new Set([...tags.keys(), ...reach.digestTags.keys()])].sort());
    if (!p) return;
    const link = p.next !== undefined && p.n !== undefined ? nextLink(`/v2/${name}/tags/list`, p.n, p.next) : {};
    return sendJson(ctx, 200, { name, tags: p.page }, { ...API_VERSION_HEADER, ...link });
  }

  if (route.kind === 'referrers') {
    // distribution-spec: 200 with an image index whatever the digest (none known: an empty list);
    // `artifactType` filters, and the answer says it did in OCI-Filters-Applied.
    if (!isDigest(route.digest)) return sendDistributionError(ctx, 400, 'DIGEST_INVALID', 'invalid digest', { digest: route.digest });
    const reach = await repos.reachable(name);
    const want = ctx.query.get('artifactType');
    const all = [...(reach.referrers.get(route.digest) ?? [])].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
    const manifests = want === null ? all : all.filter((d) => d.artifactType === want);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
    return sendResource(ctx, bufferResource(body, MediaType.OciIndex, { headers: { ...API_VERSION_HEADER, ...(want === null ? {} : { 'OCI-Filters-Applied': 'artifactType' }) } }));
  }

  if (route.kind === 'manifest') {
    let digest: Digest;
    const reach = await repos.reachable(name);
    if (route.ref.includes(':')) {
      if (!isDigest(route.ref)) return sendDistributionError(ctx, 400, 'DIGEST_INVALID', 'invalid digest', { digest: route.ref });
      digest = route.ref;
      if (!reach.manifests.has(digest)) return manifestUnknown(ctx, name, route.ref);
    } else {
      const d = tags.has(route.ref) ? reach.tagDigest.get(route.ref) : reach.digestTags.get(route.ref);
      if (!d) return manifestUnknown(ctx, name, route.ref);
      digest = d;
    }
    const extra = { headers: { ...API_VERSION_HEADER, 'Docker-Content-Digest': digest }, etag: `"${digest}"` };
    const f = reach.filtered.get(digest);
    if (f) return sendResource(ctx, bufferResource(f.bytes, f.mediaType, extra));
    const m = content.getManifest(digest);
    const r = m && storeBlobResource(content, digest, m.mediaType, extra);
    if (!r) return manifestUnknown(ctx, name, route.ref);
    return sendResource(ctx, r);
  }

  if (!isDigest(route.ref)) return sendDistributionError(ctx, 400, 'DIGEST_INVALID', 'invalid digest', { digest: route.ref });
  const digest = route.ref;
  const reach = await repos.reachable(name);
  const f = reach.filtered.get(digest);
  if (f) return sendResource(ctx, bufferResource(f.bytes, 'application/octet-stream', { headers: { ...API_VERSION_HEADER, 'Docker-Content-Digest': digest }, etag: `"${digest}"` }));
  const r =
    reach.blobs.has(digest) || reach.manifests.has(digest)
      ? storeBlobResource(content, digest, 'application/octet-stream', { headers: { ...API_VERSION_HEADER, 'Docker-Content-Digest': digest }, etag: `"${digest}"` })
      : undefined;
  if (!r) return sendDistributionError(ctx, 404, 'BLOB_UNKNOWN', 'blob unknown to registry', { name, digest });
  return sendResource(ctx, r);
}

function manifestUnknown(ctx: ServeContext, name: string, reference: string): void {
  sendDistributionError(ctx, 404, 'MANIFEST_UNKNOWN', 'manifest unknown', { name, reference });
}
