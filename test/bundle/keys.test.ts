// Signing keys: generation, file modes, no overwrite, encrypted keys, fingerprints, and
// signatures that openssl (and so cosign verify-blob) accepts.
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateSigningKey,
  keyFingerprint,
  loadPrivateKey,
  loadPublicKey,
  loadTrustedKey,
  signBytes,
  verifySignature,
  writeKeyPair,
} from '../../bundle/index.js';
import { tempDir } from './fixtures.js';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keys', () => {
  it('writes PREFIX.key with mode 0600 and PREFIX.pub, and refuses to overwrite', async () => {
    const prefix = join(dir, 'ferry');
    const res = await writeKeyPair(prefix);
    expect((await stat(`${prefix}.key`)).mode & 0o777).toBe(0o600);
    expect(await readFile(`${prefix}.pub`, 'utf8')).toContain('BEGIN PUBLIC KEY');
    expect(await readFile(`${prefix}.key`, 'utf8')).toContain('BEGIN PRIVATE KEY');
    const pub = await loadPublicKey(`${prefix}.pub`);
    expect(res.fingerprint).toBe(keyFingerprint(pub));
    expect(keyFingerprint(await loadPrivateKey(`${prefix}.key`))).toBe(res.fingerprint);
    // Same as openssl's sha256 over the SPKI DER.
    const { stdout } = await run('sh', ['-c', `openssl pkey -pubin -in '${prefix}.pub' -outform DER | sha256sum`]);
    expect(stdout.split(' ')[0]).toBe(res.fingerprint);
    const before = await readFile(`${prefix}.key`, 'utf8');
    await expect(writeKeyPair(prefix)).rejects.toMatchObject({ code: 'KEY_INVALID' });
    expect(await readFile(`${prefix}.key`, 'utf8')).toBe(before);
  });

  it('encrypts the private key with a passphrase and needs it to load', async () => {
    const prefix = join(dir, 'enc');
    await writeKeyPair(prefix, { passphrase: 'correct horse' });
    expect(await readFile(`${prefix}.key`, 'utf8')).toContain('BEGIN ENCRYPTED PRIVATE KEY');
    await expect(loadPrivateKey(`${prefix}.key`)).rejects.toMatchObject({ code: 'KEY_INVALID', message: expect.stringContaining('passphrase') });
    await expect(loadPrivateKey(`${prefix}.key`, 'wrong')).rejects.toMatchObject({ code: 'KEY_INVALID', message: expect.stringContaining(`${prefix}.key`) });
    const key = await loadPrivateKey(`${prefix}.key`, 'correct horse');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    // openssl reads the encrypted PKCS#8 too.
    await run('openssl', ['pkey', '-in', `${prefix}.key`, '-passin', 'pass:correct horse', '-noout']);
  });

  it('rejects files that are not P-256 PEM keys, naming the file', async () => {
    const junk = join(dir, 'junk.pub');
    await writeFile(junk, 'hello');
    await expect(loadPublicKey(junk)).rejects.toMatchObject({ code: 'KEY_INVALID', details: { file: junk } });
    const rsa = join(dir, 'rsa.pub');
    await run('sh', ['-c', `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | openssl pkey -pubout -out '${rsa}'`]);
    await expect(loadPublicKey(rsa)).rejects.toMatchObject({ code: 'KEY_INVALID', message: expect.stringContaining('P-256') });
    await expect(loadPublicKey(join(dir, 'absent.pub'))).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });
});

describe('signatures', () => {
  it('are accepted by openssl dgst -verify, and a different key is refused by openssl and verifySignature', async () => {
    const prefix = join(dir, 'signer');
    const other = join(dir, 'other');
    await writeKeyPair(prefix);
    await writeKeyPair(other);
    const data = Buffer.from('{\n  "formatVersion": 1\n}\n');
    const file = join(dir, 'ferry-bundle.json');
    await writeFile(file, data);
    const sigText = signBytes(data, await loadPrivateKey(`${prefix}.key`));
    await writeFile(`${file}.sig`, `${sigText}\n`);
    // Decode the base64 exactly as a user would, then let openssl verify it.
    await run('sh', ['-c', `base64 -d < '${file}.sig' > '${file}.der'`]);
    const ok = await run('openssl', ['dgst', '-sha256', '-verify', `${prefix}.pub`, '-signature', `${file}.der`, file]);
    expect(ok.stdout).toContain('Verified OK');
    await expect(run('openssl', ['dgst', '-sha256', '-verify', `${other}.pub`, '-signature', `${file}.der`, file])).rejects.toThrow();

    const trusted = await loadTrustedKey(`${prefix}.pub`);
    const wrong = await loadTrustedKey(`${other}.pub`);
    expect(verifySignature(data, `${sigText}\n`, [wrong, trusted])).toEqual({ name: 'signer.pub' });
    expect(() => verifySignature(data, sigText, [wrong])).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID', message: expect.stringContaining('other.pub') }));
    expect(() => verifySignature(Buffer.concat([data, Buffer.from(' ')]), sigText, [trusted])).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID' }));
    expect(() => verifySignature(data, 'not base64!', [trusted], 'x.parts.json')).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID', message: expect.stringContaining('x.parts.json.sig') }));
    expect(() => verifySignature(data, sigText, [])).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID' }));
  });

  it('verifies signatures made by openssl', async () => {
    const pair = generateSigningKey();
    const keyFile = join(dir, 'ossl.key');
    await writeFile(keyFile, pair.privatePem, { mode: 0o600 });
    const file = join(dir, 'data.bin');
    await writeFile(file, 'payload');
    const { stdout } = await run('sh', ['-c', `openssl dgst -sha256 -sign '${keyFile}' '${file}' | base64 -w0`]);
    expect(verifySignature(Buffer.from('payload'), stdout, [{ key: createPublicKey(pair.publicPem), name: 'k' }])).toEqual({ name: 'k' });
  });
});
