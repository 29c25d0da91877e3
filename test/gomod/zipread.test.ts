// Small zips are read by yauzl from memory, big ones streamed by yauzl from their file
// (zipread.ts): both must answer exactly alike, for good zips and for every kind of damage.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryError } from '../../errors/index.js';
import { hash1 } from '../../gomod/index.js';
import { checkModuleZip } from '../../gomod/zipcheck.js';
import { hashEntry, openZip } from '../../gomod/zipread.js';
import { makeBadZip, writeModuleZip, type BadZipEntry } from '../helpers/goproxy-tree.js';

const P = 'github.com/x/y@v1.0.0/';

type Outcome = { ok: unknown } | { err: unknown };

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: await p };
  } catch (err) {
    return { err };
  }
}

// A streamed overrun is noticed a chunk late: only the count after "got at least" may differ.
const norm = (r: Outcome): unknown =>
  'err' in r ? { code: (r.err as FerryError).code, message: (r.err as Error).message.replace(/got at least \d+/, 'got at least N') } : r;

describe('small zips read whole answer like big zips streamed', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-zipmem-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Every entry hashed by yauzl: from the file, as zips over IN_MEMORY_ZIP are, or from memory. */
  function read(file: string, data?: Buffer): Promise<Outcome> {
    return outcome(
      (async () => {
        const z = await openZip(file, undefined, data);
        try {
          const files = [];
          for (const e of z.entries) files.push({ name: e.name, sha256: await hashEntry(z, e, file) });
          return hash1(files);
        } finally {
          z.close();
        }
      })(),
    );
  }
  const streamed = (file: string): Promise<Outcome> => read(file);
  const whole = async (file: string): Promise<Outcome> => read(file, await readFile(file));

  async function same(file: string): Promise<Outcome> {
    const s = await streamed(file);
    const w = await whole(file);
    expect(norm(w)).toEqual(norm(s));
    return w;
  }

  it.each<[string, BadZipEntry[]]>([
    ['good data', [{ name: `${P}a.go`, data: 'package y\n' }, { name: `${P}d/` }, { name: `${P}empty` }]],
    ['data longer than declared', [{ name: `${P}bomb.bin`, data: Buffer.alloc(100_000), declaredSize: 10 }]],
    ['data shorter than declared', [{ name: `${P}short.bin`, data: 'abc', declaredSize: 50 }]],
    ['a big entry longer than declared', [{ name: `${P}big.bin`, data: Buffer.alloc(3 << 20), declaredSize: 2 << 20 }]],
    ['a big entry shorter than declared', [{ name: `${P}big.bin`, data: Buffer.alloc(2 << 20), declaredSize: 3 << 20 }]],
    ['a directory entry with data', [{ name: `${P}d/`, data: 'x' }]],
  ])('%s', async (label, entries) => {
    const file = join(dir, `${label.replace(/ /g, '-')}.zip`);
    await makeBadZip(file, entries);
    await same(file);
  });

  it('a zip written by a zip library, with an entry over the one-call size', async () => {
    const file = join(dir, 'real.zip');
    await writeModuleZip(file, 'github.com/x/y', 'v1.0.0', { 'go.mod': 'module github.com/x/y\n', 'a.go': 'package y\n', 'blob.bin': randomBytes(1_500_000) });
    expect('ok' in (await same(file))).toBe(true);
  });

  it('damaged directories fail alike', async () => {
    const good = join(dir, 'base.zip');
    await makeBadZip(good, [{ name: `${P}a.go`, data: 'package y\n' }, { name: `${P}b.go`, data: 'package y\n' }]);
    const bytes = await readFile(good);
    const eocd = bytes.length - 22;
    const cdStart = bytes.readUInt32LE(eocd + 16);
    const dataStart = 30 + bytes.readUInt16LE(26) + bytes.readUInt16LE(28);
    const variants: Array<[string, Buffer]> = [
      ['empty file', Buffer.alloc(0)],
      ['not a zip', randomBytes(300)],
      ['truncated', bytes.subarray(0, bytes.length - 30)],
      ['trailing bytes', Buffer.concat([bytes, Buffer.from('junk')])],
      ['central directory offset past the end', Buffer.concat([bytes.subarray(0, eocd + 16), Buffer.from([0xff, 0xff, 0, 0]), bytes.subarray(eocd + 20)])],
      ['bad central header signature', Buffer.concat([bytes.subarray(0, cdStart), Buffer.from('XXXX'), bytes.subarray(cdStart + 4)])],
      ['multi-disk', Buffer.concat([bytes.subarray(0, eocd + 4), Buffer.from([1, 0]), bytes.subarray(eocd + 6)])],
      ['bad local header', Buffer.concat([Buffer.from('XXXX'), bytes.subarray(4)])],
      ['damaged deflate data', Buffer.concat([bytes.subarray(0, dataStart), Buffer.alloc(4, 0xff), bytes.subarray(dataStart + 4)])],
    ];
    for (const [label, content] of variants) {
      const file = join(dir, `dmg-${label.replace(/ /g, '-')}.zip`);
      await writeFile(file, content);
      const got = await same(file);
      expect('err' in got, label).toBe(true);
    }
  });

  it('reads no content when the declared sizes exceed the limit', async () => {
    // The declared size is a lie (3 bytes of data): the check must refuse on the declaration alone.
    const file = join(dir, 'declared.zip');
    await makeBadZip(file, [{ name: `${P}a.bin`, data: 'abc', declaredSize: 600 }, { name: `${P}d/` }]);
    const data = await readFile(file);
    await expect(checkModuleZip(file, { module: 'github.com/x/y', version: 'v1.0.0', maxZipSize: 500, data })).rejects.toThrow(
      'total uncompressed size of module contents too large (max size is 500 bytes)',
    );
  });
});
