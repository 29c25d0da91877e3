// Store.importFile (adopting a validated temp file by rename), index:false writes and
// putModuleVersion(s) recording blob rows with the version in one commit.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import type { Digest } from '../../oci/index.js';
import type { ModuleVersionInput } from '../../store/index.js';
import { blob, tempStore, tmpFiles } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function store(): ReturnType<typeof tempStore> {
  const t = tempStore();
  cleanups.push(t.cleanup);
  return t;
}

function version(v: string, info: Digest, mod: Digest, zip: Digest): ModuleVersionInput {
  return { module: 'example.com/m', version: v, time: '2024-01-01T00:00:00Z', infoDigest: info, modDigest: mod, zipDigest: zip, h1Zip: 'h1:zip', h1Mod: 'h1:mod', root: 'r' };
}

describe('importFile', () => {
  it('moves a file from makeTempDir into place by rename and records it', async () => {
    const { store: s, dir } = store();
    const b = blob('zip bytes');
    const tmp = await s.content.makeTempDir('t');
    expect(tmp.startsWith(join(dir, 'tmp'))).toBe(true);
    const file = join(tmp, 'a.zip');
    writeFileSync(file, b.bytes);
    const r = await s.content.importFile(file, b.digest, b.bytes.length, { mediaType: 'application/zip' });
    expect(r).toEqual({ digest: b.digest, size: b.bytes.length, written: true });
    expect(existsSync(file)).toBe(false);
    expect(readFileSync(s.content.blobPath(b.digest))).toEqual(b.bytes);
    expect(s.content.getBlob(b.digest)?.mediaType).toBe('application/zip');
  });

  it('leaves the file when the blob is already stored; refuses a wrong size', async () => {
    const { store: s } = store();
    const b = blob('same');
    await s.content.writeBlobBytes(b.digest, b.bytes);
    const tmp = await s.content.makeTempDir('t');
    const file = join(tmp, 'x');
    writeFileSync(file, b.bytes);
    expect((await s.content.importFile(file, b.digest, b.bytes.length)).written).toBe(false);
    expect(existsSync(file)).toBe(true);
    const other = blob('other bytes');
    writeFileSync(file, other.bytes);
    const err = await s.content.importFile(file, other.digest, other.bytes.length + 1).catch((e: unknown) => e);
    expect(isFerryError(err) && err.code).toBe('SIZE_MISMATCH');
    expect(s.content.hasBlob(other.digest)).toBe(false);
  });
});

describe('index:false and putModuleVersion(s) with blobs', () => {
  it('places files without rows, then records rows and versions in one call', async () => {
    const { store: s, dir } = store();
    const info = blob('{"Version":"v1.0.0"}');
    const mod = blob('module example.com/m\n');
    const zip = blob('zip');
    const zip2 = blob('zip2');
    for (const b of [info, mod, zip, zip2]) {
      const r = await s.content.writeBlobBytes(b.digest, b.bytes, { index: false });
      expect(r.written).toBe(true);
      expect(s.content.hasBlob(b.digest)).toBe(false);
    }
    // A second unindexed write of the same bytes is not written again.
    expect((await s.content.writeBlobBytes(info.digest, info.bytes, { index: false })).written).toBe(false);
    const blobs = (bs: Array<{ digest: Digest; bytes: Buffer }>): Array<{ digest: Digest; size: number }> => bs.map((b) => ({ digest: b.digest, size: b.bytes.length }));
    const rs = s.modules.putMany([
      { row: version('v1.0.0', info.digest, mod.digest, zip.digest), opts: { blobs: blobs([info, mod, zip]) } },
      { row: version('v1.1.0', info.digest, mod.digest, zip2.digest), opts: { blobs: blobs([info, mod, zip2]) } },
      // Not in place, not stored: this entry alone fails.
      { row: version('v1.2.0', info.digest, mod.digest, blob('missing').digest) },
    ]);
    expect(rs[0]).toMatchObject({ changed: true });
    expect(rs[1]).toMatchObject({ changed: true });
    expect(isFerryError(rs[2]) && rs[2].code).toBe('BLOB_UNKNOWN');
    for (const b of [info, mod, zip, zip2]) expect(s.content.hasBlob(b.digest)).toBe(true);
    expect(s.modules.list().map((m) => m.version)).toEqual(['v1.0.0', 'v1.1.0']);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('refuses to record a blob whose file is not in place', async () => {
    const { store: s } = store();
    const info = blob('i');
    const mod = blob('m');
    await s.content.writeBlobBytes(info.digest, info.bytes);
    await s.content.writeBlobBytes(mod.digest, mod.bytes);
    const zip = blob('never written');
    const err = (() => {
      try {
        return s.modules.put(version('v1.0.0', info.digest, mod.digest, zip.digest), { blobs: [{ digest: zip.digest, size: zip.bytes.length }] });
      } catch (e) {
        return e;
      }
    })();
    expect(isFerryError(err) && err.code).toBe('BLOB_UNKNOWN');
    expect(s.content.hasBlob(zip.digest)).toBe(false);
    expect(s.modules.list()).toEqual([]);
  });
});
