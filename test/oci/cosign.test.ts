// cosign simple signing, pure: which layers hold signatures, what a payload must name, and
// verification with ECDSA P-256, RSA and Ed25519 keys (made here with node:crypto; the sync and
// e2e tests sign with openssl).
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { COSIGN_SIGNATURE_ANNOTATION, parseManifest, payloadProblem, sha256Digest, signatureLayers, signatureVerifies, SIMPLE_SIGNING_MEDIA_TYPE } from '../../oci/index.js';

const digest = sha256Digest('image');
const payload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': 'r/x' }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }));

describe('cosign simple signing', () => {
  it('finds the signature layers of a signature manifest', () => {
    const m = parseManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 1 },
          layers: [
            { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest, size: 10, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: 'c2ln' } },
            { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest, size: 10 },
            { mediaType: 'application/octet-stream', digest, size: 10, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: 'c2ln' } },
            { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest, size: 10_000_000, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: 'c2ln' } },
          ],
        }),
      ),
    );
    expect(signatureLayers(m).map((l) => l.signature)).toEqual(['c2ln']);
  });

  it('says why a payload does not sign the digest', () => {
    expect(payloadProblem(payload, digest)).toBeUndefined();
    expect(payloadProblem(payload, sha256Digest('other'))).toContain(`signs ${digest}`);
    expect(payloadProblem(Buffer.from('{}'), digest)).toContain('critical.type');
    expect(payloadProblem(Buffer.from('nope'), digest)).toBe('the payload is not JSON');
  });

  it('verifies ECDSA P-256, RSA and Ed25519 signatures, and refuses others', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ed = generateKeyPairSync('ed25519');
    expect(signatureVerifies(ec.publicKey, payload, sign('sha256', payload, ec.privateKey).toString('base64'))).toBe(true);
    expect(signatureVerifies(rsa.publicKey, payload, sign('sha256', payload, rsa.privateKey).toString('base64'))).toBe(true);
    expect(signatureVerifies(ed.publicKey, payload, sign(null, payload, ed.privateKey).toString('base64'))).toBe(true);
    expect(signatureVerifies(ec.publicKey, Buffer.concat([payload, Buffer.from(' ')]), sign('sha256', payload, ec.privateKey).toString('base64'))).toBe(false);
    expect(signatureVerifies(rsa.publicKey, payload, sign('sha256', payload, ec.privateKey).toString('base64'))).toBe(false);
    expect(signatureVerifies(ec.publicKey, payload, '')).toBe(false);
  });
});
