/**
 * Test helper: attachments made exactly as cosign and OCI 1.1 clients write them, pushed with
 * the registry client. A cosign signature is an ECDSA P-256 signature made by openssl over the
 * simple-signing payload, base64 in the layer annotation `dev.cosignproject.cosign/signature`,
 * under the digest tag `sha256-<hex>.sig`; an SBOM is an OCI 1.1 referrer (a manifest with
 * `subject` and `artifactType`), or cosign's `sha256-<hex>.sbom` tag.
 *
 *   const key = await makeCosignKey(dir);
 *   const sig = await pushCosignSignature(client, 'team/app', subjectDigest, key, `${host}/team/app`);
 *   await verifyCosignSignature(key, sig.payload, sig.signature) // openssl says Verified OK
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { fallbackTag, parseManifest, type Digest } from '../../oci/index.js';
import type { RegistryClient } from '../../registry/index.js';
import { buildTestImage, digestOf, OCI, pushLayout, type TestImage } from './images.js';

const execFileP = promisify(execFile);

/** The media type of cosign's simple-signing payload layer. */
export const SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The layer annotation holding the base64 signature. */
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** The artifact type of the SPDX SBOM referrers the tests attach. */
export const SPDX = 'application/spdx+json';
/** The OCI empty descriptor's media type and bytes (`{}`), as artifacts use for their config. */
export const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') } as const;

/** A P-256 key pair in PEM files. */
export interface CosignKey {
  readonly dir: string;
  readonly privatePem: string;
  readonly publicPem: string;
  remove(): Promise<void>;
}

/** Makes an ECDSA P-256 key pair with openssl. */
export async function makeCosignKey(): Promise<CosignKey> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-cosign-'));
  const privatePem = join(dir, 'cosign.key');
  const publicPem = join(dir, 'cosign.pub');
  await execFileP('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', privatePem]);
  await execFileP('openssl', ['ec', '-in', privatePem, '-pubout', '-out', publicPem]);
  return { dir, privatePem, publicPem, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** cosign's simple-signing payload for an image digest under a reference. */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
      optional: null,
    }),
  );
}

/** Signs bytes with openssl (ECDSA P-256, SHA-256, DER), base64 as cosign stores it. */
export async function opensslSign(key: CosignKey, payload: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sign-'));
  try {
    await writeFile(join(dir, 'payload'), payload);
    await execFileP('openssl', ['dgst', '-sha256', '-sign', key.privatePem, '-out', join(dir, 'sig'), join(dir, 'payload')]);
    return (await readFile(join(dir, 'sig'))).toString('base64');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True when openssl verifies the base64 signature over the payload with the key's public half. */
export async function opensslVerify(publicPem: string, payload: Buffer, signatureB64: string): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-verify-'));
  try {
    await writeFile(join(dir, 'payload'), payload);
    await writeFile(join(dir, 'sig'), Buffer.from(signatureB64, 'base64'));
    const r = await execFileP('openssl', ['dgst', '-sha256', '-verify', publicPem, '-signature', join(dir, 'sig'), join(dir, 'payload')]).catch((e: { stdout?: string }) => ({
      stdout: e.stdout ?? '',
    }));
    return r.stdout.includes('Verified OK');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function putBlob(client: RegistryClient, repo: string, bytes: Buffer): Promise<{ digest: `sha256:${string}`; size: number }> {
  const digest = digestOf(bytes);
  await client.blobPut(repo, digest, bytes.length, () => Readable.from([bytes]));
  return { digest, size: bytes.length };
}

/** A pushed attachment manifest. */
export interface PushedAttachment {
  readonly digest: `sha256:${string}`;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

/** A pushed cosign signature: its manifest, payload and base64 signature. */
export interface PushedSignature extends PushedAttachment {
  readonly payload: Buffer;
  readonly signature: string;
}

/** The `sha256-<hex>` part of a digest tag. */
export function digestTagBase(digest: string): string {
  return `sha256-${digest.slice('sha256:'.length)}`;
}

/** Pushes a cosign signature of `subject` under `sha256-<hex>.sig` (as `cosign sign --key` writes it). */
export async function pushCosignSignature(client: RegistryClient, repo: string, subject: string, key: CosignKey, dockerReference: string): Promise<PushedSignature> {
  const payload = simpleSigningPayload(dockerReference, subject);
  const signature = await opensslSign(key, payload);
  const layer = await putBlob(client, repo, payload);
  const config = Buffer.from(JSON.stringify({ architecture: '', config: {}, created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] } }));
  const cfg = await putBlob(client, repo, config);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config: { mediaType: OCI.config, size: cfg.size, digest: cfg.digest },
      layers: [{ mediaType: SIMPLESIGNING, size: layer.size, digest: layer.digest, annotations: { [SIGNATURE_ANNOTATION]: signature } }],
    }),
  );
  const digest = await client.manifestPut(repo, `${digestTagBase(subject)}.sig`, bytes, OCI.manifest);
  return { digest, bytes, mediaType: OCI.manifest, payload, signature };
}

/** Pushes an OCI 1.1 SBOM referrer of `subject` (a manifest with `subject`) by digest only. */
export async function pushSbomReferrer(client: RegistryClient, repo: string, subject: { digest: string; mediaType: string; size: number }, sbom: object): Promise<PushedAttachment> {
  const body = Buffer.from(JSON.stringify(sbom));
  const layer = await putBlob(client, repo, body);
  const cfg = await putBlob(client, repo, EMPTY_CONFIG.bytes);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.manifest,
      artifactType: SPDX,
      config: { mediaType: EMPTY_CONFIG.mediaType, size: cfg.size, digest: cfg.digest },
      layers: [{ mediaType: SPDX, size: layer.size, digest: layer.digest }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
    }),
  );
  const digest = digestOf(bytes);
  await client.manifestPut(repo, digest, bytes, OCI.manifest);
  return { digest, bytes, mediaType: OCI.manifest };
}

/** Writes (replaces) the fallback tag `sha256-<hex>` index listing referrers, as an OCI 1.1 client does on a registry without the API. */
export async function pushFallbackIndex(client: RegistryClient, repo: string, subject: string, referrers: ReadonlyArray<PushedAttachment & { artifactType?: string }>): Promise<void> {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.index,
      manifests: referrers.map((r) => ({ mediaType: r.mediaType, digest: r.digest, size: r.bytes.length, ...(r.artifactType ? { artifactType: r.artifactType } : {}) })),
    }),
  );
  await client.manifestPut(repo, digestTagBase(subject), bytes, OCI.index);
}

/**
 * The cosign signature a registry holds for `subject` under its digest tag `sha256-<hex>.sig`:
 * the digest its simple-signing payload names, and whether openssl verifies it with the key.
 */
export async function signatureAt(client: RegistryClient, repo: string, subject: Digest, publicPem: string): Promise<{ names: unknown; verified: boolean }> {
  const m = await client.manifestGet(repo, `${fallbackTag(subject)}.sig`);
  const p = parseManifest(m.bytes, m.mediaType);
  if (p.kind !== 'image') throw new Error(`${repo}:${fallbackTag(subject)}.sig is not an image manifest`);
  const layer = p.manifest.layers[0]!;
  const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
  if (signature === undefined) return { names: undefined, verified: false };
  const parts: Buffer[] = [];
  for await (const c of await client.blobGet(repo, layer.digest, { size: layer.size })) parts.push(c as Buffer);
  const payload = Buffer.concat(parts);
  const names = (JSON.parse(payload.toString('utf8')) as { critical?: { image?: { 'docker-manifest-digest'?: unknown } } }).critical?.image?.['docker-manifest-digest'];
  return { names, verified: await opensslVerify(publicPem, payload, signature) };
}

/** A signed image upstream, as the signature tests use it: the index and its first platform signed, an SBOM on that platform. */
export interface SignedImage {
  readonly img: TestImage;
  readonly key: CosignKey;
  readonly indexSig: PushedSignature;
  readonly amdSig: PushedSignature;
  readonly sbom: PushedAttachment;
}

/**
 * Builds a multi-platform image (`seed`), pushes it to `host` as `team/app:v1`, signs the index
 * and its first platform with a new key, and attaches an SPDX SBOM to that platform both as an
 * OCI 1.1 referrer and in the fallback index. The caller removes `img.layout` and `key`.
 */
export async function pushSignedImage(client: RegistryClient, host: string, seed: string): Promise<SignedImage> {
  const img = await buildTestImage({ multiArch: true, seed, tag: 'v1' });
  await pushLayout(img.layout.dir, 'v1', `${host}/team/app:v1`);
  const key = await makeCosignKey();
  const amd = img.images[0]!;
  const indexSig = await pushCosignSignature(client, 'team/app', img.top.digest, key, `${host}/team/app`);
  const amdSig = await pushCosignSignature(client, 'team/app', amd.digest, key, `${host}/team/app`);
  const sbom = await pushSbomReferrer(client, 'team/app', amd, { spdxVersion: 'SPDX-2.3', name: 'signed' });
  await pushFallbackIndex(client, 'team/app', amd.digest, [{ ...sbom, artifactType: SPDX }]);
  return { img, key, indexSig, amdSig, sbom };
}
