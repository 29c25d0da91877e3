/**
 * Bundle signing keys: ECDSA P-256, private keys as PKCS#8 PEM (encrypted with aes-256-cbc when a
 * passphrase is given), public keys as SPKI PEM — the formats openssl and cosign read.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { FerryError, errorMessage } from '../errors/index.js';

/** A generated key pair as PEM text. */
export interface SigningKeyPem {
  /** PKCS#8 PEM; encrypted PKCS#8 when a passphrase was given. */
  readonly privatePem: string;
  /** SPKI PEM. */
  readonly publicPem: string;
}

/** A public key trusted to sign bundles, with a name used in messages. */
export interface TrustedKey {
  readonly key: KeyObject;
  /** Shown when this key verified a signature, e.g. the file name. */
  readonly name: string;
}

/** Options for key generation. */
export interface KeyGenOptions {
  /** Encrypts the private key (PKCS#8, aes-256-cbc) when given. */
  readonly passphrase?: string;
}

/** Generates an ECDSA P-256 signing key pair as PEM. */
export function generateSigningKey(opts: KeyGenOptions = {}): SigningKeyPem {
  if (opts.passphrase !== undefined && opts.passphrase.length === 0) {
    throw new FerryError('USAGE', 'the key passphrase must not be empty');
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding:
      opts.passphrase === undefined
        ? { type: 'pkcs8', format: 'pem' }
        : { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: opts.passphrase },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}


async function writeExclusive(path: string, text: string, mode: number): Promise<void> {
  let fh;
  try {
    // 'wx' fails when the file exists, so an existing key is never replaced, not even in a race.
    fh = await open(path, 'wx', mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new FerryError('KEY_INVALID', `${path} already exists; refusing to overwrite a key`, { file: path });
    throw new FerryError('KEY_INVALID', `cannot create ${path}: ${errorMessage(err)}`, { file: path, cause: err });
  }
  try {
    await fh.chmod(mode); // the umask may have narrowed it; never widen a private key beyond `mode`
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Generates a key pair and writes PREFIX.key (mode 0600) and PREFIX.pub; refuses to overwrite
 * either file. Returns the paths and the public key fingerprint.
 */
export async function writeKeyPair(
  prefix: string,
  opts: KeyGenOptions = {},
): Promise<{ readonly privateKeyPath: string; readonly publicKeyPath: string; readonly fingerprint: string }> {
  const privateKeyPath = `${prefix}.key`;
  const publicKeyPath = `${prefix}.pub`;
  for (const p of [privateKeyPath, publicKeyPath]) {
    if (existsSync(p)) throw new FerryError('KEY_INVALID', `${p} already exists; refusing to overwrite a key`, { file: p });
  }
  const pair = generateSigningKey(opts);
  await writeExclusive(privateKeyPath, pair.privatePem, 0o600);
  try {
    await writeExclusive(publicKeyPath, pair.publicPem, 0o644);
  } catch (err) {
    await unlink(privateKeyPath).catch(() => undefined);
    throw err;
  }
  return { privateKeyPath, publicKeyPath, fingerprint: keyFingerprint(createPublicKey(pair.publicPem)) };
}

function checkP256(key: KeyObject, file: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : String(key.asymmetricKeyType);
    throw new FerryError('KEY_INVALID', `${file}: key is ${kind}, expected ECDSA P-256`, { file });
  }
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new FerryError('KEY_INVALID', `cannot read key ${path}: ${errorMessage(err)}`, { file: path, cause: err });
  }
}

/** Loads a PKCS#8 (optionally encrypted) or SEC1 PEM private key; KEY_INVALID names the file. */
export async function loadPrivateKey(path: string, passphrase?: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  const encrypted = pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || pem.includes('Proc-Type: 4,ENCRYPTED');
  if (encrypted && passphrase === undefined) {
    throw new FerryError('KEY_INVALID', `${path}: the private key is encrypted; a passphrase is required`, { file: path });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(passphrase === undefined ? { key: pem, format: 'pem' } : { key: pem, format: 'pem', passphrase });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MISSING_PASSPHRASE') {
      throw new FerryError('KEY_INVALID', `${path}: the private key is encrypted; a passphrase is required`, { file: path });
    }
    const why = passphrase === undefined ? 'not a PEM private key' : 'wrong passphrase or not a PEM private key';
    throw new FerryError('KEY_INVALID', `${path}: ${why}`, { file: path, cause: err });
  }
  checkP256(key, path);
  return key;
}

/** Loads an SPKI PEM public key (a certificate or private key is refused); KEY_INVALID names the file. */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  if (!pem.includes('-----BEGIN PUBLIC KEY-----')) {
    throw new FerryError('KEY_INVALID', `${path}: not a PEM public key (expected "BEGIN PUBLIC KEY")`, { file: path });
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new FerryError('KEY_INVALID', `${path}: not a valid PEM public key`, { file: path, cause: err });
  }
  checkP256(key, path);
  return key;
}

/** Loads a public key as a TrustedKey named after its file. */
export async function loadTrustedKey(path: string): Promise<TrustedKey> {
  return { key: await loadPublicKey(path), name: basename(path) };
}

/** sha256 of the key's SPKI DER encoding, lowercase hex (accepts a private key: its public half). */
export function keyFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex');
}
