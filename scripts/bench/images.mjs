// Benchmark helper: builds the image workload straight into a registry over HTTP. Layers are
// uncompressed tars (application/vnd.oci.image.layer.v1.tar) holding one file of AES-CTR
// keystream, generated and hashed while they stream: nothing is held whole, nothing is gzipped.
import { createCipheriv, createHash } from 'node:crypto';
import { mapLimit, pushBlob, putManifest } from './registry.mjs';

/** Media types the workload uses. */
export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
};

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;
const ZEROS = Buffer.alloc(CHUNK);

/** A 512-byte ustar header for a regular file. */
function tarHeader(name, size) {
  const h = Buffer.alloc(512);
  const field = (value, offset, length) => h.write(value, offset, length, 'ascii');
  const octal = (n, offset, length) => field(n.toString(8).padStart(length - 1, '0') + '\0', offset, length);
  field(name, 0, 100);
  octal(0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(0, 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  field(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** Reproducible pseudo-random bytes: the AES-256-CTR keystream under a key derived from `seed`. */
export async function* keystream(seed, size) {
  const key = createHash('sha256').update(`ferry-bench:${seed}`).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  let left = size;
  while (left > 0) {
    const n = Math.min(left, CHUNK);
    yield c.update(n === CHUNK ? ZEROS : ZEROS.subarray(0, n));
    left -= n;
  }
}

/** A tar layer with one file of `size` keystream bytes, as a stream factory. */
export function tarLayer(seed, size) {
  return async function* () {
    yield tarHeader(`data/${seed}.bin`, size);
    yield* keystream(seed, size);
    const pad = (512 - (size % 512)) % 512;
    // Padding to a block, then the two zero blocks that end an archive.
    yield Buffer.alloc(pad + 1024);
  };
}

/** The byte size of tarLayer(seed, size). */
export function tarLayerSize(size) {
  return 512 + size + ((512 - (size % 512)) % 512) + 1024;
}

/** An image config naming `layers` as its diff IDs (uncompressed layers), labelled `label`. */
export function configBlob(layers, label) {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Labels: { 'bench.image': label } },
      // Uncompressed layers: the diff ID is the layer digest.
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'ferry bench' })),
    }),
  );
}

/** The bytes of an OCI image manifest over `config` and `layers`. */
export function manifestBytes(config, layers, annotations) {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: MT.config, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: MT.layerTar, digest: l.digest, size: l.size })),
      ...(annotations ? { annotations } : {}),
    }),
  );
}

/** The sha256 digest of `b`. */
export function sha256(b) {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/**
 * Pushes the main workload to `repo`: `tags` images sharing `baseMB` layers, each with one unique
 * layer of `uniqueMB`, plus for each size in `bigMB` a tag (`big`, `big2`, ...) = first base layer
 * + one layer of that size.
 * Returns { tags, blobs, bytes } where bytes counts every distinct blob once.
 */
export async function pushImageWorkload(reg, repo, { baseMB, uniqueMB, tags, bigMB }) {
  const blobs = new Map();
  const layer = async (seed, mb) => {
    const size = Math.round(mb * MiB);
    const r = await pushBlob(reg, repo, tarLayer(seed, size));
    const l = { digest: r.digest, size: tarLayerSize(size) };
    if (r.size !== l.size) throw new Error(`layer ${seed}: pushed ${r.size} bytes, expected ${l.size}`);
    blobs.set(l.digest, l.size);
    return l;
  };
  const image = async (tag, layers) => {
    const cfg = configBlob(layers, tag);
    const c = await pushBlob(reg, repo, cfg);
    blobs.set(c.digest, cfg.length);
    const m = manifestBytes({ digest: c.digest, size: cfg.length }, layers);
    await putManifest(reg, repo, tag, m, MT.manifest);
    blobs.set(sha256(m), m.length);
  };
  const base = [];
  for (let i = 0; i < baseMB.length; i++) base.push(await layer(`base-${i}`, baseMB[i]));
  const names = Array.from({ length: tags }, (_, i) => `v1.${i}`);
  // Two uploads at a time: the registry hashes and writes while we generate the next.
  await mapLimit(names, 2, async (tag) => image(tag, [...base, await layer(`unique-${tag}`, uniqueMB)]));
  // One tag per large layer (`bigMB` may be a list): the first shares a base layer with the rest.
  const bigs = Array.isArray(bigMB) ? bigMB : [bigMB];
  const bigTags = [];
  for (let i = 0; i < bigs.length; i++) {
    const tag = i === 0 ? 'big' : `big${i + 1}`;
    await image(tag, [base[0], await layer(tag, bigs[i])]);
    bigTags.push(tag);
  }
  let bytes = 0;
  for (const s of blobs.values()) bytes += s;
  return { tags: [...names, ...bigTags], blobs: blobs.size, bytes };
}

/**
 * Pushes `count` tags to `repo`, each naming its own small manifest (one shared config and one
 * shared 4 KiB layer; an annotation makes every manifest distinct).
 */
export async function pushManyTags(reg, repo, count) {
  const l = await pushBlob(reg, repo, tarLayer('many-layer', 4096));
  const layers = [{ digest: l.digest, size: tarLayerSize(4096) }];
  const cfg = configBlob(layers, 'many');
  const c = await pushBlob(reg, repo, cfg);
  const tags = Array.from({ length: count }, (_, i) => `t${String(i).padStart(4, '0')}`);
  await mapLimit(tags, 16, (tag) =>
    putManifest(reg, repo, tag, manifestBytes({ digest: c.digest, size: cfg.length }, layers, { 'bench.tag': tag }), MT.manifest),
  );
  return { tags };
}
