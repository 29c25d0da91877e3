// The whole test suite: typecheck, lint, build, then vitest; ends with one line
// "vitest: N passed, N failed[, N skipped]" so any CI can read the outcome.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const run = (cmd, argv) => spawnSync(cmd, argv, { stdio: 'inherit', shell: false }).status ?? 1;

for (const [name, argv] of [
  ['typecheck', ['tsc', '-p', 'tsconfig.json', '--noEmit']],
  ['lint', ['eslint', '.']],
  ['build', ['tsc', '-p', 'tsconfig.build.json']],
]) {
  process.stdout.write(`== ${name}\n`);
  if (run('npx', argv) !== 0) {
    process.stdout.write(`${name} failed\n0 passed, 1 failed\n`);
    process.exit(1);
  }
}
run('node', ['scripts/postbuild.mjs']);

const dir = mkdtempSync(join(tmpdir(), 'ferry-vitest-'));
const out = join(dir, 'results.json');
process.stdout.write('== vitest\n');
const status = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...args]);
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed = r.numFailedTests ?? 0;
  // A file that fails to load (or in a hook) has no failed test of its own: count it as one.
  for (const f of r.testResults ?? []) {
    if (f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')) failed++;
  }
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  if (status !== 0 && failed === 0) failed = Math.max(1, r.numFailedTestSuites ?? 1);
} catch {
  if (status !== 0) failed = 1;
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`vitest: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(status === 0 && failed === 0 && passed > 0 ? 0 : 1);
