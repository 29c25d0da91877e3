/** `ferry init`: writes a commented starter configuration, never over an existing file. */
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
// Option definitions are static; the action loads what it runs (`--help` stays cheap).
import type { Command } from 'commander';
import { FerryError } from '../errors/index.js';

/** The template `ferry init` writes without `--example`. */
const DEFAULT_EXAMPLE = 'starter';

/**
 * The repository's examples/ folder, found upwards from this module: the CLI runs as the bundle
 * (dist/ferry.cjs) or as compiled modules (dist/cli/*.js), one or two levels below it.
 */
function examplesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'examples');
    if (existsSync(join(candidate, `${DEFAULT_EXAMPLE}.yaml`))) return candidate;
    dir = dirname(dir);
  }
  throw new FerryError('INTERNAL', `ferry init: the examples/ folder of this Ferry installation was not found above ${dirname(fileURLToPath(import.meta.url))}`);
}

/** The example names `--example` accepts (the YAML files in examples/). */
function exampleNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/** A YAML scalar for a path: plain when it has only path characters, else double-quoted (JSON strings are YAML). */
function yamlPath(p: string): string {
  return /^[A-Za-z0-9_./~-]+$/.test(p) ? p : JSON.stringify(p);
}

/** `--store DIR` (relative to the working directory) as the file will say it: relative to the file when below its folder. */
function storeValue(store: string, file: string): string {
  const abs = resolve(store);
  const rel = relative(dirname(file), abs);
  if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) return `./${rel.split(sep).join('/')}`;
  return abs;
}

/** Writes `text` to `file` only if no file of that name exists, atomically: a complete file or none. */
function writeNew(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { flag: 'wx' });
    // link() fails with EEXIST instead of replacing: a file made meanwhile is never overwritten.
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && existsSync(file)) throw alreadyThere(file);
    throw new FerryError('USAGE', `ferry init: cannot write ${file}: ${(err as Error).message}`, { file, cause: err });
  } finally {
    rmSync(tmp, { force: true });
  }
}

function alreadyThere(file: string): FerryError {
  return new FerryError('USAGE', `ferry init: ${file} already exists; init never overwrites a file (name another with -c FILE)`, { file });
}

/** Registers `ferry init`. */
export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('write a commented starter configuration (never over an existing file)')
    .option('-c, --config <file>', 'the configuration file to write', 'ferry.yaml')
    .option('--store <dir>', 'store directory to put in it (default: ./ferry-store beside the file)')
    .option('--example <name>', `start from examples/NAME.yaml instead of the starter, e.g. go-devenv (a Go developer environment)`)
    .action(async (o: { config: string; store?: string; example?: string }) => {
      const file = resolve(o.config);
      if (existsSync(file)) throw alreadyThere(file);
      const dir = examplesDir();
      const name = o.example ?? DEFAULT_EXAMPLE;
      const names = exampleNames(dir);
      if (!names.includes(name)) throw new FerryError('USAGE', `ferry init: --example ${name}: no such example (there are: ${names.join(', ')})`);
      let text = readFileSync(join(dir, `${name}.yaml`), 'utf8');
      if (o.store !== undefined) {
        if (o.store === '') throw new FerryError('USAGE', 'ferry init: --store needs a directory');
        // Every example has one top-level `store:` line; its comment, if any, stays.
        const re = /^store:[ \t]*("[^"]*"|'[^']*'|[^\s#]+)([ \t]*#.*)?$/m;
        if (!re.test(text)) throw new FerryError('INTERNAL', `ferry init: examples/${name}.yaml has no top-level "store:" line`);
        const value = yamlPath(storeValue(o.store, file));
        text = text.replace(re, (_m, _v, comment: string | undefined) => `store: ${value}${comment ?? ''}`);
      }
      // What init writes passes `ferry config check`, or it writes nothing.
      const { parseConfig } = await import('../config/index.js');
      const config = parseConfig(text, file);
      writeNew(file, text);
      process.stdout.write(
        `wrote ${file} (from examples/${name}.yaml; store ${config.store})\n` +
          `next: edit it, then  ferry config check ${o.config}  and  ferry sync -c ${o.config}\n`,
      );
    });
}
