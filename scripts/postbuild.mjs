// After tsc: bundles the CLI into one file, dist/ferry.mjs, which `ferry` (package.json bin) runs.
// Node's module loader resolving, reading and linking some 300 files cost the CLI about a third
// of a second at every start, more than many commands then take; one file starts in half that.
// The native SQLite addon stays outside, as does pino-pretty (loaded only for a terminal).
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const out = fileURLToPath(new URL('../dist/ferry.mjs', import.meta.url));
await build({
  entryPoints: [main],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['better-sqlite3', 'pino-pretty'],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __ferryCreateRequire } from 'node:module';\nconst require = __ferryCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
// npm's bin link needs both entry points executable.
for (const f of [main, out]) chmodSync(f, 0o755);
