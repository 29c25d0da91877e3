/** Test helper: runs a shell script (an import.sh) with /bin/sh and collects its exit code and output. */
import { spawn } from 'node:child_process';

/** What a script run produced. */
export interface ShRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `/bin/sh SCRIPT ...args` (in `cwd` when given) to completion. */
export function runSh(script: string, args: readonly string[], cwd?: string): Promise<ShRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', [script, ...args], cwd !== undefined ? { cwd } : {});
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
