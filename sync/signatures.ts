/**
 * The signature policy at the DMZ (`verify: {keys: [...]}` on an image entry): a tag is mirrored
 * only when its digest has a cosign signature (the digest tag `sha256-<hex>.sig`) whose
 * simple-signing payload names that digest and verifies with one of the keys. Otherwise the tag
 * fails with SIGNATURE_MISSING or SIGNATURE_INVALID and nothing of it is stored.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FerryError, errorMessage } from '../errors/index.js';
import { cosignTag, MAX_SIGNATURE_PAYLOAD, parseManifest, payloadProblem, signatureLayers, signatureVerifies, type Digest } from '../oci/index.js';
import type { RegistryClient } from '../registry/index.js';

/** Reads the policy's public keys (PEM: ECDSA, RSA or Ed25519); KEY_INVALID names the file. */
export async function loadPolicyKeys(paths: readonly string[]): Promise<KeyObject[]> {
  return Promise.all(
    paths.map(async (p) => {
      let pem: Buffer;
      try {
        pem = await readFile(p);
      } catch (err) {
        throw new FerryError('KEY_INVALID', `verify key ${p}: cannot read it: ${errorMessage(err)}`, { file: p, cause: err });
      }
      let key: KeyObject;
      try {
        key = createPublicKey(pem);
      } catch (err) {
        throw new FerryError('KEY_INVALID', `verify key ${p}: not a PEM public key: ${errorMessage(err)}`, { file: p, cause: err });
      }
      if (!['ec', 'rsa', 'ed25519'].includes(key.asymmetricKeyType ?? '')) {
        throw new FerryError('KEY_INVALID', `verify key ${p}: a ${String(key.asymmetricKeyType)} key; cosign keys are ECDSA, RSA or Ed25519`, { file: p });
      }
      return key;
    }),
  );
}

/** Where a tag is checked, for messages. */
export interface SignatureSubject {
  readonly client: RegistryClient;
  readonly repository: string;
  /** `registry/repository:tag`. */
  readonly reference: string;
  readonly digest: Digest;
  /** The repository's tag list this pass, or its digest tags (`sha256-…`) alone: no `.sig` tag there, no signature. */
  readonly tags: ReadonlySet<string>;
  readonly signal?: AbortSignal | undefined;
}

/** Throws SIGNATURE_MISSING or SIGNATURE_INVALID unless a signature of the digest verifies with one of the keys. */
export async function requireSignature(s: SignatureSubject, keys: readonly KeyObject[]): Promise<void> {
  const tag = cosignTag(s.digest, 'sig');
  const details = { registry: s.client.host, repository: s.repository, reference: s.reference, digest: s.digest };
  const sig = s.signal ? { signal: s.signal } : {};
  const missing = (): FerryError =>
    new FerryError('SIGNATURE_MISSING', `${s.reference}: ${s.digest} has no cosign signature (no ${tag} with a simple-signing layer); the policy requires one, so the tag is not mirrored`, details);
  if (!s.tags.has(tag)) throw missing();
  const m = await s.client.manifestGet(s.repository, tag, sig);
  const layers = signatureLayers(parseManifest(m.bytes, m.mediaType));
  if (layers.length === 0) throw missing();
  const why: string[] = [];
  for (const l of layers) {
    const parts: Buffer[] = [];
    for await (const c of await s.client.blobGet(s.repository, l.payload.digest, { size: l.payload.size, ...sig })) parts.push(c as Buffer);
    const payload = Buffer.concat(parts);
    if (payload.length > MAX_SIGNATURE_PAYLOAD) continue;
    const problem = payloadProblem(payload, s.digest);
    if (problem !== undefined) {
      why.push(problem);
      continue;
    }
    if (keys.some((k) => signatureVerifies(k, payload, l.signature))) return;
    why.push('the signature does not verify with any of the keys');
  }
  throw new FerryError('SIGNATURE_INVALID', `${s.reference}: no signature of ${s.digest} in ${tag} verifies (${[...new Set(why)].join('; ')}); the tag is not mirrored`, details);
}
