// What `npm test`, `npm run demo` and `npm run bench` run first, so that each works on a fresh
// clone with nothing installed but Node.js: it uses nothing but Node's own modules.
//
//   node scripts/setup.mjs test|demo|bench [--dry-run]
//
// 1. The commands the npm script needs (docker-registry, skopeo, go, ...): missing ones are
//    installed with apt-get when running as root; otherwise one line names the `apt-get install`
//    to run, and the exit status is 2.
// 2. `npm ci` when node_modules is missing or older than package-lock.json (npm writes
//    node_modules/.package-lock.json at every install, so its mtime is the install's).
// 3. `npm run build` when the command runs the built CLI and dist/ is older than any source file,
//    the build scripts or the installed packages.
// Prints nothing when everything is in place. Exit status: 0 ready, 1 a step failed, 2 something
// must be installed by hand.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The Debian package that provides each command the scripts run. */
export const PACKAGE_OF = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  go: 'golang-go',
  openssl: 'openssl',
  curl: 'curl',
  python3: 'python3',
  // The page tests drive Debian's browser through playwright-core, which downloads none.
  chromium: 'chromium',
};

/** What each npm script needs: commands on PATH, and whether it runs the built CLI without building it itself. */
export const NEEDS = {
  // scripts/test.mjs typechecks, lints and builds before it runs the tests.
  test: { commands: ['docker-registry', 'skopeo', 'go', 'openssl', 'curl', 'chromium'], build: false },
  demo: { commands: ['docker-registry', 'skopeo', 'go', 'curl', 'python3'], build: true },
  bench: { commands: ['docker-registry', 'skopeo', 'go', 'openssl', 'curl'], build: true },
};

/** The folders tsconfig.build.json compiles, read from it (the build's own list of sources). */
function buildSources(root) {
  try {
    const cfg = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8'));
    if (Array.isArray(cfg.include)) return cfg.include.filter((s) => typeof s === 'string');
  } catch {
    // No readable build configuration: the build itself will say what is wrong.
  }
  return [];
}

/** The newest mtime under `dir` of files whose name passes `keep`, in one walk. */
function newestUnder(dir, keep) {
  let best = { mtimeMs: 0, file: undefined };
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return best;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const sub = newestUnder(p, keep);
      if (sub.mtimeMs > best.mtimeMs) best = sub;
    } else if (e.isFile() && keep(e.name)) {
      const m = statSync(p).mtimeMs;
      if (m > best.mtimeMs) best = { mtimeMs: m, file: p };
    }
  }
  return best;
}

function mtimeOf(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** True when an executable named `cmd` is in one of PATH's folders. */
export function onPath(cmd, env = process.env) {
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    try {
      accessSync(join(d, cmd), constants.X_OK);
      if (statSync(join(d, cmd)).isFile()) return true;
    } catch {
      // Not in this folder.
    }
  }
  return false;
}

/** Why `npm ci` is needed in `root`, or undefined when node_modules matches the lockfile. */
export function npmCiReason(root) {
  const nm = join(root, 'node_modules');
  let link;
  try {
    link = lstatSync(nm).isSymbolicLink();
  } catch {
    return 'node_modules is missing';
  }
  const lock = mtimeOf(join(root, 'package-lock.json'));
  const installed = mtimeOf(join(nm, '.package-lock.json'));
  let why;
  if (installed === undefined) why = 'node_modules was not installed by npm (no node_modules/.package-lock.json)';
  else if (lock !== undefined && lock > installed) why = 'package-lock.json is newer than node_modules';
  // A linked node_modules belongs to another checkout: `npm ci` would empty it under that one.
  if (why !== undefined && link) return { skip: `${why}, but node_modules is a link to another checkout's: not reinstalled here` };
  return why;
}

/** Why dist/ must be rebuilt in `root`, or undefined when it is newer than everything it is built from. */
export function buildReason(root) {
  const outputs = ['dist/ferry.mjs', 'dist/ferry.cjs', 'dist/cli/main.js'].map((f) => ({ f, m: mtimeOf(join(root, f)) }));
  const absent = outputs.find((o) => o.m === undefined);
  if (absent) return `${absent.f} is missing`;
  const built = Math.min(...outputs.map((o) => o.m));
  const inputs = [
    ...buildSources(root).map((d) => newestUnder(join(root, d), (n) => n.endsWith('.ts'))),
    ...['tsconfig.json', 'tsconfig.build.json', 'scripts/postbuild.mjs', 'node_modules/.package-lock.json'].map((f) => ({ mtimeMs: mtimeOf(join(root, f)) ?? 0, file: join(root, f) })),
  ];
  const newest = inputs.reduce((a, b) => (b.mtimeMs > a.mtimeMs ? b : a), { mtimeMs: 0, file: undefined });
  if (newest.mtimeMs > built) return `dist/ is older than ${relative(root, newest.file)}`;
  return undefined;
}

/**
 * What set-up `command` needs in `root`: commands missing from PATH (with their Debian packages),
 * whether apt-get can install them here, and why npm ci and the build must run (undefined: not needed).
 */
export function planSetup({ root, command, env = process.env, isRoot }) {
  const need = NEEDS[command];
  if (!need) throw new Error(`setup: unknown command "${command}" (expected ${Object.keys(NEEDS).join(', ')})`);
  const missing = need.commands.filter((c) => !onPath(c, env)).map((c) => ({ command: c, package: PACKAGE_OF[c] }));
  const ci = npmCiReason(root);
  return {
    missing,
    canInstall: isRoot && onPath('apt-get', env),
    npmCi: typeof ci === 'string' ? ci : undefined,
    npmCiSkipped: typeof ci === 'object' ? ci.skip : undefined,
    // After npm ci (whose `prepare` builds), the build is decided again.
    build: need.build ? buildReason(root) : undefined,
  };
}

/** The one line a user who cannot install packages here reads. */
export function missingLine(command, missing, hasApt) {
  const pkgs = [...new Set(missing.map((m) => m.package))];
  const cmds = missing.map((m) => m.command).join(', ');
  if (hasApt) return `setup: npm ${command === 'test' ? 'test' : `run ${command}`} needs ${cmds}; run as root: apt-get install -y ${pkgs.join(' ')}`;
  return `setup: npm ${command === 'test' ? 'test' : `run ${command}`} needs ${cmds} on PATH (Debian packages: ${pkgs.join(' ')}); install them with this system's package manager`;
}

/** The npm that runs this script (npm_execpath when started by npm), as [file, args]. */
function npmCommand(env, args) {
  const cli = env.npm_execpath;
  if (cli && /\.c?js$/.test(cli) && existsSync(cli)) return [process.execPath, [cli, ...args]];
  return ['npm', args];
}

/** Runs a command with the terminal's stdio; returns its exit status. */
function runInherit(file, args, opts = {}) {
  const r = spawnSync(file, args, { stdio: 'inherit', ...opts });
  if (r.error) {
    process.stderr.write(`setup: cannot run ${file}: ${r.error.message}\n`);
    return 1;
  }
  return r.status ?? 1;
}

/** The oldest Node.js package.json's `engines.node` (a ">=X.Y.Z" range) accepts; undefined for other forms. */
function minimumNode(root) {
  try {
    const m = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines?.node ?? '');
    return m ? m.slice(1).map(Number) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sets up `root` for `command` and returns the exit status. `run(file, args, opts)` runs a step
 * (returns its status) and `write` prints; both are replaceable so that the decisions can be
 * tested without installing anything.
 */
export function setup({
  root,
  command,
  env = process.env,
  isRoot = process.getuid?.() === 0,
  dryRun = false,
  run = runInherit,
  write = (s) => process.stderr.write(s),
  nodeVersion = process.versions.node,
}) {
  const min = minimumNode(root);
  const have = nodeVersion.split('.').map(Number);
  if (min && (have[0] - min[0] || have[1] - min[1] || have[2] - min[2]) < 0) {
    write(`setup: Ferry needs Node.js ${min.join('.')} or newer; this is ${nodeVersion}\n`);
    return 2;
  }
  let plan = planSetup({ root, command, env, isRoot });
  if (plan.missing.length > 0 && !plan.canInstall) {
    write(`${missingLine(command, plan.missing, onPath('apt-get', env))}\n`);
    return 2;
  }
  if (dryRun) {
    const pkgs = [...new Set(plan.missing.map((m) => m.package))];
    if (pkgs.length > 0) write(`setup: would install ${pkgs.join(' ')} (apt-get)\n`);
    if (plan.npmCiSkipped) write(`setup: ${plan.npmCiSkipped}\n`);
    if (plan.npmCi) write(`setup: would run npm ci (${plan.npmCi}), which builds\n`);
    else if (plan.build) write(`setup: would run npm run build (${plan.build})\n`);
    if (pkgs.length === 0 && !plan.npmCi && !plan.build) write('setup: nothing to do\n');
    return 0;
  }
  if (plan.missing.length > 0) {
    const pkgs = [...new Set(plan.missing.map((m) => m.package))];
    write(`setup: installing ${pkgs.join(' ')} (apt-get)\n`);
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...pkgs]]) {
      const status = run('apt-get', args, { env: aptEnv, stdio: ['ignore', 'ignore', 'inherit'] });
      if (status !== 0) {
        write(`setup: apt-get ${args[0]} failed (exit ${status})\n`);
        return 1;
      }
    }
    const still = planSetup({ root, command, env, isRoot }).missing;
    if (still.length > 0) {
      write(`setup: still not on PATH after apt-get install: ${still.map((m) => m.command).join(', ')}\n`);
      return 1;
    }
  }
  if (plan.npmCiSkipped) write(`setup: ${plan.npmCiSkipped}\n`);
  if (plan.npmCi) {
    write(`setup: npm ci (${plan.npmCi})\n`);
    const [file, args] = npmCommand(env, ['ci', '--no-audit', '--no-fund']);
    const status = run(file, args, { cwd: root, env });
    if (status !== 0) {
      write(`setup: npm ci failed (exit ${status})\n`);
      return 1;
    }
    plan = planSetup({ root, command, env, isRoot });
  }
  if (plan.build) {
    write(`setup: npm run build (${plan.build})\n`);
    const [file, args] = npmCommand(env, ['run', 'build', '--silent']);
    const status = run(file, args, { cwd: root, env });
    if (status !== 0) {
      write(`setup: the build failed (exit ${status})\n`);
      return 1;
    }
  }
  return 0;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  const command = args.find((a) => !a.startsWith('-'));
  if (!command || !(command in NEEDS) || args.some((a) => a.startsWith('-') && a !== '--dry-run')) {
    process.stderr.write(`usage: node scripts/setup.mjs ${Object.keys(NEEDS).join('|')} [--dry-run]\n`);
    process.exit(2);
  }
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  process.exitCode = setup({ root, command, dryRun: args.includes('--dry-run') });
}
