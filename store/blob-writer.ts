/**
 * Writer threads for small blob files. A durable small write is six system calls (create the
 * temp file, write, fsync, close, rename, fsync the directory); made from the event loop each
 * thread-pool trip costs a wake-up and a completion signal, and a module sync makes thousands.
 * Here a whole group of files goes to a writer in one message and comes back in one: the
 * writer makes the calls directly, fsyncing every file of the group before renaming any, and
 * each directory once. Several writers work at once, so their fsyncs share journal commits.
 */
import { Worker } from 'node:worker_threads';

/** One file to place: `bytes` (verified by the caller) → `tmp` → fsync → `final` in `shard`. */
export interface PlaceJob {
  readonly tmp: string;
  readonly final: string;
  readonly shard: string;
  readonly bytes: Uint8Array;
}

/** Why one placement failed: the step (the error's operation), the file and the system error. */
export interface PlaceFailure {
  readonly step: 'create temp file' | 'write' | 'fsync' | 'close' | 'mkdir' | 'rename';
  readonly file: string;
  readonly message: string;
  readonly code?: string | undefined;
}

/** A group of jobs as sent: their bytes packed into one buffer that is moved, not copied. */
interface Message {
  readonly id: number;
  readonly jobs: ReadonlyArray<Omit<PlaceJob, 'bytes'> & { readonly at: number; readonly length: number }>;
  readonly data: ArrayBuffer;
}

interface Reply {
  readonly id: number;
  /** One entry per job, in order: undefined when it is durably in place. */
  readonly failures: Array<PlaceFailure | undefined>;
}

/**
 * The writer's whole program. It runs from its source text (`eval`), so it needs no compiled
 * file of its own and runs the same from the sources under test: it may use only what it is
 * handed, never this module's imports.
 */
function writerMain(req: NodeJS.Require): void {
  const fs = req('node:fs') as typeof import('node:fs'); // eslint-disable-line @typescript-eslint/consistent-type-imports
  const { parentPort } = req('node:worker_threads') as typeof import('node:worker_threads'); // eslint-disable-line @typescript-eslint/consistent-type-imports
  // This thread yields to the event loop, which drives the network: at nice 10 (Linux sets it
  // per thread), waking it no longer takes the CPU from the main thread. Measured on 2 cores:
  // a module sync 8% faster. Elsewhere, or if refused, it keeps the default priority.
  try {
    const os = req('node:os') as typeof import('node:os'); // eslint-disable-line @typescript-eslint/consistent-type-imports
    os.setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), 10);
  } catch {
    // See above.
  }
  const shardsMade = new Set<string>();
  const dirFds = new Map<string, number>();
  const fail = (step: PlaceFailure['step'], file: string, err: unknown): PlaceFailure => {
    const e = err as NodeJS.ErrnoException;
    return { step, file, message: e.message, code: e.code };
  };
  const placeAll = (jobs: PlaceJob[]): Array<PlaceFailure | undefined> => {
    const failures: Array<PlaceFailure | undefined> = jobs.map(() => undefined);
    const fds: Array<number | undefined> = jobs.map(() => undefined);
    jobs.forEach((job, i) => {
      try {
        fds[i] = fs.openSync(job.tmp, 'wx');
      } catch (err) {
        failures[i] = fail('create temp file', job.tmp, err);
        return;
      }
      try {
        for (let off = 0; off < job.bytes.length; ) off += fs.writeSync(fds[i]!, job.bytes, off, job.bytes.length - off);
      } catch (err) {
        failures[i] = fail('write', job.tmp, err);
      }
    });
    // Every file's data on disk before any of them is renamed into place.
    jobs.forEach((job, i) => {
      const fd = fds[i];
      if (fd === undefined) return;
      if (!failures[i]) {
        try {
          fs.fsyncSync(fd);
        } catch (err) {
          failures[i] = fail('fsync', job.tmp, err);
        }
      }
      try {
        fs.closeSync(fd);
      } catch (err) {
        failures[i] ??= fail('close', job.tmp, err);
      }
    });
    const touched = new Set<string>();
    jobs.forEach((job, i) => {
      if (!failures[i]) {
        try {
          if (!shardsMade.has(job.shard)) {
            fs.mkdirSync(job.shard, { recursive: true });
            shardsMade.add(job.shard);
          }
        } catch (err) {
          failures[i] = fail('mkdir', job.shard, err);
        }
      }
      if (!failures[i]) {
        try {
          fs.renameSync(job.tmp, job.final);
          touched.add(job.shard);
          return;
        } catch (err) {
          failures[i] = fail('rename', job.final, err);
        }
      }
      try {
        fs.unlinkSync(job.tmp);
      } catch {
        // Never created, or already gone.
      }
    });
    // One fsync per directory, so the renames survive a power cut. Skipped where directories
    // cannot be opened or fsynced (Windows, some network filesystems).
    for (const shard of touched) {
      try {
        let dfd = dirFds.get(shard);
        if (dfd === undefined) {
          dfd = fs.openSync(shard, 'r');
          dirFds.set(shard, dfd);
        }
        fs.fsyncSync(dfd);
      } catch {
        // See above.
      }
    }
    return failures;
  };
  parentPort!.on('message', (msg: Message) => {
    // Each job's bytes are its span of the one buffer the group came in.
    const jobs = msg.jobs.map((j) => ({ ...j, bytes: new Uint8Array(msg.data, j.at, j.length) }));
    parentPort!.postMessage({ id: msg.id, failures: placeAll(jobs) });
  });
}

interface Writer {
  readonly worker: Worker;
  readonly pending: Map<number, { resolve: (r: Array<PlaceFailure | undefined>) => void; reject: (err: Error) => void }>;
}

/** A few writer threads, started on first use; idle ones do not keep the process alive. */
export class BlobWriterPool {
  private readonly writers: Array<Writer | undefined> = [];
  private nextId = 1;
  private closed = false;

  /** @param size writer threads (groups of fsyncs in flight at once). */
  constructor(private readonly size = 2) {
    if (!Number.isInteger(size) || size < 1) throw new TypeError(`BlobWriterPool: size must be a positive integer, got ${String(size)}`);
  }

  /** Places every job (split among the writers); one result per job, in order. */
  async placeAll(jobs: readonly PlaceJob[]): Promise<Array<PlaceFailure | undefined>> {
    if (this.closed) throw new Error('the blob writer threads are stopped');
    // Small groups stay whole: a message each way costs more than a few files.
    const parts = Math.max(1, Math.min(this.size, Math.floor(jobs.length / 4)));
    const per = Math.ceil(jobs.length / parts);
    const slices: PlaceJob[][] = [];
    for (let i = 0; i < jobs.length; i += per) slices.push(jobs.slice(i, i + per));
    const results = await Promise.all(slices.map((s, i) => this.send(this.writer(i), s)));
    return results.flat();
  }

  /** Stops the threads (after their current group); later calls fail. */
  close(): void {
    this.closed = true;
    for (const w of this.writers.splice(0)) if (w) void w.worker.terminate();
  }

  private send(w: Writer, jobs: PlaceJob[]): Promise<Array<PlaceFailure | undefined>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject });
      if (w.pending.size === 1) w.worker.ref();
      // One copy into a buffer of our own, then moved to the writer. Posting the jobs' arrays
      // as they are would copy each one's whole backing store: often a shared pool of 8 KiB
      // or a whole response for a file of a few hundred bytes.
      let size = 0;
      for (const j of jobs) size += j.bytes.length;
      const data = new ArrayBuffer(size);
      const all = new Uint8Array(data);
      let at = 0;
      const packed = jobs.map(({ tmp, final, shard, bytes }) => {
        all.set(bytes, at);
        const job = { tmp, final, shard, at, length: bytes.length };
        at += bytes.length;
        return job;
      });
      const msg: Message = { id, jobs: packed, data };
      w.worker.postMessage(msg, [data]);
    });
  }

  private writer(i: number): Writer {
    const existing = this.writers[i];
    if (existing) return existing;
    const worker = new Worker(`(${writerMain.toString()})(require)`, { eval: true });
    const w: Writer = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const p = w.pending.get(reply.id);
      if (!p) return;
      w.pending.delete(reply.id);
      if (w.pending.size === 0) worker.unref();
      p.resolve(reply.failures);
    });
    const fail = (err: Error): void => {
      if (this.writers[i] === w) this.writers[i] = undefined;
      for (const p of w.pending.values()) p.reject(err);
      w.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`a blob writer thread exited (code ${code})`)));
    this.writers[i] = w;
    return w;
  }
}
