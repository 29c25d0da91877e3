/**
 * Test helper: builds OCI image layouts on disk (gzip tar layers of chosen sizes, config,
 * manifests, an optional two-platform index) and pushes them with skopeo.
 *
 *   const b = await OciLayoutBuilder.create();
 *   const shared = await b.addLayer({ size: 64 * 1024, seed: 1 });
 *   const amd = await b.addImage({ layers: [shared, await b.addLayer({ size: 1000 })], platform: { os: 'linux', architecture: 'amd64' } });
 *   const arm = await b.addImage({ layers: [shared], platform: { os: 'linux', architecture: 'arm64' } });
 *   const idx = await b.addIndex([amd, arm]);
 *   await b.tag('v1', idx);
 *   await pushLayout(b.dir, 'v1', `${reg.host}/team/app:v1`);
 *
 * Or in one call: `await buildTestImage({ multiArch: true, layerSizes: [1000, 2000], seed: 7 })`.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

const execFileP = promisify(execFile);

/** OCI media types used by the builder. */
export const OCI = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** A content descriptor as written into manifests. */
export interface Desc {
  readonly mediaType: string;
  readonly digest: `sha256:${string}`;
  readonly size: number;
  readonly platform?: TestPlatform;
  readonly annotations?: Record<string, string>;
}

/** A platform for addImage. */
export interface TestPlatform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** A layer: its blob descriptor and the digest of its uncompressed tar (diff ID). */
export interface Layer extends Desc {
  readonly diffId: `sha256:${string}`;
}

/** An image manifest added to the layout. */
export interface Image extends Desc {
  readonly config: Desc;
  readonly layers: readonly Layer[];
  /** The exact manifest bytes. */
  readonly bytes: Buffer;
}

/** An index added to the layout. */
export interface Index extends Desc {
  readonly manifests: readonly Image[];
  readonly bytes: Buffer;
}

/** sha256 digest of bytes. */
export function digestOf(b: Buffer | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** `n` pseudo-random bytes: reproducible from `seed` (AES-CTR keystream), or truly random without one. */
export function randomData(n: number, seed?: number | string): Buffer {
  if (seed === undefined) return randomBytes(n);
  const key = createHash('sha256').update(`ferry-seed:${String(seed)}`).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

/** A tar holding one file of `size` random bytes (fixed metadata, so a seed makes it reproducible). */
async function makeTar(size: number, seed: number | string | undefined, name: string): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  pack.entry({ name, size, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, randomData(size, seed));
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Writes blobs, manifests and index.json of an OCI image layout in a directory. */
export class OciLayoutBuilder {
  private readonly refs: Desc[] = [];
  private layerCount = 0;

  private constructor(readonly dir: string) {}

  /** A builder over a new temp dir (or `dir`), with oci-layout written. */
  static async create(dir?: string): Promise<OciLayoutBuilder> {
    const d = dir ?? (await mkdtemp(join(tmpdir(), 'ferry-layout-')));
    await mkdir(join(d, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(d, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const b = new OciLayoutBuilder(d);
    await b.writeIndex();
    return b;
  }

  /** Writes a blob and returns its digest. */
  async addBlob(bytes: Buffer): Promise<`sha256:${string}`> {
    const d = digestOf(bytes);
    await writeFile(join(this.dir, 'blobs', 'sha256', d.slice(7)), bytes);
    return d;
  }

  /** A gzip tar layer holding one file of `size` random bytes (seeded: reproducible). */
  async addLayer(opts: { readonly size: number; readonly seed?: number | string } = { size: 1024 }): Promise<Layer> {
    const tarBytes = await makeTar(opts.size, opts.seed, `file-${opts.seed ?? this.layerCount}.bin`);
    this.layerCount++;
    const gz = gzipSync(tarBytes);
    const digest = await this.addBlob(gz);
    return { mediaType: OCI.layer, digest, size: gz.length, diffId: digestOf(tarBytes) };
  }

  /** A config and manifest over the given layers; `platform` defaults to linux/amd64. */
  async addImage(opts: {
    readonly layers: readonly Layer[];
    readonly platform?: TestPlatform;
    readonly labels?: Record<string, string>;
    /** Manifest annotations (upstream text a page must show escaped). */
    readonly annotations?: Record<string, string>;
  }): Promise<Image> {
    const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
    const config = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: '2024-01-01T00:00:00Z',
      config: { Labels: opts.labels ?? {} },
      rootfs: { type: 'layers', diff_ids: opts.layers.map((l) => l.diffId) },
      history: opts.layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'ferry test' })),
    };
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDesc: Desc = { mediaType: OCI.config, digest: await this.addBlob(configBytes), size: configBytes.length };
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config: configDesc,
      layers: opts.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = await this.addBlob(bytes);
    return { mediaType: OCI.manifest, digest, size: bytes.length, platform, config: configDesc, layers: opts.layers, bytes };
  }

  /** An image index over images (their platforms are copied into the descriptors). */
  async addIndex(images: readonly Image[]): Promise<Index> {
    const index = {
      schemaVersion: 2,
      mediaType: OCI.index,
      manifests: images.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, ...(m.platform ? { platform: m.platform } : {}) })),
    };
    const bytes = Buffer.from(JSON.stringify(index));
    const digest = await this.addBlob(bytes);
    return { mediaType: OCI.index, digest, size: bytes.length, manifests: images, bytes };
  }

  /** Names a manifest or index in index.json (`org.opencontainers.image.ref.name` = tag). */
  async tag(name: string, target: Desc): Promise<void> {
    const i = this.refs.findIndex((r) => r.annotations?.['org.opencontainers.image.ref.name'] === name);
    const ref: Desc = {
      mediaType: target.mediaType,
      digest: target.digest,
      size: target.size,
      annotations: { 'org.opencontainers.image.ref.name': name },
    };
    if (i >= 0) this.refs[i] = ref;
    else this.refs.push(ref);
    await this.writeIndex();
  }

  /** Reads a blob back. */
  readBlob(digest: string): Promise<Buffer> {
    return readFile(join(this.dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
  }

  /** The path of a blob file. */
  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  }

  /** Removes the layout directory. */
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  private async writeIndex(): Promise<void> {
    await writeFile(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests: this.refs }));
  }
}

/** What buildTestImage made. */
export interface TestImage {
  readonly layout: OciLayoutBuilder;
  readonly tag: string;
  /** The tagged manifest: the index when multiArch, else the single image. */
  readonly top: Image | Index;
  /** The image manifests (one, or amd64 + arm64). */
  readonly images: readonly Image[];
}

/**
 * One tagged image in a fresh layout: a single linux/amd64 image, or an index of linux/amd64 +
 * linux/arm64 images that share their first layer. `layerSizes` are the uncompressed payload sizes.
 */
export async function buildTestImage(opts: { readonly multiArch?: boolean; readonly layerSizes?: readonly number[]; readonly seed?: number | string; readonly tag?: string } = {}): Promise<TestImage> {
  const sizes = opts.layerSizes ?? [2048, 4096];
  const seed = opts.seed ?? randomBytes(6).toString('hex');
  const tagName = opts.tag ?? 'latest';
  const b = await OciLayoutBuilder.create();
  const shared: Layer[] = [];
  for (let i = 0; i < sizes.length; i++) shared.push(await b.addLayer({ size: sizes[i] as number, seed: `${seed}-${i}` }));
  const amd = await b.addImage({ layers: shared, platform: { os: 'linux', architecture: 'amd64' } });
  if (!opts.multiArch) {
    await b.tag(tagName, amd);
    return { layout: b, tag: tagName, top: amd, images: [amd] };
  }
  const armOnly = await b.addLayer({ size: 1024, seed: `${seed}-arm64` });
  const arm = await b.addImage({ layers: [...shared.slice(0, 1), armOnly], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  const idx = await b.addIndex([amd, arm]);
  await b.tag(tagName, idx);
  return { layout: b, tag: tagName, top: idx, images: [amd, arm] };
}

/** Options for skopeo calls. */
export interface SkopeoOptions {
  /** `user:password` for the registry. */
  readonly creds?: string;
  /** @default false (the test registries speak plain HTTP) */
  readonly tlsVerify?: boolean;
}

/**
 * Pushes `oci:DIR:TAG` to `docker://DEST` (e.g. 127.0.0.1:5000/team/app:v1) with
 * `skopeo copy --all --preserve-digests`, so the registry holds exactly the layout's bytes.
 */
export async function pushLayout(dir: string, tag: string, dest: string, opts: SkopeoOptions = {}): Promise<void> {
  const args = ['copy', '--all', '--preserve-digests', '--quiet', `--dest-tls-verify=${opts.tlsVerify ?? false}`];
  if (opts.creds) args.push('--dest-creds', opts.creds);
  args.push(`oci:${dir}:${tag}`, `docker://${dest}`);
  await runSkopeo(args);
}

/** Builds (via buildTestImage) and pushes an image to `host/repo:tag`; returns what was built. */
export async function pushTestImage(host: string, repo: string, opts: Parameters<typeof buildTestImage>[0] & SkopeoOptions = {}): Promise<TestImage> {
  const img = await buildTestImage(opts);
  await pushLayout(img.layout.dir, img.tag, `${host}/${repo}:${img.tag}`, opts);
  return img;
}

/**
 * `skopeo inspect docker://REF`: the parsed JSON (Digest, RepoTags, ...), or with `raw` the exact
 * manifest bytes as a string.
 */
export async function skopeoInspect(ref: string, opts: SkopeoOptions & { readonly raw?: boolean } = {}): Promise<Record<string, unknown> | string> {
  const args = ['inspect', `--tls-verify=${opts.tlsVerify ?? false}`];
  if (opts.raw) args.push('--raw');
  if (opts.creds) args.push('--creds', opts.creds);
  args.push(`docker://${ref}`);
  const out = await runSkopeo(args);
  return opts.raw ? out : (JSON.parse(out) as Record<string, unknown>);
}

async function runSkopeo(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('skopeo', args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; code?: unknown };
    // Never echo credentials from the command line.
    const safeArgs = args.map((a, i) => (args[i - 1] === '--dest-creds' || args[i - 1] === '--creds' ? 'REDACTED' : a));
    throw new Error(`skopeo ${safeArgs.join(' ')} failed (exit ${String(e.code)}): ${e.stderr ?? ''}`);
  }
}
