// The in-memory read path of small zips must answer exactly like the streamed path of big ones.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryError } from '../../errors/index.js';
import { hash1 } from '../../goproxy/index.js';
import { hashEntry, openZip } from '../../goproxy/zipread.js';
import { makeBadZip } from '../helpers/goproxy-tree.js';

const P = 'github.com/x/y@v1.0.0/';

async function outcome(p: Promise<unknown>): Promise<{ ok: unknown } | { err: unknown }> {
  try {
    return { ok: await p };
  } catch (err) {
    return { err };
  }
}

describe('in-memory zip reading', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-zipmem-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Hashes every entry of `file` read whole (inMemoryMax large) or streamed (0). */
  async function hashAll(file: string, inMemoryMax: number): Promise<{ ok: unknown } | { err: unknown }> {
    const z = await openZip(file, undefined, inMemoryMax);
    try {
      expect(z.data !== undefined).toBe(inMemoryMax > 0);
      return await outcome((async () => hash1(await Promise.all(z.entries.map(async (e) => ({ name: e.name, sha256: await hashEntry(z, e, file) })))))());
    } finally {
      z.close();
    }
  }

  it.each([
    ['good data', [{ name: `${P}a.go`, data: 'package y\n' }, { name: `${P}d/` }, { name: `${P}empty` }]],
    ['data longer than declared', [{ name: `${P}bomb.bin`, data: Buffer.alloc(100_000), declaredSize: 10 }]],
    ['data shorter than declared', [{ name: `${P}short.bin`, data: 'abc', declaredSize: 50 }]],
    ['a directory entry with data', [{ name: `${P}d/`, data: 'x' }]],
  ])('gives the same answer both ways: %s', async (label, entries) => {
    const file = join(dir, `${label.replace(/ /g, '-')}.zip`);
    await makeBadZip(file, entries);
    const streamed = await hashAll(file, 0);
    const whole = await hashAll(file, 1 << 20);
    // A streamed overrun is noticed a chunk late: only the count after "got at least" differs.
    const norm = (r: { ok: unknown } | { err: unknown }): unknown =>
      'err' in r ? { code: (r.err as FerryError).code, message: (r.err as Error).message.replace(/got at least \d+/, 'got at least N') } : r;
    expect(norm(whole)).toEqual(norm(streamed));
  });
});
