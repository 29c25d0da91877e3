/**
 * Detached signatures over exact bytes: base64 of a DER ECDSA-P256-SHA256 signature, the format
 * `openssl dgst -sha256 -verify` and `cosign verify-blob` accept.
 */
import { createSign, createVerify, sign, type KeyObject } from 'node:crypto';
import { FerryError } from '../errors/index.js';
import type { TrustedKey } from './keys.js';

/** Signs `bytes` and returns the base64 DER signature (one line, no newline). */
export function signBytes(bytes: Uint8Array, privateKey: KeyObject): string {
  if (privateKey.type !== 'private') throw new FerryError('KEY_INVALID', 'signing needs a private key');
  return sign('sha256', bytes, { key: privateKey, dsaEncoding: 'der' }).toString('base64');
}

/** Signs bytes that arrive in pieces (a long file being written): the same signature signBytes gives over their concatenation. */
export function byteSigner(privateKey: KeyObject): { update(bytes: Uint8Array): void; sign(): string } {
  if (privateKey.type !== 'private') throw new FerryError('KEY_INVALID', 'signing needs a private key');
  const s = createSign('sha256');
  return {
    update: (bytes) => void s.update(bytes),
    sign: () => s.sign({ key: privateKey, dsaEncoding: 'der' }).toString('base64'),
  };
}

const BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Verifies a base64 signature over `bytes` against each trusted key in turn and returns the
 * name of the key that verified it. `file` names the signed file in the error.
 */
export function verifySignature(
  bytes: Uint8Array,
  sigText: string,
  publicKeys: readonly TrustedKey[],
  file = 'ferry-bundle.json',
): { readonly name: string } {
  const v = byteVerifier(publicKeys);
  v.update(bytes);
  return v.verify(sigText, file);
}

/**
 * Verifies a signature over bytes that arrive in pieces (a long file being read, so it is never
 * held whole): verify() says what verifySignature says of their concatenation. One use.
 */
export function byteVerifier(publicKeys: readonly TrustedKey[]): { update(bytes: Uint8Array): void; verify(sigText: string, file?: string): { readonly name: string } } {
  const verifiers = publicKeys.map((k) => ({ k, v: createVerify('sha256') }));
  return {
    update: (bytes) => {
      for (const { v } of verifiers) v.update(bytes);
    },
    verify: (sigText, file = 'ferry-bundle.json') => {
      const b64 = sigText.replace(/\r?\n$/, '');
      if (!BASE64_LINE.test(b64) || b64.length % 4 !== 0) {
        throw new FerryError('SIGNATURE_INVALID', `${file}.sig is not a single line of base64`, { file: `${file}.sig` });
      }
      if (verifiers.length === 0) {
        throw new FerryError('SIGNATURE_INVALID', `${file}: no trusted public keys were given to verify its signature`, { file });
      }
      const sig = Buffer.from(b64, 'base64');
      for (const { k, v } of verifiers) {
        let ok = false;
        try {
          ok = v.verify({ key: k.key, dsaEncoding: 'der' }, sig);
        } catch {
          ok = false; // a malformed DER signature throws in some OpenSSL versions; it is simply not valid
        }
        if (ok) return { name: k.name };
      }
      const names = verifiers.map(({ k }) => k.name).join(', ');
      throw new FerryError('SIGNATURE_INVALID', `${file}: signature does not verify with any trusted key (${names})`, { file });
    },
  };
}
