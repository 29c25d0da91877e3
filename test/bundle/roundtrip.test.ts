// Writer → reader round trips: entry order, tar headers, splitting, determinism, and a write
// that fails on a digest mismatch leaving nothing behind.
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bufferEntry,
  IMPORT_SCRIPT,
  openBundle,
  parsePartsManifest,
  SpooledEntry,
  writeBundle,
  type BundleEntry,
} from '../../bundle/index.js';
import { isFerryError } from '../../errors/index.js';
import { makeFixture, makeKeys, tarDataOffset, tempDir, writeFixture, type Fixture } from './fixtures.js';

let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let fx: Fixture;

beforeAll(async () => {
  dir = await tempDir();
  keys = await makeKeys(dir);
  fx = await makeFixture(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The tar with the signature's data block zeroed: ECDSA nonces are random, everything else is fixed. */
function maskSignature(tar: Buffer): Buffer {
  const copy = Buffer.from(tar);
  // Header too: a DER signature is 70-72 bytes, so its base64 length (entry size) may vary.
  const at = tarDataOffset(copy, 'ferry-bundle.json.sig');
  copy.fill(0, at - 512, at + 512);
  return copy;
}

async function headers(tar: Buffer): Promise<Header[]> {
  const out: Header[] = [];
  const ex = tarExtract();
  Readable.from([tar]).pipe(ex);
  for await (const e of ex) {
    out.push(e.header);
    e.resume();
  }
  return out;
}

describe('writeBundle + openBundle', () => {
  it('round-trips every entry in canonical order with fixed tar headers', async () => {
    const out = join(dir, 'single');
    await import('node:fs/promises').then((fs) => fs.mkdir(out));
    const res = await writeFixture(out, fx, keys.privateKey);
    expect((await readdir(out)).sort()).toEqual(['ferry-20240101-0001.parts.json', 'ferry-20240101-0001.parts.json.sig', 'ferry-20240101-0001.tar', 'import.sh']);
    expect(res.parts.parts).toHaveLength(1);

    const tar = await readFile(join(out, 'ferry-20240101-0001.tar'));
    const hs = await headers(tar);
    const names = hs.map((h) => h.name);
    expect(names.slice(0, 5)).toEqual(['ferry-bundle.json', 'ferry-bundle.json.sig', 'import.sh', 'oci-layout', 'index.json']);
    const blobNames = names.filter((n) => n.startsWith('blobs/'));
    expect(blobNames).toEqual([...blobNames].sort());
    expect(names.slice(5, 5 + blobNames.length)).toEqual(blobNames);
    expect(names.slice(5 + blobNames.length).every((n) => n.startsWith('gomod/'))).toBe(true);
    for (const h of hs) {
      expect(h.mtime?.getTime()).toBe(0);
      expect([h.uid, h.gid, h.uname, h.gname, h.type]).toEqual([0, 0, '', '', 'file']);
      expect(h.mode).toBe(h.name === 'import.sh' ? 0o755 : 0o644);
    }

    const b = await openBundle(join(out, 'ferry-20240101-0001.tar'), { trust: keys.trust });
    expect(b.signer).toBe('ferry.pub');
    expect(b.manifest.id).toBe(fx.manifest.id);
    expect(b.manifest.files.map((f) => f.path)).toEqual(names.slice(2));
    const got = new Map<string, Buffer>();
    for await (const e of b.entries()) {
      const chunks: Buffer[] = [];
      for await (const c of e.stream) chunks.push(c as Buffer);
      got.set(e.path, Buffer.concat(chunks));
    }
    expect(got.get('import.sh')?.toString()).toBe(IMPORT_SCRIPT);
    for (const blob of fx.blobs) expect(got.get(`blobs/sha256/${blob.digest.slice(7)}`)?.equals(blob.bytes)).toBe(true);
    expect(await readFile(join(out, 'import.sh'), 'utf8')).toBe(IMPORT_SCRIPT);
  });

  it('splits into parts of at most splitSize that cat back into the same tar, deterministically', async () => {
    const a = join(dir, 'split-a');
    const c = join(dir, 'split-c');
    const fs = await import('node:fs/promises');
    await fs.mkdir(a);
    await fs.mkdir(c);
    const whole = await writeFixture(c, fx, keys.privateKey);
    const split = await writeFixture(a, fx, keys.privateKey, { splitSize: 4096 });
    expect(split.parts.parts.length).toBeGreaterThan(3);
    expect(split.totalSize).toBe(whole.totalSize);
    const parts = split.parts.parts.map((p) => p.file);
    expect(parts[0]).toBe('ferry-20240101-0001.tar.001');
    const bufs = await Promise.all(parts.map((p) => readFile(join(a, p))));
    bufs.forEach((buf, i) => {
      expect(buf.length).toBeLessThanOrEqual(4096);
      if (i < bufs.length - 1) expect(buf.length).toBe(4096);
    });
    const joined = Buffer.concat(bufs);
    expect(createHash('sha256').update(joined).digest('hex')).toBe(split.sha256);
    expect(maskSignature(joined).equals(maskSignature(await readFile(join(c, 'ferry-20240101-0001.tar'))))).toBe(true);
    const pj = await readFile(join(a, 'ferry-20240101-0001.parts.json'));
    expect(parsePartsManifest(pj).totalSize).toBe(whole.totalSize);
    // One part object per line: the layout import.sh reads.
    expect(pj.toString()).toMatch(/\n {4}\{"file":"ferry-20240101-0001\.tar\.001","size":4096,"sha256":"[0-9a-f]{64}"\},\n/);

    // Same inputs, same bytes (ECDSA signatures are randomised, so compare the tar, not the .sig).
    const b2 = join(dir, 'split-b');
    await fs.mkdir(b2);
    const again = await writeFixture(b2, fx, keys.privateKey, { splitSize: 4096 });
    expect(again.manifestSha256 === split.manifestSha256).toBe(true);

    for (const start of [join(a, parts[0]!), a, join(a, 'ferry-20240101-0001.parts.json')]) {
      const b = await openBundle(start, { trust: keys.trust });
      expect(b.parts.map((p) => p.file)).toEqual(parts);
      let n = 0;
      for await (const e of b.entries()) {
        n++;
        if (n % 2 === 0) e.stream.resume(); // skipped entries are drained by the reader
      }
      expect(n).toBe(b.manifest.files.length);
    }
  });

  it('writes the tar body identically for identical inputs', async () => {
    const fs = await import('node:fs/promises');
    const x = join(dir, 'det-x');
    const y = join(dir, 'det-y');
    await fs.mkdir(x);
    await fs.mkdir(y);
    // Feed the entries in a different order the second time: the writer sorts them.
    const r1 = await writeFixture(x, fx, keys.privateKey);
    const r2 = await writeFixture(y, { ...fx, entries: [...fx.entries].reverse() }, keys.privateKey);
    const t1 = await readFile(join(x, 'ferry-20240101-0001.tar'));
    const t2 = await readFile(join(y, 'ferry-20240101-0001.tar'));
    expect(r1.manifestSha256 === r2.manifestSha256).toBe(true);
    expect(t1.equals(t2)).toBe(false); // the ECDSA signature differs...
    expect(maskSignature(t1).equals(maskSignature(t2))).toBe(true); // ...and nothing else
  });

  it('writes a spooled entry of many reads (its buffers used again) byte for byte, split or not, and refuses one changed on disk', async () => {
    const fs = await import('node:fs/promises');
    // Lines that differ all the way through: a read into a buffer still being written would show.
    const text = Array.from({ length: 40_000 }, (_, i) => `line ${i} ${createHash('sha256').update(String(i)).digest('hex')}\n`).join('');
    const write = async (name: string, splitSize?: number, change?: (file: string) => Promise<void>): Promise<string> => {
      const out = join(dir, name);
      await fs.mkdir(out);
      const spool = await SpooledEntry.create('gomod/example.com/big/@v/list', join(out, 'spool'));
      for (let at = 0; at < text.length; at += 100_000) await spool.write(text.slice(at, at + 100_000));
      const entry = await spool.done();
      await change?.(join(out, 'spool'));
      await writeBundle({
        outDir: out,
        name: 'ferry-20240101-0003',
        manifest: { ...fx.manifest, images: [], modules: [] },
        entries: [entry],
        privateKey: keys.privateKey,
        importScript: IMPORT_SCRIPT,
        ...(splitSize !== undefined ? { splitSize } : {}),
      });
      return out;
    };
    for (const [name, split] of [['spool-whole', undefined], ['spool-split', 70_001]] as const) {
      const out = await write(name, split);
      const b = await openBundle(out, { trust: keys.trust });
      let got: Buffer | undefined;
      for await (const e of b.entries()) {
        const chunks: Buffer[] = [];
        for await (const c of e.stream) chunks.push(Buffer.from(c as Buffer));
        if (e.path === 'gomod/example.com/big/@v/list') got = Buffer.concat(chunks);
      }
      expect(got?.toString('utf8')).toBe(text);
    }
    const err = await write('spool-changed', undefined, async (file) => {
      const fh = await fs.open(file, 'r+');
      await fh.write(Buffer.from('X'), 0, 1, 200_000);
      await fh.close();
    }).catch((e: unknown) => e);
    expect(isFerryError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect((err as Error).message).toContain('gomod/example.com/big/@v/list');
  });

  it('aborts with DIGEST_MISMATCH naming the entry and leaves no file behind', async () => {
    const fs = await import('node:fs/promises');
    const out = join(dir, 'mismatch');
    await fs.mkdir(out);
    const good = bufferEntry('gomod/example.com/x/@v/list', Buffer.from('v1.0.0\n'));
    const lying: BundleEntry = { ...good, open: () => Readable.from([Buffer.from('v2.0.0\n')]) };
    const err = await writeBundle({
      outDir: out,
      name: 'ferry-20240101-0002',
      manifest: { ...fx.manifest, images: [], modules: [] },
      entries: [lying],
      privateKey: keys.privateKey,
      importScript: IMPORT_SCRIPT,
      splitSize: 1024,
    }).catch((e: unknown) => e);
    expect(isFerryError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect((err as Error).message).toContain('gomod/example.com/x/@v/list');
    expect(await readdir(out)).toEqual([]);
  });

  it('a full disk (ENOSPC) names the file being written, says why, and leaves no file behind', async () => {
    // Linux answers every write to /dev/full with ENOSPC: the writer's temporary file is a link to it.
    const fs = await import('node:fs/promises');
    const out = join(dir, 'full');
    await fs.mkdir(out);
    await fs.symlink('/dev/full', join(out, '.ferry-20240101-0004.tar.partial'));
    const err = await writeFixture(out, fx, keys.privateKey, { name: 'ferry-20240101-0004' }).catch((e: unknown) => e);
    expect(isFerryError(err, 'BUNDLE_IO')).toBe(true);
    expect((err as Error).message).toBe(
      `cannot write bundle file ${join(out, 'ferry-20240101-0004.tar')} (written as ${join(out, '.ferry-20240101-0004.tar.partial')}): no space left on device (ENOSPC)`,
    );
    expect(await readdir(out)).toEqual([]);

    // The disk fills up at the second part: that part is named, the first is removed too.
    await fs.symlink('/dev/full', join(out, '.ferry-20240101-0005.tar.002.partial'));
    const err2 = await writeFixture(out, fx, keys.privateKey, { name: 'ferry-20240101-0005', splitSize: 1024 }).catch((e: unknown) => e);
    expect(err2).toMatchObject({ code: 'BUNDLE_IO', details: { file: join(out, 'ferry-20240101-0005.tar.002') } });
    expect((err2 as Error).message).toContain('no space left on device');
    expect(await readdir(out)).toEqual([]);
  });

  it('stops on abort with ABORTED and leaves no file behind', async () => {
    const fs = await import('node:fs/promises');
    const out = join(dir, 'aborted');
    await fs.mkdir(out);
    const ac = new AbortController();
    const err = await writeBundle({
      outDir: out,
      name: 'ferry-20240101-0003',
      manifest: fx.manifest,
      entries: fx.entries,
      privateKey: keys.privateKey,
      importScript: IMPORT_SCRIPT,
      splitSize: 1024,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.path.startsWith('blobs/')) ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(isFerryError(err, 'ABORTED')).toBe(true);
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses to overwrite an existing bundle and rejects bad entries', async () => {
    const fs = await import('node:fs/promises');
    const out = join(dir, 'twice');
    await fs.mkdir(out);
    await writeFixture(out, fx, keys.privateKey);
    await expect(writeFixture(out, fx, keys.privateKey)).rejects.toMatchObject({ code: 'USAGE' });
    const base = { outDir: out, name: 'other', manifest: fx.manifest, privateKey: keys.privateKey, importScript: IMPORT_SCRIPT };
    await expect(writeBundle({ ...base, entries: [bufferEntry('../etc/passwd', Buffer.from('x'))] })).rejects.toMatchObject({ code: 'BUNDLE_INVALID' });
    await expect(writeBundle({ ...base, entries: [bufferEntry('blobs/sha256/abc', Buffer.from('x'))] })).rejects.toMatchObject({ code: 'BUNDLE_INVALID' });
    await expect(writeBundle({ ...base, entries: fx.entries, splitSize: 10 })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
