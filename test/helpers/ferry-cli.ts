/**
 * Test helper: runs the built CLI (`node dist/ferry.mjs`, the bundle package.json's bin names) as a child process.
 *
 *   const r = await runFerry(['sync', '-c', cfgFile, '--json']);
 *   expect(r.code).toBe(0);
 *   const child = spawnFerry(['sync', '-c', cfgFile]); // for kill tests
 *
 * The caller builds first (`npm run build`, as `npm test` does); a missing build is reported
 * plainly instead of as a confusing "module not found" from the child.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built CLI entry point. */
export const FERRY_MAIN = fileURLToPath(new URL('../../dist/ferry.mjs', import.meta.url));

/** What a finished CLI run produced. */
export interface FerryRun {
  /** Exit code, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options for runFerry and spawnFerry. */
export interface FerryRunOptions {
  readonly cwd?: string;
  /** Added to the test process's environment. */
  readonly env?: Record<string, string>;
  /** Kills the child (SIGKILL) after this long. @default 110_000 */
  readonly timeoutMs?: number;
}

/** Throws when dist/ has not been built. */
export function assertBuilt(): void {
  if (!existsSync(FERRY_MAIN)) throw new Error(`${FERRY_MAIN} is missing: run "npm run build" before the CLI tests`);
}

/** Starts `node dist/ferry.mjs ...args` with piped stdio. */
export function spawnFerry(args: readonly string[], opts: FerryRunOptions = {}): ChildProcess {
  assertBuilt();
  const child = spawn(process.execPath, [FERRY_MAIN, ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, NO_COLOR: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never leave a CLI child behind when the test process ends early.
  const reap = (): void => void child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.removeListener('exit', reap));
  return child;
}

/** Waits for a spawned child to end and collects its output. */
export function collectRun(child: ChildProcess, timeoutMs = 110_000): Promise<FerryRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs the CLI to completion. */
export function runFerry(args: readonly string[], opts: FerryRunOptions = {}): Promise<FerryRun> {
  return collectRun(spawnFerry(args, opts), opts.timeoutMs);
}
