/**
 * Pruning across the gap at an intranet registry: the tags a bundle removes (`pruned` in
 * ferry-bundle.json) are deleted where Ferry itself placed them, as the ledger records, and
 * nowhere else. The tag is deleted where the registry allows it; otherwise (CNCF distribution
 * deletes no tags) the manifest it names, but only when no other tag of the repository names
 * that manifest, since deleting a manifest drops every tag on it.
 */
import type { BundlePrunedTag } from '../bundle/index.js';
import { FerryError } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { Ledger } from '../store/index.js';
import type { PlanLine, PruneReport } from './import-target.js';

/** Tags of a repository read to be sure no other tag names a manifest about to be deleted. */
export const MAX_PRUNE_TAG_SCAN = 10_000;

/** What pruning at one registry needs. */
export interface RegistryPruneInput {
  readonly client: RegistryClient;
  readonly ledger: Ledger;
  /** The ledger's name of the target. */
  readonly target: string;
  /** The intranet repository of a bundle target path (with the import's prefix). */
  readonly repo: (target: string) => string;
  readonly pruned: readonly BundlePrunedTag[];
  readonly signal?: AbortSignal;
}

/** The dry run's lines: the tags Ferry placed that an import would delete. */
export function planPrune(target: string, ledger: Ledger | undefined, repo: (t: string) => string, pruned: readonly BundlePrunedTag[]): PlanLine[] {
  const out: PlanLine[] = [];
  for (const p of pruned) {
    const r = repo(p.target);
    const item = ledger?.getItem(target, 'tag', r, p.tag);
    if (item?.state !== 'done') {
      out.push({ target, action: 'skip', what: `${r}:${p.tag} removed upstream, but not placed by Ferry here: left alone`, size: 0 });
      continue;
    }
    out.push({ target, action: 'delete-tag', what: `${r}:${p.tag} (${item.digest ?? p.digest}): removed upstream`, size: 0 });
  }
  return out;
}

/** Deletes the removed tags Ferry placed; returns what happened to each tag the ledger knows. */
export async function pruneAtRegistry(input: RegistryPruneInput): Promise<PruneReport[]> {
  const { client, ledger, target } = input;
  const sig = input.signal ? { signal: input.signal } : {};
  const out: PruneReport[] = [];
  // Tags this bundle removes that Ferry placed: no reason to keep a manifest for one another.
  const removing = new Set(
    input.pruned.filter((p) => ledger.getItem(target, 'tag', input.repo(p.target), p.tag)?.state === 'done').map((p) => `${input.repo(p.target)}:${p.tag}`),
  );
  for (const p of input.pruned) {
    const repo = input.repo(p.target);
    const item = ledger.getItem(target, 'tag', repo, p.tag);
    // Only tags Ferry placed: anything else at the target is someone else's.
    if (item?.state !== 'done' || item.digest === null) continue;
    const placed = item.digest as Digest;
    const report = (action: PruneReport['action'], detail?: string): void => {
      out.push({ repository: repo, tag: p.tag, digest: placed, action, ...(detail !== undefined ? { detail } : {}) });
    };
    const now = await client.manifestHead(repo, p.tag, sig);
    if (now === undefined) {
      ledger.forgetItem(target, 'tag', repo, p.tag);
      report('gone');
      continue;
    }
    if (now.digest !== placed) {
      report('kept', `it names ${now.digest}, not the ${placed} Ferry placed: someone else moved it`);
      continue;
    }
    const byTag = await client.manifestDelete(repo, p.tag, sig);
    if (byTag === 'deleted' || byTag === 'not-found') {
      ledger.forgetItem(target, 'tag', repo, p.tag);
      report(byTag === 'deleted' ? 'tag' : 'gone');
      continue;
    }
    // The registry deletes no tags: the manifest then, unless another tag still names it.
    const others = ledger.tagsAt(target, repo, placed).filter((t) => t !== p.tag && !removing.has(`${repo}:${t}`));
    if (others.length > 0) {
      report('kept', `the registry deletes no tags, and Ferry's tag${others.length > 1 ? 's' : ''} ${others.join(', ')} also name${others.length > 1 ? '' : 's'} ${placed}`);
      continue;
    }
    const foreign = await otherTagsNaming(client, repo, placed, p.tag, removing, sig);
    if (foreign.length > 0) {
      report('kept', `the registry deletes no tags, and ${foreign.join(', ')} (not Ferry's) also name${foreign.length > 1 ? '' : 's'} ${placed}`);
      continue;
    }
    const byDigest = await client.manifestDelete(repo, placed, sig);
    if (byDigest === 'unsupported') {
      report('kept', 'the registry deletes neither tags nor manifests (for CNCF distribution: storage.delete.enabled)');
      continue;
    }
    ledger.forgetItem(target, 'tag', repo, p.tag);
    // The manifest is no longer there: a later bundle naming it must push it again.
    ledger.forgetItem(target, 'manifest', repo, placed);
    report(byDigest === 'deleted' ? 'manifest' : 'gone');
  }
  return out;
}

/** Other tags of `repo` (apart from those being removed) that name `digest`, read from the registry. */
async function otherTagsNaming(
  client: RegistryClient,
  repo: string,
  digest: Digest,
  tag: string,
  removing: ReadonlySet<string>,
  sig: { signal?: AbortSignal },
): Promise<string[]> {
  const tags = await client.tagList(repo, sig);
  if (tags.length > MAX_PRUNE_TAG_SCAN) {
    throw new FerryError('TAG_LIST_LIMIT', `prune ${client.host}/${repo}:${tag}: the repository has ${tags.length} tags, more than the ${MAX_PRUNE_TAG_SCAN} read to be sure no other tag names ${digest}; run with --no-prune`, {
      registry: client.host,
      repository: repo,
    });
  }
  const out: string[] = [];
  for (const t of tags) {
    if (t === tag || removing.has(`${repo}:${t}`)) continue;
    const d = await client.manifestHead(repo, t, sig);
    if (d?.digest === digest) out.push(t);
  }
  return out;
}
