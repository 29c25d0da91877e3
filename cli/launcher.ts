#!/usr/bin/env node
/**
 * What `ferry` runs (dist/ferry.mjs): starts the bundled CLI (dist/ferry.cjs) from V8's code
 * cache (dist/ferry.cjs.cache) when it has one. Compiling the 3 MB bundle and the functions a
 * command runs first cost every start about 75 ms; the cache, written at build time by a run
 * of the CLI (scripts/postbuild.mjs), holds that compiled code. A cache V8 refuses (another
 * Node.js, other flags, another bundle) is simply not used.
 *
 * The bundle is written already wrapped as Node wraps a CommonJS module, and in ASCII only (both
 * by the build), and read as latin1: Node hands a latin1 string that long to V8 as an external
 * string, its bytes outside the JavaScript heap. V8 keeps a script's source for as long as the
 * script lives (functions compile lazily from it); read as utf8 and wrapped here, the 3.3 MB
 * source was held twice in the heap (the file's text and the wrapped copy), and V8 sizes the old
 * generation's next limit as a multiple of what the heap holds, so each megabyte held costs
 * several at a command's peak.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** Set by the build (to `1`): this run writes the code cache when it ends. */
const WRITE_ENV = 'FERRY_WRITE_CODE_CACHE';

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, 'ferry.cjs');
const cacheFile = `${bundle}.cache`;
const writing = process.env[WRITE_ENV] === '1';
delete process.env[WRITE_ENV];

let cachedData: Buffer | undefined;
if (!writing) {
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // No cache: compiled as usual.
  }
}
const source = readFileSync(bundle, 'latin1');
const script = new Script(source, { filename: bundle, ...(cachedData ? { cachedData } : {}) });
if (writing) {
  process.once('exit', () => {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, cacheFile);
  });
}
const mod = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void).call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, here);
