// Synthetic bundle content for the bundle tests: two tiny images (one single-platform manifest,
// one 2-platform index) and one Go module, built from scratch so no store is needed.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import yauzl from 'yauzl';
import yazl from 'yazl';
import {
  buildImagePlan,
  type BundleManifest,
  buildIndexJson,
  bufferEntry,
  generateSigningKey,
  IMPORT_SCRIPT,
  ociLayoutFile,
  PLAN_FILE,
  writeBundle,
  type BundleEntry,
  type BundleImage,
  type BundleModule,
  type TrustedKey,
  type WriteBundleResult,
} from '../../bundle/index.js';
import { MediaType, sha256Digest, type Digest } from '../../oci/index.js';

/** A temp directory. */
export async function tempDir(prefix = 'ferry-bundle-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A signing key pair written to DIR/NAME.key|.pub, plus KeyObjects. */
export async function makeKeys(dir: string, name = 'ferry'): Promise<{ privateKey: KeyObject; trust: TrustedKey[]; pubPath: string; keyPath: string }> {
  const pair = generateSigningKey();
  const keyPath = join(dir, `${name}.key`);
  const pubPath = join(dir, `${name}.pub`);
  await writeFile(keyPath, pair.privatePem, { mode: 0o600 });
  await writeFile(pubPath, pair.publicPem);
  return { privateKey: createPrivateKey(pair.privatePem), trust: [{ key: createPublicKey(pair.publicPem), name: `${name}.pub` }], pubPath, keyPath };
}

function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((resolve, reject) => {
    p.on('end', () => resolve(Buffer.concat(chunks)));
    p.on('error', reject);
  });
  for (const [name, text] of Object.entries(files)) p.entry({ name, mtime: new Date(0) }, text);
  p.finalize();
  return done;
}

/** A blob carried in the fixture bundle. */
export interface Blob {
  readonly digest: Digest;
  readonly bytes: Buffer;
  readonly mediaType?: string;
}

async function imageFor(arch: string, text: string, blobs: Blob[]): Promise<{ digest: Digest; size: number; bytes: Buffer }> {
  const layerTar = await tarOf({ [`hello-${arch}.txt`]: text });
  const layer = gzipSync(layerTar, { level: 9 });
  const layerDigest = sha256Digest(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: [sha256Digest(layerTar)] },
    }),
  );
  const configDigest = sha256Digest(config);
  const manifest = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
        layers: [{ mediaType: MediaType.OciLayout, digest: layerDigest, size: layer.length }],
        annotations: { 'org.opencontainers.image.base.digest': sha256Digest('not carried anywhere') },
      },
      null,
      3,
    ),
  );
  blobs.push({ digest: layerDigest, bytes: layer }, { digest: configDigest, bytes: config });
  const digest = sha256Digest(manifest);
  blobs.push({ digest, bytes: manifest, mediaType: MediaType.OciManifest });
  return { digest, size: manifest.length, bytes: manifest };
}

/** The h1 (dirhash Hash1) of zip content, names sorted bytewise. */
export async function zipH1(zipPath: string): Promise<string> {
  const files = new Map<string, string>();
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(zipPath, { lazyEntries: true }, (err, z) => (err ? reject(err) : resolve(z))),
  );
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      zip.openReadStream(entry, (err, rs) => {
        if (err) return reject(err);
        const h = createHash('sha256');
        rs.on('data', (c: Buffer) => h.update(c));
        rs.on('end', () => {
          files.set(entry.fileName, h.digest('hex'));
          zip.readEntry();
        });
        rs.on('error', reject);
      });
    });
    zip.on('end', () => resolve());
    zip.on('error', reject);
    zip.readEntry();
  });
  const names = [...files.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const summary = names.map((n) => `${files.get(n)}  ${n}\n`).join('');
  return `h1:${createHash('sha256').update(summary).digest('base64')}`;
}

function zipOf(files: Record<string, string>): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const [name, text] of Object.entries(files)) z.addBuffer(Buffer.from(text), name, { mtime: new Date(0) });
  z.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    z.outputStream.on('data', (c: Buffer) => chunks.push(c));
    z.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    z.outputStream.on('error', reject);
  });
}

/** Everything a fixture bundle holds. */
export interface Fixture {
  readonly entries: BundleEntry[];
  readonly manifest: Omit<BundleManifest, 'files' | 'formatVersion'>;
  readonly images: BundleImage[];
  readonly blobs: Blob[];
  readonly module: BundleModule;
  /** Paths of the module files inside the bundle. */
  readonly modPaths: { info: string; mod: string; zip: string; list: string };
}

/** The module the fixture carries (upper case, to exercise !-escaping). */
export const MODULE_PATH = 'example.com/Hello';
/** Its version. */
export const MODULE_VERSION = 'v1.0.0';

/** Builds the fixture content. `id`/`sequence` vary per bundle. */
export async function makeFixture(dir: string, opts: { id?: string; targetPrefix?: string } = {}): Promise<Fixture> {
  const prefix = opts.targetPrefix ?? 'mirror';
  const blobs: Blob[] = [];
  const single = await imageFor('amd64', 'hello from app\n', blobs);
  const amd = await imageFor('amd64', 'multi amd64\n', blobs);
  const arm = await imageFor('arm64', 'multi arm64\n', blobs);
  const index = Buffer.from(
    `${JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { mediaType: MediaType.OciManifest, digest: amd.digest, size: amd.size, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: MediaType.OciManifest, digest: arm.digest, size: arm.size, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    })}\n`,
  );
  const indexDigest = sha256Digest(index);
  blobs.push({ digest: indexDigest, bytes: index, mediaType: MediaType.OciIndex });

  const images: BundleImage[] = [
    { reference: 'example.com/team/app:1.0', target: `${prefix}/app`, tag: '1.0', digest: single.digest, mediaType: MediaType.OciManifest, platforms: null },
    { reference: 'docker.io/library/multi:latest', target: `${prefix}/multi`, tag: 'latest', digest: indexDigest, mediaType: MediaType.OciIndex, platforms: null },
  ];
  const indexJson = buildIndexJson([
    { ...images[0]!, size: single.size },
    { ...images[1]!, size: index.length },
  ]);

  const base = `gomod/example.com/!hello/@v/${MODULE_VERSION}`;
  const modText = 'module example.com/Hello\n\ngo 1.19\n';
  const zip = await zipOf({
    [`${MODULE_PATH}@${MODULE_VERSION}/go.mod`]: modText,
    [`${MODULE_PATH}@${MODULE_VERSION}/hello.go`]: 'package hello\n\n// Hello says hello.\nfunc Hello() string { return "hello" }\n',
  });
  const zipPath = join(dir, 'fixture.zip');
  await writeFile(zipPath, zip);
  const module: BundleModule = {
    path: MODULE_PATH,
    version: MODULE_VERSION,
    h1: await zipH1(zipPath),
    goModH1: `h1:${createHash('sha256').update(`${createHash('sha256').update(modText).digest('hex')}  go.mod\n`).digest('base64')}`,
    time: '2024-01-01T00:00:00Z',
  };
  const modPaths = { info: `${base}.info`, mod: `${base}.mod`, zip: `${base}.zip`, list: 'gomod/example.com/!hello/@v/list' };

  const entries: BundleEntry[] = [
    bufferEntry('oci-layout', ociLayoutFile()),
    bufferEntry('index.json', indexJson),
    ...blobs.map((b) => bufferEntry(`blobs/sha256/${b.digest.slice(7)}`, b.bytes, b.mediaType)),
    bufferEntry(modPaths.info, Buffer.from(`{"Version":"${MODULE_VERSION}","Time":"2024-01-01T00:00:00Z"}\n`)),
    bufferEntry(modPaths.mod, Buffer.from(modText)),
    bufferEntry(modPaths.zip, zip),
    bufferEntry(modPaths.list, Buffer.from(`${MODULE_VERSION}\n`)),
  ];
  const manifest: Omit<BundleManifest, 'files' | 'formatVersion'> = {
    id: opts.id ?? 'ferry-20240101-0001-0a1b2c3d',
    sequence: 1,
    parent: null,
    chain: [],
    created: '2024-01-01T00:00:00Z',
    store: { id: 'store-test' },
    images,
    modules: [module],
    requires: [],
  };
  return { entries, manifest, images, blobs, module, modPaths };
}

/**
 * The image plan ferry export would write for the fixture as it stands (its images, the manifests
 * its entries carry, its requires), or undefined when the graph cannot walk it (a fixture built
 * to miss a manifest): then the bundle goes without one, as bundles from before the plan did.
 */
export async function fixturePlan(fx: Fixture): Promise<BundleEntry | undefined> {
  if (fx.manifest.images.length === 0) return undefined;
  const carried = new Map<string, { bytes: Buffer; mediaType: string }>();
  for (const e of fx.entries) {
    const b = fx.blobs.find((x) => `blobs/sha256/${x.digest.slice(7)}` === e.path);
    if (b && e.mediaType !== undefined) carried.set(b.digest, { bytes: b.bytes, mediaType: e.mediaType });
  }
  const requires = new Set<string>(fx.manifest.requires);
  try {
    return bufferEntry(PLAN_FILE, await buildImagePlan(fx.manifest.images, (d) => carried.get(d.digest) ?? (requires.has(d.digest) ? 'external' : undefined)));
  } catch {
    return undefined;
  }
}

/** Writes the fixture as a bundle into `outDir`; with `plan`, adding the image plan export would write (as import.sh needs). */
export async function writeFixture(
  outDir: string,
  fx: Fixture,
  privateKey: KeyObject,
  opts: { name?: string; splitSize?: number; plan?: boolean } = {},
): Promise<WriteBundleResult> {
  const plan = opts.plan === true && !fx.entries.some((e) => e.path === PLAN_FILE) ? await fixturePlan(fx) : undefined;
  return writeBundle({
    outDir,
    name: opts.name ?? 'ferry-20240101-0001',
    manifest: fx.manifest,
    entries: plan ? [...fx.entries, plan] : fx.entries,
    privateKey,
    importScript: IMPORT_SCRIPT,
    ...(opts.splitSize !== undefined ? { splitSize: opts.splitSize } : {}),
  });
}

/** Byte offset of an entry's data inside a tar (ustar names only; the fixtures' names are short). */
export function tarDataOffset(tar: Buffer, name: string): number {
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, b: number): string => h.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const prefix = field(345, 500);
    const entryName = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = parseInt(field(124, 136).trim() || '0', 8);
    if (entryName === name) return off + 512;
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`entry ${name} not found in tar`);
}

/** Flips one byte of an entry's data inside a tar file. */
export async function flipByteInEntry(tarPath: string, name: string, delta = 0): Promise<void> {
  const buf = await readFile(tarPath);
  const at = tarDataOffset(buf, name) + delta;
  buf[at] = buf[at]! ^ 0x01;
  await writeFile(tarPath, buf);
}
