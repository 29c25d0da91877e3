// Benchmark helper: runs a command (asynchronously, so in-process servers keep answering) and
// measures its wall time and peak resident memory.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

/** /usr/bin/time (GNU time) reports the child's peak RSS from wait4(); absent on minimal images. */
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/**
 * Runs `cmd args`, capturing stdout and stderr (also appended to `log` when given).
 * Resolves { ms, maxRssMB, cpuS, code, stdout, stderr }; throws when the exit code is not 0 unless
 * `allowFail` is set.
 */
export async function measure(cmd, args, opts = {}) {
  const rssFile = `${opts.tmpPrefix ?? '/tmp/ferry-bench'}-${process.pid}-${Math.random().toString(36).slice(2)}.rss`;
  const argv = GNU_TIME ? ['-f', '%M %U %S', '-o', rssFile, cmd, ...args] : args;
  const bin = GNU_TIME ?? cmd;
  const started = performance.now();
  const child = spawn(bin, argv, { cwd: opts.cwd, env: { ...process.env, ...(opts.env ?? {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = opts.log ? createWriteStream(opts.log, { flags: 'a' }) : undefined;
  log?.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  let stdout = '';
  const stdoutChunks = [];
  let stderr = '';
  // Keep only the tail of long outputs: they are for error messages. `opts.wholeStdout` keeps
  // all of stdout, for a document the caller parses however long it is (ferry status --json of
  // 50,000 tags is larger than the tail kept).
  const cap = (s) => (s.length > 4 << 20 ? s.slice(-(2 << 20)) : s);
  child.stdout.setEncoding('utf8').on('data', (d) => {
    if (opts.wholeStdout) stdoutChunks.push(d);
    else stdout = cap(stdout + d);
    log?.write(d);
  });
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr = cap(stderr + d);
    log?.write(d);
  });
  // Without GNU time, sample the high-water mark while the process lives (last sample wins).
  let hwmKB = 0;
  const sampler = GNU_TIME
    ? undefined
    : setInterval(() => {
        readFile(`/proc/${child.pid}/status`, 'utf8')
          .then((s) => {
            const m = /VmHWM:\s+(\d+)/.exec(s);
            if (m) hwmKB = Math.max(hwmKB, Number(m[1]));
          })
          .catch(() => undefined);
      }, 20);
  const code = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  const ms = performance.now() - started;
  if (sampler) clearInterval(sampler);
  await new Promise((r) => (log ? log.end(r) : r()));
  let maxRssMB = hwmKB > 0 ? hwmKB / 1024 : undefined;
  // CPU seconds (user + system): steadier than wall time when other work shares the machine.
  let cpuS;
  if (GNU_TIME) {
    const text = await readFile(rssFile, 'utf8').catch(() => '');
    // GNU time writes "Command exited with non-zero status N" before the format line on failure.
    const [kb, user, sys] = (text.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
    if (Number.isFinite(kb) && kb > 0) maxRssMB = kb / 1024;
    if (Number.isFinite(user) && Number.isFinite(sys)) cpuS = user + sys;
    await rm(rssFile, { force: true });
  }
  if (opts.wholeStdout) stdout = stdoutChunks.join('');
  const r = { ms, maxRssMB, cpuS, code, stdout, stderr };
  if (code !== 0 && !opts.allowFail) {
    const e = new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-3000) || stdout.slice(-3000)}`);
    e.result = r;
    throw e;
  }
  return r;
}

/** Runs a command for its output only (no timing); throws on failure. */
export async function run(cmd, args, opts = {}) {
  return measure(cmd, args, opts);
}
