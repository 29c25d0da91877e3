// Blob writes and reads against a real temp directory: verification, merging, streaming, cleanup.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { sha256Digest, type Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import { blob, countingSource, tempDir, tempStore, tmpFiles } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function setup(): { store: Store; dir: string } {
  const t = tempStore();
  cleanups.push(t.cleanup);
  return t;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isFerryError(err) ? err.code : err).toBe(code);
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('writeBlob', () => {
  it('stores a good blob at its path, records it and reads it back verified', async () => {
    const { store, dir } = setup();
    const { bytes, digest } = blob('hello layer');
    const r = await store.content.writeBlob(digest, Readable.from([bytes]), { size: bytes.length, mediaType: 'application/octet-stream' });
    expect(r).toEqual({ digest, size: bytes.length, written: true });
    const hex = digest.slice(7);
    expect(store.content.blobPath(digest)).toBe(join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex));
    expect(readFileSync(store.content.blobPath(digest))).toEqual(bytes);
    expect(store.content.hasBlob(digest)).toBe(true);
    expect(store.content.blobSize(digest)).toBe(bytes.length);
    expect(store.content.getBlob(digest)?.mediaType).toBe('application/octet-stream');
    expect(await readAll(store.content.readBlob(digest))).toEqual(bytes);
    expect(await store.content.readBlobBytes(digest, 1024)).toEqual(bytes);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('stores an empty blob', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('');
    expect((await store.content.writeBlobBytes(undefined, bytes)).digest).toBe(digest);
    expect(await store.content.readBlobBytes(digest, 0)).toEqual(Buffer.alloc(0));
  });

  it('rejects a wrong digest: DIGEST_MISMATCH, nothing stored, tmp empty', async () => {
    const { store, dir } = setup();
    const wrong = blob('something else').digest;
    await expectCode(store.content.writeBlob(wrong, Readable.from([Buffer.from('actual bytes')])), 'DIGEST_MISMATCH');
    expect(store.content.hasBlob(wrong)).toBe(false);
    expect(existsSync(store.content.blobPath(wrong))).toBe(false);
    expect(tmpFiles(dir)).toEqual([]);
    expect(store.stats().blobs).toBe(0);
  });

  it('rejects a wrong size, larger or smaller: SIZE_MISMATCH, nothing stored', async () => {
    const { store, dir } = setup();
    const { bytes, digest } = blob('twelve bytes');
    await expectCode(store.content.writeBlob(digest, Readable.from([bytes]), { size: bytes.length - 1 }), 'SIZE_MISMATCH');
    await expectCode(store.content.writeBlob(digest, Readable.from([bytes]), { size: bytes.length + 1 }), 'SIZE_MISMATCH');
    expect(store.content.hasBlob(digest)).toBe(false);
    expect(existsSync(store.content.blobPath(digest))).toBe(false);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('a source error leaves nothing behind', async () => {
    const { store, dir } = setup();
    const { digest } = blob('never finished');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('never ');
      throw new Error('connection reset');
    }
    await expect(store.content.writeBlob(digest, failing())).rejects.toThrow('connection reset');
    expect(store.content.hasBlob(digest)).toBe(false);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('an existing blob returns written:false and destroys the source unread', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('already here');
    await store.content.writeBlobBytes(digest, bytes);
    const src = countingSource([bytes]);
    const r = await store.content.writeBlob(digest, src.stream, { size: bytes.length });
    expect(r).toEqual({ digest, size: bytes.length, written: false });
    expect(src.pulled()).toBe(0);
    expect(src.stream.destroyed).toBe(true);
    let started = false;
    async function* gen(): AsyncGenerator<Uint8Array> {
      started = true;
      yield bytes;
    }
    expect((await store.content.writeBlob(digest, gen())).written).toBe(false);
    expect(started).toBe(false);
  });

  it('an existing blob with a different expected size is SIZE_MISMATCH', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('sized');
    await store.content.writeBlobBytes(digest, bytes);
    await expectCode(store.content.writeBlob(digest, Readable.from([bytes]), { size: 99 }), 'SIZE_MISMATCH');
  });

  it('merges concurrent writes of one digest: one file write, the other source unread', async () => {
    const { store, dir } = setup();
    const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i));
    const digest = sha256Digest(Buffer.concat(chunks));
    const a = countingSource(chunks);
    const b = countingSource(chunks);
    const [ra, rb] = await Promise.all([store.content.writeBlob(digest, a.stream), store.content.writeBlob(digest, b.stream)]);
    expect([ra.written, rb.written]).toEqual([true, false]);
    expect(a.pulled()).toBe(64);
    expect(b.pulled()).toBe(0);
    expect(b.stream.destroyed).toBe(true);
    expect(statSync(store.content.blobPath(digest)).size).toBe(64 * 64 * 1024);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('a merged writer retries with its own source when the first writer had bad bytes', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('the real content');
    const [ra, rb] = await Promise.allSettled([
      store.content.writeBlob(digest, Readable.from([Buffer.from('corrupted content')])),
      store.content.writeBlob(digest, Readable.from([bytes])),
    ]);
    expect(ra.status === 'rejected' && isFerryError(ra.reason, 'DIGEST_MISMATCH')).toBe(true);
    expect(rb.status === 'fulfilled' && rb.value.written).toBe(true);
    expect(await store.content.readBlobBytes(digest, 100)).toEqual(bytes);
  });

  it('streams a 50 MB blob without buffering it', async () => {
    const { store, dir } = setup();
    const CHUNK = 256 * 1024;
    const COUNT = 200; // 50 MiB
    const chunkAt = (i: number): Buffer => {
      const c = Buffer.alloc(CHUNK);
      const seed = createHash('sha256').update(String(i)).digest();
      for (let o = 0; o < CHUNK; o += seed.length) seed.copy(c, o);
      return c;
    };
    const h = createHash('sha256');
    for (let i = 0; i < COUNT; i++) h.update(chunkAt(i));
    const digest = `sha256:${h.digest('hex')}` as Digest;
    let maxLag = 0;
    async function* gen(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < COUNT; i++) {
        // How far production runs ahead of the disk: bounded when backpressure works.
        const tmp = tmpFiles(dir)[0];
        const onDisk = tmp === undefined ? 0 : statSync(join(dir, 'tmp', tmp)).size;
        maxLag = Math.max(maxLag, i * CHUNK - onDisk);
        yield chunkAt(i);
      }
    }
    const r = await store.content.writeBlob(digest, gen(), { size: CHUNK * COUNT });
    expect(r).toEqual({ digest, size: CHUNK * COUNT, written: true });
    expect(maxLag).toBeLessThan(16 * 1024 * 1024);
    const rh = createHash('sha256');
    let n = 0;
    for await (const c of store.content.readBlob(digest)) {
      rh.update(c as Buffer);
      n += (c as Buffer).length;
    }
    expect(n).toBe(CHUNK * COUNT);
    expect(`sha256:${rh.digest('hex')}`).toBe(digest);
  });

  it('aborts a write on signal: ABORTED, nothing stored, tmp empty', async () => {
    const { store, dir } = setup();
    const ac = new AbortController();
    const { digest } = blob('will not finish');
    async function* gen(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('will ');
      ac.abort();
      await new Promise((r) => setImmediate(r));
      yield Buffer.from('not finish');
    }
    await expectCode(store.content.writeBlob(digest, gen(), { signal: ac.signal }), 'ABORTED');
    expect(store.content.hasBlob(digest)).toBe(false);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('rewrites a blob whose file went missing', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('restore me');
    await store.content.writeBlobBytes(digest, bytes);
    unlinkSync(store.content.blobPath(digest));
    expect((await store.content.writeBlobBytes(digest, bytes)).written).toBe(true);
    expect(readFileSync(store.content.blobPath(digest))).toEqual(bytes);
  });

  it('writeBlobBytes computes the digest or checks the given one', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('{"a":1}');
    expect(await store.content.writeBlobBytes(undefined, bytes)).toEqual({ digest, size: bytes.length, written: true });
    await expectCode(store.content.writeBlobBytes(blob('x').digest, bytes), 'DIGEST_MISMATCH');
  });

  it('many small writes at once all land durably in place, each recorded, tmp left empty', async () => {
    const { store, dir } = setup();
    const items = Array.from({ length: 300 }, (_, i) => blob(`small blob ${i}\n`));
    const results = await Promise.all(items.map((b) => store.content.writeBlobBytes(b.digest, b.bytes)));
    expect(results.every((r) => r.written)).toBe(true);
    for (const b of items) expect(readFileSync(store.content.blobPath(b.digest))).toEqual(b.bytes);
    expect(tmpFiles(dir)).toEqual([]);
    expect((await store.fsck()).problems).toEqual([]);
  });

  it('a small write that cannot be placed fails with STORE_IO naming the step and file; the others land', async () => {
    const { store, dir } = setup();
    const good = blob('lands anyway');
    const bad = blob('shard is blocked');
    // A regular file where the blob's shard directory should be: mkdir fails for that one only.
    const shard = join(dir, 'blobs', 'sha256', bad.digest.slice(7, 9));
    writeFileSync(shard, 'not a directory');
    const [g, b] = await Promise.allSettled([store.content.writeBlobBytes(good.digest, good.bytes), store.content.writeBlobBytes(bad.digest, bad.bytes)]);
    expect(g.status).toBe('fulfilled');
    expect(b.status).toBe('rejected');
    const err = (b as PromiseRejectedResult).reason as { code: string; message: string; details: { op: string; file: string } };
    expect(err.code).toBe('STORE_IO');
    expect(err.details.op).toBe('mkdir');
    expect(err.message).toContain(shard);
    expect(store.content.hasBlob(bad.digest)).toBe(false);
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('rejects a malformed digest', async () => {
    const { store } = setup();
    await expectCode(store.content.writeBlob('sha256:xyz' as Digest, Readable.from([Buffer.from('a')])), 'DIGEST_INVALID');
  });
});

describe('readBlob', () => {
  it('fails a damaged file with DIGEST_MISMATCH at the end; verify:false reads raw', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('precious bytes');
    await store.content.writeBlobBytes(digest, bytes);
    const damaged = Buffer.from(bytes);
    damaged[0] = (damaged[0] ?? 0) ^ 0xff;
    writeFileSync(store.content.blobPath(digest), damaged);
    await expectCode(readAll(store.content.readBlob(digest)), 'DIGEST_MISMATCH');
    await expectCode(store.content.readBlobBytes(digest, 100), 'DIGEST_MISMATCH');
    expect(await readAll(store.content.readBlob(digest, { verify: false }))).toEqual(damaged);
  });

  it('a missing file is STORE_CORRUPT; an unknown blob is BLOB_UNKNOWN; a big one is BODY_TOO_LARGE', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('gone soon');
    await store.content.writeBlobBytes(digest, bytes);
    await expectCode(store.content.readBlobBytes(digest, 2), 'BODY_TOO_LARGE');
    unlinkSync(store.content.blobPath(digest));
    await expectCode(readAll(store.content.readBlob(digest)), 'STORE_CORRUPT');
    await expectCode(readAll(store.content.readBlob(digest, { verify: false })), 'STORE_CORRUPT');
    expect(() => store.content.readBlob(blob('never').digest)).toThrow(expect.objectContaining({ code: 'BLOB_UNKNOWN' }));
  });
  it('an aborted read fails with ABORTED', async () => {
    const { store } = setup();
    const { bytes, digest } = blob('abort me');
    await store.content.writeBlobBytes(digest, bytes);
    const ac = new AbortController();
    const r = store.content.readBlob(digest, { signal: ac.signal });
    ac.abort();
    await expectCode(readAll(r), 'ABORTED');
    await expectCode(store.content.readBlobBytes(digest, 100, { signal: ac.signal }), 'ABORTED');
  });
});

describe('Store.open', () => {
  it('creates the layout and a marker with a store id, kept across reopen', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const s1 = Store.open(t.dir);
    const id = s1.id;
    s1.close();
    expect(existsSync(join(t.dir, 'blobs', 'sha256'))).toBe(true);
    expect(existsSync(join(t.dir, 'tmp'))).toBe(true);
    expect(existsSync(join(t.dir, 'ferry.db'))).toBe(true);
    const marker = JSON.parse(readFileSync(join(t.dir, 'ferry-store.json'), 'utf8')) as { storeFormat: number; id: string };
    expect(marker).toEqual({ storeFormat: 1, id });
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const s2 = Store.open(t.dir);
    expect(s2.id).toBe(id);
    s2.close();
  });

  it('removes temp files of ended processes at open, keeps those of live ones', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    Store.open(t.dir).close();
    // A pid that surely ended: a child we waited for.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    expect(dead).toBeGreaterThan(0);
    const tmp = join(t.dir, 'tmp');
    writeFileSync(join(tmp, `${dead}.deadbeef`), 'partial');
    writeFileSync(join(tmp, 'garbage'), 'partial');
    mkdirSync(join(tmp, `${dead}.dir`));
    writeFileSync(join(tmp, `${process.pid}.live`), 'in progress');
    const infos: object[] = [];
    const s = Store.open(t.dir, { logger: { info: (o) => void infos.push(o) } });
    expect(readdirSync(tmp)).toEqual([`${process.pid}.live`]);
    expect(infos).toEqual([expect.objectContaining({ files: 3 })]);
    s.close();
  });

  it('read-only: reads work, writes are refused, a missing store is STORE_NOT_FOUND', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const w = Store.open(t.dir);
    const { bytes, digest } = blob('ro');
    await w.content.writeBlobBytes(digest, bytes);
    const r = Store.open(t.dir, { readonly: true });
    expect(r.id).toBe(w.id);
    expect(await r.content.readBlobBytes(digest, 10)).toEqual(bytes);
    await expectCode(r.content.writeBlobBytes(undefined, Buffer.from('no')), 'STORE_IO');
    expect(() => r.runs.start('sync')).toThrow(expect.objectContaining({ code: 'STORE_IO' }));
    r.close();
    w.close();
    expect(() => Store.open(join(t.dir, 'nope'), { readonly: true })).toThrow(expect.objectContaining({ code: 'STORE_NOT_FOUND' }));
  });

  it('create: false opens an existing store but never creates one where there is none', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const missing = join(t.dir, 'mistyped', 'path');
    expect(() => Store.open(missing, { create: false })).toThrow(
      expect.objectContaining({ code: 'STORE_NOT_FOUND', message: expect.stringContaining(`no Ferry store at ${missing}: no such directory`) }),
    );
    expect(existsSync(join(t.dir, 'mistyped'))).toBe(false);
    const empty = join(t.dir, 'empty');
    mkdirSync(empty);
    expect(() => Store.open(empty, { create: false })).toThrow(expect.objectContaining({ code: 'STORE_NOT_FOUND', message: expect.stringContaining('holds no ferry.db') }));
    expect(readdirSync(empty)).toEqual([]);
    const made = Store.open(join(t.dir, 'real'));
    made.close();
    const again = Store.open(join(t.dir, 'real'), { create: false });
    expect(again.id).toBe(made.id);
    again.close();
  });

  it('refuses a non-empty directory that is not a store', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    writeFileSync(join(t.dir, 'important.txt'), 'keep');
    expect(() => Store.open(t.dir)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});
