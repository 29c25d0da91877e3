/**
 * cosign's simple signing, pure: which layers of a signature manifest hold a signature, what
 * the payload must say, and whether a signature verifies with a public key. The payload is
 * `{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":<digest>},
 * "type":"cosign container image signature"},"optional":…}`; the signature is base64 in the
 * layer annotation `dev.cosignproject.cosign/signature`: ECDSA (DER) or RSA PKCS#1 v1.5 over
 * SHA-256 of the payload, or Ed25519 over the payload. Keyless (Fulcio certificates, Rekor
 * entries) is not verified here.
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { Descriptor, ParsedManifest } from './manifest.js';
import { COSIGN_SIGNATURE_ANNOTATION } from './referrers.js';

/** The media type of a cosign simple-signing payload layer. */
export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The `critical.type` of a cosign image signature payload. */
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';
/** Largest payload read (real ones are a few hundred bytes). */
export const MAX_SIGNATURE_PAYLOAD = 64 * 1024;
/** Most signature layers tried per signature manifest. */
export const MAX_SIGNATURE_LAYERS = 32;

/** A signature layer: the payload blob and the base64 signature over it. */
export interface SignatureLayer {
  readonly payload: Descriptor;
  readonly signature: string;
}

/** The simple-signing layers of a cosign signature manifest, within MAX_SIGNATURE_LAYERS and MAX_SIGNATURE_PAYLOAD. */
export function signatureLayers(m: ParsedManifest): SignatureLayer[] {
  if (m.kind !== 'image') return [];
  const out: SignatureLayer[] = [];
  for (const l of m.manifest.layers) {
    const signature = l.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    if (l.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE || typeof signature !== 'string' || l.size > MAX_SIGNATURE_PAYLOAD) continue;
    out.push({ payload: l, signature });
    if (out.length >= MAX_SIGNATURE_LAYERS) break;
  }
  return out;
}

/** Why a payload does not sign `digest` as a cosign image signature; undefined when it does. */
export function payloadProblem(payload: Uint8Array, digest: string): string | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return 'the payload is not JSON';
  }
  const critical = (json as { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown } } } | null)?.critical;
  if (critical?.type !== COSIGN_SIGNATURE_TYPE) return `the payload's critical.type is not "${COSIGN_SIGNATURE_TYPE}"`;
  const named = critical.image?.['docker-manifest-digest'];
  if (named !== digest) return `the payload signs ${typeof named === 'string' ? named : 'no digest'}, not ${digest}`;
  return undefined;
}

/** True when the base64 signature over the payload verifies with the key (ECDSA, RSA or Ed25519). */
export function signatureVerifies(key: KeyObject, payload: Uint8Array, signatureB64: string): boolean {
  const sig = Buffer.from(signatureB64, 'base64');
  if (sig.length === 0) return false;
  try {
    const type = key.asymmetricKeyType;
    if (type === 'ed25519') return cryptoVerify(null, payload, key, sig);
    if (type === 'ec' || type === 'rsa') return cryptoVerify('sha256', payload, key, sig);
    return false;
  } catch {
    return false;
  }
}
