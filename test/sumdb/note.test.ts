// Signed notes (golang.org/x/mod/sumdb/note) against the example produced by Go in note.go's
// documentation, GOSUMDB parsing, and GONOSUMDB pattern matching.
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { matchPrefixPatterns, pathMatch } from '../../gomod/match.js';
import { parseSumdbSetting, recordHashes, sumdbLookupPath } from '../../sumdb/client.js';
import { noteKeyHash, noteKeysFromSeed, openNote, parseSignerKey, parseVerifierKey, signNote } from '../../sumdb/note.js';

const VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIGNED = `${TEXT}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
const ENOCH = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

describe('signed notes', () => {
  it('opens the note Go signed, and signs it byte for byte the same (ed25519 is deterministic)', () => {
    const v = parseVerifierKey(VKEY);
    expect(v.name).toBe('PeterNeumann');
    expect(v.keyHash).toBe(0xc74f20a3);
    const n = openNote(Buffer.from(SIGNED), [v]);
    expect(n.text).toBe(TEXT);
    expect(n.sigs).toEqual([{ name: 'PeterNeumann', hash: 0xc74f20a3, base64: 'x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=' }]);
    expect(signNote(TEXT, [parseSignerKey(SKEY)]).toString()).toBe(SIGNED);
  });

  it('lists signatures by unknown keys as unverified and refuses notes no known key signed', () => {
    const n = openNote(Buffer.from(SIGNED + ENOCH), [parseVerifierKey(VKEY)]);
    expect(n.unverifiedSigs.map((s) => s.name)).toEqual(['EnochRoot']);
    const other = noteKeysFromSeed('PeterNeumann', Buffer.alloc(32, 7));
    expect(() => openNote(Buffer.from(SIGNED), [parseVerifierKey(other.verifierKey)])).toThrow(/note has no verifiable signatures \(signed by unknown key PeterNeumann\+c74f20a3\)/);
  });

  it('refuses a changed text, a bad signature and malformed notes', () => {
    const v = parseVerifierKey(VKEY);
    expect(() => openNote(Buffer.from(SIGNED.replace('answer', 'Answer')), [v])).toThrow('invalid signature for key PeterNeumann+c74f20a3');
    for (const bad of [TEXT, `${TEXT}\n— PeterNeumann !!!\n`, `${TEXT}\nPeterNeumann x08go\n`, `${TEXT}\n— PeterNeumann AAAA\n`, SIGNED.slice(0, -1), `a\x01b\n${SIGNED}`]) {
      expect(() => openNote(Buffer.from(bad), [v]), JSON.stringify(bad)).toThrow('malformed note');
    }
  });

  it('parses verifier keys as note.NewVerifier does', () => {
    const sum = parseVerifierKey('sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8');
    expect(sum.name).toBe('sum.golang.org');
    expect(sum.keyHash).toBe(0x033de0ae);
    expect(() => parseVerifierKey('sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8')).toThrow('invalid verifier hash');
    expect(() => parseVerifierKey('sum.golang.org+033de0ae')).toThrow('malformed verifier id');
    expect(() => parseVerifierKey('bad name+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8')).toThrow('malformed verifier id');
    const k = noteKeysFromSeed('x.test', Buffer.alloc(32, 1));
    expect(parseVerifierKey(k.verifierKey).keyHash).toBe(noteKeyHash('x.test', Buffer.from(k.verifierKey.split('+')[2]!, 'base64')));
  });
});

describe('GOSUMDB settings', () => {
  it('knows sum.golang.org and takes name+hash+key with an optional URL', () => {
    const s = parseSumdbSetting('sum.golang.org');
    expect(s.off).toBe(false);
    if (!s.off) {
      expect(s.name).toBe('sum.golang.org');
      expect(s.directUrl).toBe('https://sum.golang.org');
    }
    expect(parseSumdbSetting('off')).toEqual({ off: true });
    const k = noteKeysFromSeed('sumdb.corp.test', Buffer.alloc(32, 2)).verifierKey;
    const p = parseSumdbSetting(`${k} http://127.0.0.1:9/sumdb`);
    expect(!p.off && p.directUrl).toBe('http://127.0.0.1:9/sumdb');
    const cn = parseSumdbSetting('sum.golang.google.cn');
    expect(!cn.off && [cn.name, cn.directUrl]).toEqual(['sum.golang.org', 'https://sum.golang.google.cn/']);
    for (const bad of ['nonsense', `${k} ftp://x`, `${k} http://x extra`]) {
      let err: unknown;
      try {
        parseSumdbSetting(bad);
      } catch (e) {
        err = e;
      }
      expect(isFerryError(err, 'CONFIG_INVALID'), bad).toBe(true);
    }
  });

  it('escapes lookup paths and reads both h1 lines of a record', () => {
    expect(sumdbLookupPath('github.com/Azure/go', 'v1.0.0-RC1')).toBe('lookup/github.com/!azure/go@v1.0.0-!r!c1');
    const text = 'example.com/m v1.0.0 h1:zip=\nexample.com/m v1.0.0/go.mod h1:mod=\n';
    expect(recordHashes(text, 'example.com/m', 'v1.0.0')).toEqual({ h1Zip: 'h1:zip=', h1Mod: 'h1:mod=' });
    expect(recordHashes(text, 'example.com/m', 'v1.0.1')).toEqual({ h1Zip: undefined, h1Mod: undefined });
  });
});

describe('GONOSUMDB patterns (module.MatchPrefixPatterns)', () => {
  it('matches path prefixes element by element with path.Match', () => {
    expect(matchPrefixPatterns('corp.example.com', 'corp.example.com/a/b')).toBe(true);
    expect(matchPrefixPatterns('corp.example.com', 'corp.example.community/a')).toBe(false);
    expect(matchPrefixPatterns('*.corp.com,rsc.io/private', 'git.corp.com/x')).toBe(true);
    expect(matchPrefixPatterns('*.corp.com,rsc.io/private', 'rsc.io/private/quote')).toBe(true);
    expect(matchPrefixPatterns('*.corp.com,rsc.io/private', 'rsc.io/public')).toBe(false);
    expect(matchPrefixPatterns('github.com/org/*/', 'github.com/org/repo/sub')).toBe(true);
    expect(matchPrefixPatterns('github.com/org/*', 'github.com/org')).toBe(false);
    expect(matchPrefixPatterns(',,', 'x.com')).toBe(false);
    expect(matchPrefixPatterns('[', 'x.com')).toBe(false);
    expect(pathMatch('a?c', 'abc')).toBe(true);
    expect(pathMatch('a[b-d]c', 'acc')).toBe(true);
    expect(pathMatch('a[^b]c', 'abc')).toBe(false);
    expect(pathMatch('a*', 'a/b')).toBe(false);
    expect(() => pathMatch('a[', 'ab')).toThrow('syntax error in pattern');
  });
});
