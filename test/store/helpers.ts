// Shared test helpers for the store: real temp directories, sources that count what was read.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sha256Digest, type Digest } from '../../oci/index.js';
import { Store } from '../../store/index.js';
import type { StoreOpenOptions } from '../../store/index.js';

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-store-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A store in a fresh temp directory. */
export function tempStore(opts: StoreOpenOptions = {}): { store: Store; dir: string; cleanup: () => void } {
  const t = tempDir();
  const store = Store.open(t.dir, opts);
  return {
    store,
    dir: t.dir,
    cleanup: () => {
      store.close();
      t.cleanup();
    },
  };
}

/** Bytes and their digest. */
export function blob(text: string): { bytes: Buffer; digest: Digest } {
  const bytes = Buffer.from(text);
  return { bytes, digest: sha256Digest(bytes) };
}

/** A Readable over `chunks` that counts how many chunks were pulled. */
export function countingSource(chunks: Buffer[]): { stream: Readable; pulled: () => number } {
  let i = 0;
  const stream = new Readable({
    read() {
      const c = chunks[i++];
      this.push(c ?? null);
    },
  });
  return { stream, pulled: () => Math.min(i, chunks.length) };
}

/** Names in the store's tmp directory. */
export function tmpFiles(dir: string): string[] {
  return readdirSync(join(dir, 'tmp'));
}

/** A manual clock for tests: `tick()` moves it on one second. */
export function manualClock(start = Date.parse('2025-01-01T00:00:00Z')): { now: () => Date; tick: (s?: number) => void } {
  let t = start;
  return { now: () => new Date(t), tick: (s = 1) => void (t += s * 1000) };
}
