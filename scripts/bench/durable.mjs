// Benchmark helper: the floor that durable small-file writes put under a Go module sync. Writes
// `n` files of `size` bytes the way the store writes a blob (temp file in tmp/, write, fsync,
// close, rename into one of 256 shard directories, fsync that directory), `concurrency` at a
// time on libuv's thread pool, as the sync's writes run.
import { fsync, openSync, closeSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** Resolves the wall time in ms of writing `n` files durably under `dir` (which must not exist). */
export async function durableWrites(dir, { n, size, concurrency = 32 }) {
  const tmp = join(dir, 'tmp');
  await mkdir(tmp, { recursive: true });
  const shards = [];
  for (let i = 0; i < 256; i++) {
    const d = join(dir, i.toString(16).padStart(2, '0'));
    await mkdir(d);
    shards.push(openSync(d, 'r'));
  }
  const data = randomBytes(size);
  let next = 0;
  const one = async (i) => {
    const name = randomBytes(16).toString('hex');
    const shard = Number.parseInt(name.slice(0, 2), 16);
    const t = join(tmp, `t${i}`);
    const fh = await open(t, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(t, join(dir, name.slice(0, 2), name));
    await new Promise((ok, fail) => fsync(shards[shard], (err) => (err ? fail(err) : ok())));
  };
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) await one(next++);
      }),
    );
    return performance.now() - t0;
  } finally {
    for (const fd of shards) closeSync(fd);
  }
}
