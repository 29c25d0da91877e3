import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { checkModuleZip, cleanPath, foldKey, hashZip } from '../../gomod/index.js';
import { makeBadZip, writeModuleZip, type BadZipEntry } from '../helpers/goproxy-tree.js';

const MOD = 'github.com/x/y';
const VER = 'v1.0.0';
const P = `${MOD}@${VER}/`;

describe('checkModuleZip', () => {
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-zipcheck-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function bad(entries: BadZipEntry[], opts: { maxZipSize?: number; module?: string; version?: string } = {}): Promise<Error> {
    const file = join(dir, `bad${n++}.zip`);
    await makeBadZip(file, entries);
    try {
      await checkModuleZip(file, { module: opts.module ?? MOD, version: opts.version ?? VER, ...(opts.maxZipSize ? { maxZipSize: opts.maxZipSize } : {}) });
    } catch (err) {
      return err as Error;
    }
    throw new Error('zip was accepted');
  }

  function expectZipInvalid(err: Error, rule: string): void {
    expect(isFerryError(err, 'ZIP_INVALID'), err.message).toBe(true);
    expect(err.message).toContain(`${MOD}@${VER}: `);
    expect(err.message).toContain(rule);
    expect((err as { details?: { module?: string; version?: string } }).details).toMatchObject({ module: MOD, version: VER });
  }

  it('accepts a good zip and returns the same h1 as hashZip', async () => {
    const file = join(dir, 'good.zip');
    await writeModuleZip(file, MOD, VER, { 'go.mod': `module ${MOD}\n`, 'a.go': 'package y\n', 'LICENSE': 'MIT', 'dir/ñ.go': 'package dir\n' });
    const r = await checkModuleZip(file, { module: MOD, version: VER });
    expect(r.files).toBe(4);
    expect(r.uncompressed).toBe(`module ${MOD}\n`.length + 'package y\n'.length + 3 + 'package dir\n'.length);
    expect(r.h1).toBe(await hashZip(file));
  });

  it('accepts directory entries and the bare prefix entry, which still count in the hash', async () => {
    const file = join(dir, 'dirs.zip');
    await makeBadZip(file, [{ name: P }, { name: `${P}sub/` }, { name: `${P}sub/a.go`, data: 'package sub\n' }]);
    const r = await checkModuleZip(file, { module: MOD, version: VER });
    expect(r.files).toBe(1);
    expect(r.h1).toBe(await hashZip(file));
  });

  it('refuses ../ paths', async () => {
    expectZipInvalid(await bad([{ name: `${P}../evil`, data: 'x' }]), 'malformed file path "../evil": invalid path element ".."');
  });

  it('refuses unclean paths', async () => {
    expectZipInvalid(await bad([{ name: `${P}a/../b.go`, data: 'x' }]), `zip entry "${P}a/../b.go": file path is not clean`);
    expectZipInvalid(await bad([{ name: `${P}./b.go`, data: 'x' }]), 'file path is not clean');
  });

  it('refuses case-insensitive collisions, including through directories and Unicode folding', async () => {
    expectZipInvalid(await bad([{ name: `${P}README`, data: 'a' }, { name: `${P}readme`, data: 'b' }]), 'case-insensitive file name collision: "README" and "readme"');
    expectZipInvalid(await bad([{ name: `${P}Dir/a.go`, data: 'a' }, { name: `${P}dir/b.go`, data: 'b' }]), 'case-insensitive file name collision: "Dir" and "dir"');
    // U+212A KELVIN SIGN folds with k and K.
    expectZipInvalid(await bad([{ name: `${P}k.go`, data: 'a' }, { name: `${P}\u212a.go`, data: 'b' }]), 'case-insensitive file name collision');
  });

  it('refuses duplicate names and a name that is both file and directory', async () => {
    expectZipInvalid(await bad([{ name: `${P}a.go`, data: 'a' }, { name: `${P}a.go`, data: 'b' }]), 'multiple entries for file "a.go"');
    expectZipInvalid(await bad([{ name: `${P}a`, data: 'a' }, { name: `${P}a/b.go`, data: 'b' }]), 'entry "a" is both a file and a directory');
  });

  it('refuses a go.mod outside the root, and a wrongly cased go.mod', async () => {
    expectZipInvalid(await bad([{ name: `${P}sub/go.mod`, data: 'module x\n' }]), 'go.mod file not in module root directory');
    expectZipInvalid(await bad([{ name: `${P}GO.MOD`, data: 'module x\n' }]), 'go.mod files must have lowercase names');
  });

  it('refuses entries without the module@version/ prefix', async () => {
    expectZipInvalid(await bad([{ name: 'github.com/x/y@v1.0.1/a.go', data: 'x' }]), `path does not have prefix "${P}"`);
    expectZipInvalid(await bad([{ name: 'a.go', data: 'x' }]), 'path does not have prefix');
    // The prefix uses the unescaped path.
    const err = await bad([{ name: 'github.com/!x/y@v1.0.0/a.go', data: 'x' }], { module: 'github.com/X/y' });
    expect(err.message).toContain('path does not have prefix "github.com/X/y@v1.0.0/"');
  });

  it('refuses bad characters, Windows names, and invalid UTF-8', async () => {
    expectZipInvalid(await bad([{ name: `${P}a:b.go`, data: 'x' }]), "invalid char ':'");
    expectZipInvalid(await bad([{ name: `${P}con.go`, data: 'x' }]), '"con" disallowed as path element component on Windows');
    expectZipInvalid(await bad([{ name: `${P}x./a.go`, data: 'x' }]), 'trailing dot in path element');
    expectZipInvalid(await bad([{ name: Buffer.concat([Buffer.from(P), Buffer.from([0xff, 0x2e, 0x67, 0x6f])]), data: 'x' }]), 'invalid UTF-8');
  });

  it('refuses a declared total size over the limit before reading any data', async () => {
    // 4 KiB of zeros compresses to a few bytes: the zip is small, its contents are not.
    const err = await bad([{ name: `${P}big.bin`, data: Buffer.alloc(4096) }], { maxZipSize: 2048 });
    expectZipInvalid(err, 'total uncompressed size of module contents too large (max size is 2048 bytes)');
  });

  it('refuses a zip file over the limit', async () => {
    const err = await bad([{ name: `${P}big.bin`, data: randomBytes(4096) }], { maxZipSize: 1024 });
    expectZipInvalid(err, 'module zip file is too large');
  });

  it('refuses data longer than its declared size (zip bomb)', async () => {
    const err = await bad([{ name: `${P}bomb.bin`, data: Buffer.alloc(100_000), declaredSize: 10 }]);
    expectZipInvalid(err, `zip entry "${P}bomb.bin": cannot read`);
  });

  it('refuses a non-canonical version or a mismatched major version', async () => {
    const err = await bad([{ name: 'github.com/x/y@v1.0/a.go', data: 'x' }], { version: 'v1.0' });
    expect(isFerryError(err, 'VERSION_INVALID')).toBe(true);
    expect(err.message).toContain('is not canonical (should be "v1.0.0")');
    const err2 = await bad([{ name: 'github.com/x/y@v2.0.0/a.go', data: 'x' }], { version: 'v2.0.0' });
    expect(isFerryError(err2, 'VERSION_INVALID')).toBe(true);
  });

  it('refuses a file that is not a zip', async () => {
    const file = join(dir, 'notzip.zip');
    await writeFile(file, 'not a zip at all, just text');
    await expect(checkModuleZip(file, { module: MOD, version: VER })).rejects.toMatchObject({ code: 'ZIP_INVALID' });
  });
});

describe('zip helpers', () => {
  it('cleanPath is Go path.Clean', () => {
    expect(cleanPath('')).toBe('.');
    expect(cleanPath('a/b/../c')).toBe('a/c');
    expect(cleanPath('../a')).toBe('../a');
    expect(cleanPath('/../a')).toBe('/a');
    expect(cleanPath('a//b/./c/')).toBe('a/b/c');
    expect(cleanPath('a/../..')).toBe('..');
  });

  it('foldKey follows simple case folding', () => {
    expect(foldKey('ABC')).toBe('abc');
    expect(foldKey('\u212a')).toBe(foldKey('k'));
    expect(foldKey('ſ')).toBe(foldKey('S'));
    expect(foldKey('µ')).toBe(foldKey('Μ'));
    expect(foldKey('ς')).toBe(foldKey('Σ'));
    // Go does not fold dotless i or dotted capital I with ASCII i.
    expect(foldKey('ı')).not.toBe(foldKey('i'));
    expect(foldKey('İ')).not.toBe(foldKey('i'));
  });
});
