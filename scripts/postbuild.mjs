// After tsc: bundles the CLI into one CommonJS script, dist/ferry.cjs, started by a small
// launcher, dist/ferry.mjs (cli/launcher.ts), which `ferry` (package.json bin) runs; then runs
// it once to write V8's code cache for it, dist/ferry.cjs.cache.
// - Node's module loader resolving, reading and linking some 300 files cost the CLI about a
//   third of a second at every start; one file starts in half that.
// - A script (not an ES module) can be compiled from a code cache on Node 20, which saves the
//   compile of the bundle and of the functions a command runs first: another ~75 ms a start.
// The native SQLite addon stays outside, as does pino-pretty (loaded only for a terminal).
// Both kept because they pay for themselves: an empty `ferry sync` (start-up, configuration,
// store open and close), 20 alternating runs each on a 2-core machine shared with other work,
// took median 0.47 s from the bundle with its code cache, 0.57 s from the bundle without it
// and 0.99 s from the unbundled modules (node dist/cli/main.js); fastest runs 0.33, 0.40 and
// 0.67 s. (The Go module sync of the benchmark starts the CLI twice per round.)
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const dist = (p) => fileURLToPath(new URL(`../dist/${p}`, import.meta.url));
const main = dist('cli/main.js');
const bundle = dist('ferry.cjs');
const launcher = dist('ferry.mjs');
const common = { bundle: true, platform: 'node', target: 'node20', legalComments: 'none', logLevel: 'warning' };

await build({
  ...common,
  entryPoints: [main],
  outfile: bundle,
  format: 'cjs',
  external: ['better-sqlite3', 'pino-pretty'],
  // The sources are ES modules; in a CommonJS script import.meta.url is this file's URL.
  define: { 'import.meta.url': '__ferryImportMetaUrl' },
  banner: { js: "const __ferryImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The launcher wraps the script in a function: a #! line would no longer be the first.
// esbuild writes code in ASCII (charset ascii) but keeps comments as they are; one non-ASCII
// character in a comment makes V8 hold the whole 3 MB source as a two-byte string, which took
// the launcher twice as long to read (about 7 ms more at every start). Comments get escapes.
// The launcher reads the bundle as latin1 (an external string, outside the JavaScript heap; see
// cli/launcher.ts), which is its utf8 text only while every byte is ASCII: checked here. It is
// written wrapped as Node wraps a CommonJS module, on the first line so that line numbers stay
// true, so that the launcher compiles the file's text as it is, without a second copy.
const text = readFileSync(bundle, 'utf8')
  .replace(/^#!.*\n/, '\n')
  .replace(/[\u0080-\u{10ffff}]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
// Each character is one byte in utf8 exactly when every one is ASCII.
if (Buffer.byteLength(text, 'utf8') !== text.length) throw new Error(`postbuild: ${bundle} is not all ASCII; the launcher reads it as latin1`);
writeFileSync(bundle, `(function (exports, require, module, __filename, __dirname) {${text}\n})`);
await build({ ...common, entryPoints: [dist('cli/launcher.js')], outfile: launcher, format: 'esm' });
// npm's bin link needs the entry points executable.
for (const f of [main, launcher]) chmodSync(f, 0o755);

// The code cache: written by a real run (an empty sync in a scratch store), so that it holds
// what start-up compiles. A build where this fails still works, only without the cache.
const scratch = mkdtempSync(join(tmpdir(), 'ferry-codecache-'));
try {
  writeFileSync(join(scratch, 'ferry.yaml'), `version: 1\nstore: ${JSON.stringify(join(scratch, 'store'))}\n`);
  execFileSync(process.execPath, [launcher, 'sync', '-c', join(scratch, 'ferry.yaml'), '--json'], {
    env: { ...process.env, FERRY_WRITE_CODE_CACHE: '1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
} catch (err) {
  rmSync(`${bundle}.cache`, { force: true });
  console.warn(`postbuild: no code cache written (the CLI starts a little slower): ${err.message}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
