/** Small helpers the import targets share: bounded reads, atomic file writes, entry sources. */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError } from '../errors/index.js';

/**
 * One verified bundle entry handed to a target: either the live tar stream (one consumer; it
 * fails at its end when the bytes do not match the signed file list) or a spooled temp file
 * that was already verified while it was written (several consumers).
 */
export interface EntrySource {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly mediaType?: string;
  /** The live tar stream; consume it fully or leave it alone (never destroy it). */
  readonly stream?: Readable;
  /** A verified temp file owned by the importer (removed when the bundle is done). */
  readonly file?: string;
}

/** Opens the bytes of an entry source (the stream itself, or a fresh read of the file). */
export function openSource(src: EntrySource, signal?: AbortSignal): Readable {
  if (src.file !== undefined) return createReadStream(src.file, signal ? { signal } : {});
  if (src.stream) return src.stream;
  throw new FerryError('INTERNAL', `entry ${src.path} has neither a stream nor a file`);
}

/** Reads a small entry into memory, refusing more than `cap` bytes. */
export async function readSmall(stream: Readable, cap: number, file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > cap) throw new FerryError('BUNDLE_INVALID', `${file} is larger than ${cap} bytes`, { file });
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Spools a bounded entry (the image plan) into `dir`, verified as it is written, refusing one
 * whose signed size exceeds `cap`; returns how to read it again in chunks, so it is never held
 * whole in memory. A spooled source is used as it is.
 */
export async function spoolCapped(src: EntrySource, dir: string, cap: number, signal?: AbortSignal): Promise<() => AsyncIterable<Buffer>> {
  if (src.size > cap) throw new FerryError('BUNDLE_INVALID', `${src.path} is larger than ${cap} bytes`, { file: src.path });
  let file = src.file;
  if (file === undefined) {
    file = join(dir, `spool-${src.sha256}`);
    await pipeline(openSource(src, signal), createWriteStream(file), signal ? { signal } : {});
  }
  const f = file;
  return () => createReadStream(f, signal ? { signal } : {}) as AsyncIterable<Buffer>;
}

/** Writes a stream to `file` and fsyncs it (so a rename after it is durable). */
export async function writeStreamFile(stream: Readable, file: string, signal?: AbortSignal): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await pipeline(stream, createWriteStream(file), signal ? { signal } : {});
  const fh = await open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes bytes to `file` atomically: a temp file beside it, fsync, rename. */
export async function writeFileAtomic(file: string, bytes: Buffer | string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(16).slice(2)}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Joins the optional intranet prefix and a bundle image's target path. */
export function prefixed(prefix: string | undefined, target: string): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return p === '' ? target : `${p}/${target}`;
}
