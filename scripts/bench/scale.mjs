// Benchmark steps for scale: one repository with N tags spread over a few distinct small images
// (N = 500, 5,000, 50,000 at full scale), and the same tags with 2,000 Go module versions in one
// configuration. Each is measured as a cost curve (time and peak RSS of cold sync, no-change
// sync, export, verify and import) against a minimal keep-alive HEAD loop over the same tags: the
// loopback limit of the no-change check.
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { buildGoProxyTree, serveStatic } from './goproxy.mjs';
import { configBlob, manifestBytes, MT, sha256, tarLayer, tarLayerSize } from './images.mjs';
import { measure } from './proc.mjs';
import { mapLimit, pushBlob, putManifest, startRegistry } from './registry.mjs';

/** Tag counts of the scale steps and the Go tree of the combined step, by BENCH_SCALE. */
export const SCALE_SIZES = {
  small: { tags: [100, 500, 2000], goModules: 50, goVersions: 4 },
  full: { tags: [500, 5000, 50000], goModules: 500, goVersions: 4 },
};

/** Distinct images the tags of a scale repository name. */
export const DISTINCT_IMAGES = 50;

/** The Accept header of a manifest HEAD: what Ferry asks for too. */
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** The name of tag i of a scale repository. */
export function scaleTag(i) {
  return `t${String(i).padStart(5, '0')}`;
}

/**
 * Builds a repository of `count` tags over `distinct` small images: the images are pushed over
 * HTTP (by digest: no tag of their own), then each tag is linked to one of them straight in the
 * registry's filesystem storage (distribution's layout: `_manifests/tags/<tag>/current/link` and
 * `_manifests/tags/<tag>/index/sha256/<hex>/link`; the revision link exists from the push).
 * Pushing 50,000 manifests over HTTP takes minutes; writing the links takes seconds. The
 * reference HEAD loop then checks every tag answers with its digest. Returns { tags, digests,
 * expected(tag) }.
 */
export async function buildScaleRepo(reg, repo, count, distinct = DISTINCT_IMAGES) {
  const digests = await mapLimit(
    Array.from({ length: distinct }, (_, k) => k),
    8,
    async (k) => {
      const l = await pushBlob(reg, repo, tarLayer(`scale-${k}`, 4096));
      const layers = [{ digest: l.digest, size: tarLayerSize(4096) }];
      const cfg = configBlob(layers, `scale-${k}`);
      const c = await pushBlob(reg, repo, cfg);
      const m = manifestBytes({ digest: c.digest, size: cfg.length }, layers);
      const d = sha256(m);
      await putManifest(reg, repo, d, m, MT.manifest);
      return d;
    },
  );
  const root = join(reg.dataDir, 'docker', 'registry', 'v2', 'repositories', repo, '_manifests', 'tags');
  const tags = [];
  // Synchronous writes in one loop: no thread-pool round trip per file (about 5 µs per call here).
  for (let i = 0; i < count; i++) {
    const tag = scaleTag(i);
    const d = digests[i % distinct];
    const dir = join(root, tag);
    mkdirSync(join(dir, 'current'), { recursive: true });
    mkdirSync(join(dir, 'index', 'sha256', d.slice('sha256:'.length)), { recursive: true });
    writeFileSync(join(dir, 'current', 'link'), d);
    writeFileSync(join(dir, 'index', 'sha256', d.slice('sha256:'.length), 'link'), d);
    tags.push(tag);
  }
  return { tags, digests, expected: (tag) => digests[Number(tag.slice(1)) % distinct] };
}

/**
 * The reference: the repository's tag list (every page), then one HEAD per tag over
 * `connections` keep-alive connections (an undici Pool, as Ferry's client uses undici), each
 * answer checked against `expected(tag)`. Resolves { ms, tags }.
 */
export async function headLoop(reg, repo, connections, expected) {
  const pool = new Pool(reg.url, { connections, pipelining: 1 });
  try {
    const t0 = performance.now();
    const tags = [];
    let path = `/v2/${repo}/tags/list`;
    while (path) {
      const r = await pool.request({ method: 'GET', path });
      const body = await r.body.json();
      if (r.statusCode !== 200) throw new Error(`HEAD loop: tag list ${path}: HTTP ${r.statusCode}`);
      for (const t of body.tags ?? []) tags.push(t);
      const link = /<([^>]+)>;\s*rel="next"/.exec(String(r.headers.link ?? ''));
      path = link ? new URL(link[1], reg.url).pathname + new URL(link[1], reg.url).search : undefined;
    }
    let next = 0;
    const worker = async () => {
      while (next < tags.length) {
        const tag = tags[next++];
        const r = await pool.request({ method: 'HEAD', path: `/v2/${repo}/manifests/${tag}`, headers: { accept: ACCEPT } });
        await r.body.dump();
        const digest = r.headers['docker-content-digest'];
        if (r.statusCode !== 200 || (expected && digest !== expected(tag))) {
          throw new Error(`HEAD loop: ${repo}:${tag}: HTTP ${r.statusCode}, digest ${digest}, expected ${expected?.(tag)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: connections }, worker));
    return { ms: performance.now() - t0, tags: tags.length };
  } finally {
    await pool.close();
  }
}

async function filesUnder(dir) {
  let bytes = 0;
  let files = 0;
  const walk = async (d) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        files++;
        bytes += (await stat(p)).size;
      }
    }
  };
  await walk(dir);
  return { files, bytes };
}

/**
 * The scale steps. `b` is the bench's toolkit: { step, ferry, say, row, parseJson, secs, rss,
 * cpu, ratio, dir, log, up, registries, scale: { tags: number[], combinedTags, goModules,
 * goVersions, goRoots, concurrency } }.
 */
export async function benchScale(b) {
  const { step, ferry, say, row, parseJson, secs, rss, cpu, ratio, dir, up } = b;
  const conns = b.scale.concurrency;
  const fmt = (n) => n.toLocaleString('en');
  const repos = new Map();
  const headRef = new Map();
  let keyPrefix;

  // The HEAD loop checks every tag's digest: its first run after a build is the build's check.
  const checkedLoop = async (r, n) => {
    const h = await headLoop(up, r.repo, conns, r.expected);
    if (h.tags !== n) throw new Error(`${r.repo}: the registry lists ${h.tags} tags, expected ${n}`);
    if (!r.checked) say(`   ${up.host}/${r.repo}: every tag listed and answered its digest`);
    r.checked = true;
    return h;
  };
  const repoOf = async (n) => {
    if (repos.has(n)) return repos.get(n);
    const repo = `bench/scale-${n}`;
    const t0 = performance.now();
    const built = await buildScaleRepo(up, repo, n);
    const ms = performance.now() - t0;
    say(`   ${up.host}/${repo}: ${fmt(n)} tags over ${DISTINCT_IMAGES} images built in ${secs(ms)}`);
    row(`scale: build the ${fmt(n)}-tag workload`, secs(ms), '', '', n >= 50_000 ? '< 60 s' : '', n >= 50_000 ? ms < 60_000 : undefined);
    const r = { repo, checked: false, ...built };
    repos.set(n, r);
    return r;
  };
  const reference = async (n) => {
    const r = await repoOf(n);
    // Twice, the faster counts: the reference at its best.
    const a = await checkedLoop(r, n);
    const c = await checkedLoop(r, n);
    const ms = Math.min(a.ms, c.ms);
    headRef.set(n, ms);
    say(`   HEAD loop (${conns} keep-alive connections, tag list + ${fmt(n)} HEADs): ${secs(a.ms)}, ${secs(c.ms)}`);
    return ms;
  };
  const keys = async () => {
    if (keyPrefix) return keyPrefix;
    keyPrefix = join(dir, 'keys-scale', 'bench');
    await mkdir(join(dir, 'keys-scale'), { recursive: true });
    await ferry(['keygen', '--out', keyPrefix]);
    return keyPrefix;
  };
  const cfgFile = async (name, n, extra = '') => {
    const file = join(dir, `ferry-${name}.yaml`);
    const r = await repoOf(n);
    if (!r.checked) await checkedLoop(r, n);
    await writeFile(file, `version: 1\nstore: ./store-${name}\nconcurrency: ${conns}\nlog:\n  level: warn\n${b.registries}images:\n  - name: scale\n    source: ${up.host}/${r.repo}\n${extra}`);
    return file;
  };
  const sync = async (cfg, what) => {
    const f = await ferry(['sync', '-c', cfg, '--json']);
    const s = parseJson(f.stdout, `ferry sync (${what})`);
    if (!s.ok) throw new Error(`ferry sync (${what}) failed: ${JSON.stringify(s.failures).slice(0, 1000)}`);
    return { f, s };
  };
  const exportFull = async (cfg, name) => {
    const out = join(dir, `bundle-${name}`);
    const f = await ferry(['export', '-c', cfg, '--full', '--out', out, '--key', `${await keys()}.key`, '--json']);
    const r = parseJson(f.stdout, 'ferry export');
    const files = (r.files ?? []).map((p) => resolve(out, p));
    const bundle = files.find((p) => p.endsWith('.tar'));
    if (!bundle) throw new Error(`ferry export wrote no .tar: ${JSON.stringify(r.files)}`);
    return { f, out, bundle, bytes: (await stat(bundle)).size };
  };
  const importInto = async (bundle, name, extraArgs = []) => {
    const target = await startRegistry(join(dir, `reg-${name}`));
    try {
      const f = await ferry(['import', bundle, '--trust', `${await keys()}.pub`, '--registry', target.host, '--plain-http', '--ledger', join(dir, `ledger-${name}.db`), '--json', ...extraArgs]);
      return { f, target };
    } finally {
      await target.stop();
    }
  };
  const perTag = (ms, n) => `${((ms * 1000) / n).toFixed(0)} µs/tag`;

  for (const n of b.scale.tags) {
    const at5k = n === b.scale.targetTags;
    const big = n === Math.max(...b.scale.tags);
    await step(`scale ${fmt(n)} tags: sync, export, import vs HEAD loop`, async () => {
      const ref = await reference(n);
      const cfg = await cfgFile(`scale-${n}`, n);
      const cold = await sync(cfg, 'cold');
      if (cold.s.tags.checked !== n || cold.s.tags.changed !== n) throw new Error(`cold sync: ${JSON.stringify(cold.s.tags)}`);
      say(`   cold sync: ${secs(cold.f.ms)}, ${cold.s.manifestsFetched} manifest GETs, peak RSS ${rss(cold.f)}${cpu(cold.f)}`);
      const warm = await sync(cfg, 'no change');
      if (warm.s.tags.changed !== 0 || warm.s.blobs.fetched !== 0) throw new Error(`no-change sync was not a no-op: ${JSON.stringify({ tags: warm.s.tags, blobs: warm.s.blobs })}`);
      say(`   no-change sync: ${secs(warm.f.ms)}, ${warm.s.manifestsFetched} manifest GETs, peak RSS ${rss(warm.f)}${cpu(warm.f)}`);
      const rc = cold.f.ms / ref;
      const rw = warm.f.ms / ref;
      const memTarget = at5k || big ? '≤ 150 MB' : '';
      const memPass = (f) => (memTarget && f.maxRssMB !== undefined ? f.maxRssMB <= 150 : undefined);
      row(
        `scale ${fmt(n)} tags: cold sync (${cold.s.manifestsFetched} manifest GETs)`,
        `${secs(cold.f.ms)}, ${rss(cold.f)}`,
        `HEAD loop ${secs(ref)}`,
        ratio(rc),
        at5k ? '≤ 2.00×' : '',
        at5k ? rc <= 2 : undefined,
      );
      row(`scale ${fmt(n)} tags: peak RSS, cold sync`, rss(cold.f), '', '', memTarget, memPass(cold.f));
      row(`scale ${fmt(n)} tags: no-change sync`, `${secs(warm.f.ms)} (${perTag(warm.f.ms, n)}), ${rss(warm.f)}`, `HEAD loop ${secs(ref)} (${perTag(ref, n)})`, ratio(rw), at5k ? '≤ 1.00×' : '', at5k ? rw <= 1 : undefined);
      row(`scale ${fmt(n)} tags: peak RSS, no-change sync`, rss(warm.f), '', '', memTarget, memPass(warm.f));
      const ex = await exportFull(cfg, `scale-${n}`);
      say(`   export --full: ${secs(ex.f.ms)}, ${(ex.bytes / 1e6).toFixed(1)} MB, peak RSS ${rss(ex.f)}${cpu(ex.f)}`);
      row(`scale ${fmt(n)} tags: export --full`, `${secs(ex.f.ms)}, ${rss(ex.f)}`, '', '', memTarget, memPass(ex.f));
      // ferry verify of the bundle just written: index.json, the plan and every closure checked.
      const v = await ferry(['verify', ex.bundle, '--trust', `${await keys()}.pub`, '--json']);
      const vr = parseJson(v.stdout, 'ferry verify');
      if (!vr.ok) throw new Error(`ferry verify: ${JSON.stringify(vr).slice(0, 1000)}`);
      say(`   verify: ${secs(v.ms)}, peak RSS ${rss(v)}${cpu(v)}`);
      row(`scale ${fmt(n)} tags: verify`, `${secs(v.ms)}, ${rss(v)}`, '', '', memTarget, memPass(v));
      const im = await importInto(ex.bundle, `scale-${n}`);
      const ri = im.f.ms / ref;
      say(`   import into an empty registry: ${secs(im.f.ms)}, peak RSS ${rss(im.f)}${cpu(im.f)}`);
      row(`scale ${fmt(n)} tags: import into an empty registry`, `${secs(im.f.ms)}, ${rss(im.f)}`, `HEAD loop ${secs(ref)}`, ratio(ri), at5k ? '≤ 2.50×' : '', at5k ? ri <= 2.5 : undefined);
      row(`scale ${fmt(n)} tags: peak RSS, import`, rss(im.f), '', '', memTarget, memPass(im.f));
      if (at5k) {
        // import.sh from the bundle directory, as an operator without Ferry runs it.
        const target = await startRegistry(join(dir, `reg-scale-${n}-sh`));
        try {
          const script = join(ex.out, 'import.sh');
          const t = await measure('sh', [script, '--trust', `${await keys()}.pub`, '--registry', target.host, '--plain-http', ex.bundle], { log: b.log, cwd: ex.out });
          say(`   import.sh: ${secs(t.ms)}${cpu(t)}`);
          const r = t.ms / ref;
          row(`scale ${fmt(n)} tags: import.sh into an empty registry`, secs(t.ms), `HEAD loop ${secs(ref)}`, ratio(r), '≤ 60 s', t.ms <= 60_000);
          // What import.sh pushed answers like upstream.
          await headLoop(target, repos.get(n).repo, conns, repos.get(n).expected).catch((err) => {
            throw new Error(`after import.sh: ${err.message}`);
          });
        } finally {
          await target.stop();
        }
      }
    });
  }

  const ct = b.scale.combinedTags;
  const go = b.scale.go;
  await step(`scale ${fmt(ct)} tags + ${fmt(go.modules * go.versions)} module versions: peak RSS of sync, export, import`, async () => {
    const treeDir = join(dir, 'goproxy-scale');
    const t0 = performance.now();
    const tree = await buildGoProxyTree(treeDir, go);
    const proxy = await serveStatic(treeDir);
    try {
      say(`   Go tree: ${tree.all.length} module versions in ${secs(performance.now() - t0)}`);
      const byRoot = new Map();
      for (const m of tree.roots) byRoot.set(m.path, [...(byRoot.get(m.path) ?? []), m.version]);
      const mods = [...byRoot].map(([p, vs]) => `    - path: ${p}\n      versions: [${vs.join(', ')}]\n`).join('');
      const cfg = await cfgFile(`scale-combined`, ct, `goModules:\n  proxy: ${proxy.url}\n  sumdb: "off"\n  modules:\n${mods}`);
      const s = await sync(cfg, 'combined');
      if (s.s.tags.changed !== ct) throw new Error(`combined sync: ${JSON.stringify(s.s.tags)}`);
      const st = parseJson((await ferry(['status', '-c', cfg, '--json'], { wholeStdout: true })).stdout, 'ferry status');
      if (st.stats.moduleVersions !== tree.all.length) throw new Error(`combined sync stored ${st.stats.moduleVersions} module versions, expected ${tree.all.length}`);
      say(`   sync: ${secs(s.f.ms)}, peak RSS ${rss(s.f)}${cpu(s.f)}`);
      const what = `${fmt(ct)} tags + ${fmt(tree.all.length)} module versions`;
      const pass = (f) => (f.maxRssMB !== undefined ? f.maxRssMB <= 150 : undefined);
      row(`scale ${what}: peak RSS, cold sync`, `${rss(s.f)} (${secs(s.f.ms)})`, '', '', '≤ 150 MB', pass(s.f));
      const ex = await exportFull(cfg, 'scale-combined');
      say(`   export --full: ${secs(ex.f.ms)}, ${(ex.bytes / 1e6).toFixed(1)} MB, peak RSS ${rss(ex.f)}${cpu(ex.f)}`);
      row(`scale ${what}: peak RSS, export --full`, `${rss(ex.f)} (${secs(ex.f.ms)})`, '', '', '≤ 150 MB', pass(ex.f));
      const gomod = join(dir, 'gomod-scale-combined');
      const im = await importInto(ex.bundle, 'scale-combined', ['--gomod-dir', gomod]);
      const written = await filesUnder(gomod);
      say(`   import: ${secs(im.f.ms)}, ${written.files} module files written, peak RSS ${rss(im.f)}${cpu(im.f)}`);
      row(`scale ${what}: peak RSS, import (registry + module tree)`, `${rss(im.f)} (${secs(im.f.ms)})`, '', '', '≤ 150 MB', pass(im.f));
    } finally {
      await proxy.stop();
    }
  });
}
