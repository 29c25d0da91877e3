/**
 * Signed notes of the Go checksum database, ported from golang.org/x/mod/sumdb/note: verifier
 * keys `name+hash+base64(0x01 ‖ ed25519 public key)`, signer keys
 * `PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`, and `Open`: the text, a blank line, then lines
 * `— NAME BASE64(keyhash[4] ‖ signature[64])`.
 */
import { isWellFormedUnicode } from '../gomod/escape.js';
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';

const ALG_ED25519 = 1;
const SIG_PREFIX = '— ';

/** A note failure (malformed, unknown key, bad signature); callers turn it into a FerryError. */
export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteError';
  }
}

/** A parsed verifier key. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyHash: number;
  /** The verifier key string it was parsed from. */
  readonly key: string;
  verify(msg: Buffer, sig: Buffer): boolean;
}

/** A signer (tests and private checksum databases). */
export interface NoteSigner {
  readonly name: string;
  readonly keyHash: number;
  sign(msg: Buffer): Buffer;
}

/** One signature line of a note. */
export interface NoteSignature {
  readonly name: string;
  readonly hash: number;
  readonly base64: string;
}

/** An opened note: its text and the signatures verified (and not) by the known keys. */
export interface Note {
  readonly text: string;
  readonly sigs: readonly NoteSignature[];
  readonly unverifiedSigs: readonly NoteSignature[];
}

/** keyHash: the first four bytes (big-endian) of SHA-256(name ‖ "\n" ‖ key). */
export function noteKeyHash(name: string, key: Buffer): number {
  return createHash('sha256').update(name).update('\n').update(key).digest().readUInt32BE(0);
}

/** isValidName: non-empty UTF-8 with no Unicode spaces and no '+'. */
export function isValidNoteName(name: string): boolean {
  // unicode.IsSpace: the ASCII spaces, U+0085, U+00A0 and the Unicode White_Space letters.
  return name !== '' && isWellFormedUnicode(name) && !/[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/.test(name) && !name.includes('+');
}

function chop(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

/** Go's base64.StdEncoding.DecodeString: padded, strict alphabet; undefined when malformed. */
function decodeStdBase64(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(={0,2})$/.test(s)) return undefined;
  // Buffer.from ignores characters outside the alphabet: the pattern above is the real check.
  return Buffer.from(s, 'base64');
}

const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An ed25519 public KeyObject from the raw 32 bytes. */
export function ed25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

/** An ed25519 private KeyObject from the 32-byte seed. */
export function ed25519PrivateKey(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of an ed25519 KeyObject (public or private). */
export function ed25519RawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519.length);
}

/** NewVerifier: parses `name+hash+keydata`; throws NoteError as Go does (malformed id, bad hash, unknown algorithm). */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const [name, rest] = chop(vkey, '+');
  const [hash16, key64] = chop(rest, '+');
  const key = decodeStdBase64(key64);
  if (hash16.length !== 8 || !/^[0-9a-fA-F]{8}$/.test(hash16) || key === undefined || !isValidNoteName(name) || key.length === 0) {
    throw new NoteError('malformed verifier id');
  }
  const hash = parseInt(hash16, 16);
  if (hash !== noteKeyHash(name, key)) throw new NoteError('invalid verifier hash');
  if (key[0] !== ALG_ED25519) throw new NoteError('unknown verifier algorithm');
  const raw = key.subarray(1);
  if (raw.length !== 32) throw new NoteError('malformed verifier id');
  const pub = ed25519PublicKey(raw);
  return {
    name,
    keyHash: hash,
    key: vkey,
    verify: (msg, sig) => sig.length === 64 && cryptoVerify(null, msg, pub, sig),
  };
}

/** NewSigner: parses `PRIVATE+KEY+name+hash+keydata`, checking the hash against the derived public key. */
export function parseSignerKey(skey: string): NoteSigner {
  const [priv1, r1] = chop(skey, '+');
  const [priv2, r2] = chop(r1, '+');
  const [name, r3] = chop(r2, '+');
  const [hash16, key64] = chop(r3, '+');
  const key = decodeStdBase64(key64);
  if (priv1 !== 'PRIVATE' || priv2 !== 'KEY' || !/^[0-9a-fA-F]{8}$/.test(hash16) || key === undefined || !isValidNoteName(name) || key.length === 0) {
    throw new NoteError('malformed signer id');
  }
  if (key[0] !== ALG_ED25519) throw new NoteError('unknown signer algorithm');
  const seed = key.subarray(1);
  if (seed.length !== 32) throw new NoteError('malformed signer id');
  const priv = ed25519PrivateKey(seed);
  const pubkey = Buffer.concat([Buffer.from([ALG_ED25519]), ed25519RawPublicKey(priv)]);
  const hash = parseInt(hash16, 16);
  if (hash !== noteKeyHash(name, pubkey)) throw new NoteError('invalid signer hash');
  return { name, keyHash: hash, sign: (msg) => cryptoSign(null, msg, priv) };
}

/** The verifier and signer key strings for an ed25519 key pair given by its seed (note.GenerateKey). */
export function noteKeysFromSeed(name: string, seed: Buffer): { signerKey: string; verifierKey: string } {
  if (!isValidNoteName(name)) throw new NoteError(`invalid key name ${JSON.stringify(name)}`);
  const pubkey = Buffer.concat([Buffer.from([ALG_ED25519]), ed25519RawPublicKey(ed25519PrivateKey(seed))]);
  const privkey = Buffer.concat([Buffer.from([ALG_ED25519]), seed]);
  const h = noteKeyHash(name, pubkey).toString(16).padStart(8, '0');
  return {
    signerKey: `PRIVATE+KEY+${name}+${h}+${privkey.toString('base64')}`,
    verifierKey: `${name}+${h}+${pubkey.toString('base64')}`,
  };
}

/**
 * Open: parses `msg` and verifies its signatures with the known verifiers. A signature by a
 * known key that does not verify is an error; signatures by unknown keys are listed as
 * unverified; a note with no verified signature is an error ("note has no verifiable signatures").
 */
export function openNote(msg: Buffer, known: readonly NoteVerifier[]): Note {
  const malformed = (): NoteError => new NoteError('malformed note');
  const str = msg.toString('utf8');
  if (!Buffer.from(str, 'utf8').equals(msg)) throw malformed();
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) throw malformed();
  }
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw malformed();
  const text = msg.subarray(0, split + 1);
  let sigs = msg.subarray(split + 2);
  if (sigs.length === 0 || sigs[sigs.length - 1] !== 0x0a) throw malformed();
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<string>();
  const seenUnverified = new Set<string>();
  let numSig = 0;
  while (sigs.length > 0) {
    const i = sigs.indexOf(0x0a);
    let line = sigs.subarray(0, i).toString('utf8');
    sigs = sigs.subarray(i + 1);
    if (!line.startsWith(SIG_PREFIX)) throw malformed();
    line = line.slice(SIG_PREFIX.length);
    const [name, b64] = chop(line, ' ');
    const sig = decodeStdBase64(b64);
    if (sig === undefined || !isValidNoteName(name) || b64 === '' || sig.length < 5) throw malformed();
    const hash = sig.readUInt32BE(0);
    if (++numSig > 100) throw malformed();
    const matches = known.filter((v) => v.name === name && v.keyHash === hash);
    if (matches.length === 0) {
      if (seenUnverified.has(line)) continue;
      seenUnverified.add(line);
      unverified.push({ name, hash, base64: b64 });
      continue;
    }
    if (matches.length > 1) throw new NoteError(`ambiguous key ${name}+${hash.toString(16).padStart(8, '0')}`);
    const key = `${name}+${hash}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (!matches[0]!.verify(text, sig.subarray(4))) {
      throw new NoteError(`invalid signature for key ${name}+${hash.toString(16).padStart(8, '0')}`);
    }
    verified.push({ name, hash, base64: b64 });
  }
  const note: Note = { text: text.toString('utf8'), sigs: verified, unverifiedSigs: unverified };
  if (verified.length === 0) {
    const by = unverified.map((s) => `${s.name}+${s.hash.toString(16).padStart(8, '0')}`).join(', ');
    throw new NoteError(`note has no verifiable signatures${by ? ` (signed by unknown key ${by})` : ''}`);
  }
  return note;
}

/** Sign: the signed note for `text` (which must end in a newline) with the given signers. */
export function signNote(text: string, signers: readonly NoteSigner[]): Buffer {
  if (!text.endsWith('\n')) throw new NoteError('malformed note');
  const body = Buffer.from(text, 'utf8');
  let sigs = '';
  for (const s of signers) {
    if (!isValidNoteName(s.name)) throw new NoteError('invalid signer');
    const hbuf = Buffer.alloc(4);
    hbuf.writeUInt32BE(s.keyHash >>> 0, 0);
    sigs += `${SIG_PREFIX}${s.name} ${Buffer.concat([hbuf, s.sign(body)]).toString('base64')}\n`;
  }
  return Buffer.concat([body, Buffer.from('\n'), Buffer.from(sigs, 'utf8')]);
}
