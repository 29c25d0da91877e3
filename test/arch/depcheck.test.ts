// Checks the import rules between top-level folders and the rooms of packages
// (../shared/STYLE.md "Layout"): the table as STYLE.md writes it, plus the deviations the code
// still needs, each with its reason.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Which top-level folders each folder may import, as STYLE.md's layout table says (errors/ is open to all). */
const style: Record<string, readonly string[]> = {
  errors: [],
  oci: ['errors'],
  net: ['errors'],
  registry: ['errors', 'oci', 'net'],
  gomod: ['errors'],
  goproxy: ['errors', 'gomod', 'net'],
  sumdb: ['errors', 'gomod', 'net'],
  store: ['errors', 'oci', 'gomod'],
  config: ['errors', 'oci', 'gomod'],
  sync: ['errors', 'registry', 'goproxy', 'sumdb', 'store', 'config'],
  bundle: ['errors', 'oci', 'gomod', 'sumdb', 'store'],
  importer: ['errors', 'bundle', 'registry', 'store', 'gomod', 'sumdb'],
  serve: ['errors', 'store', 'importer', 'oci', 'gomod'],
  daemon: ['errors', 'sync', 'bundle', 'store', 'config'],
  cli: ['errors', 'oci', 'net', 'registry', 'gomod', 'goproxy', 'sumdb', 'store', 'config', 'sync', 'bundle', 'importer', 'serve', 'daemon'],
};

/** Imports the code needs beyond STYLE.md's table: folder → imported folder → why. */
const deviations: Record<string, Record<string, string>> = {
  sync: {
    oci: 'image sync reads manifests, descriptors and digests (the oci/ types the table leaves out)',
    gomod: 'module sync checks .info, .mod and zips with the Go module rules before it stores them',
    net: 'sync builds the clients it needs from config: their dispatchers (proxy, CA, TLS) and retry options',
  },
  importer: {
    oci: 'import reads manifests, descriptors, digests and references (the oci/ types the table leaves out)',
  },
  daemon: {
    serve: "the status page renders with the pages' escaping html helper, their assets and formatting (serve/html.ts, serve/ui-assets.ts, serve/catalog.ts): one helper for every page",
  },
};

/** What each folder may import: the table plus its deviations. */
const allowed: Record<string, readonly string[]> = Object.fromEntries(
  Object.entries(style).map(([folder, may]) => [folder, [...may, ...Object.keys(deviations[folder] ?? {})]]),
);

/**
 * The rooms of packages: the only folders whose sources may import them. `types` adds the
 * folders that may import only their types (`import type`).
 */
const packages: Record<string, { readonly rooms: readonly string[]; readonly types?: readonly string[] }> = {
  'better-sqlite3': { rooms: ['store'] },
  // net/ owns the dispatchers; the clients name undici's Dispatcher type.
  undici: { rooms: ['net', 'registry', 'goproxy', 'sumdb'] },
  'tar-stream': { rooms: ['bundle'] },
  yauzl: { rooms: ['gomod'] },
  'p-queue': { rooms: ['sync', 'importer', 'daemon'] },
  'prom-client': { rooms: ['daemon'] },
  // config/ validates schedules with the parser the daemon schedules with.
  'node-cron': { rooms: ['config', 'daemon'] },
  commander: { rooms: ['cli'] },
  // Only the CLI makes loggers; the others take one through their options.
  pino: { rooms: ['cli'], types: ['registry', 'sync', 'bundle', 'importer', 'serve', 'daemon'] },
  'pino-pretty': { rooms: ['cli'] },
  yaml: { rooms: ['config'] },
  zod: { rooms: ['config', 'bundle'] },
  semver: { rooms: ['config'] },
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Static imports and re-exports (starting a line), side-effect imports, dynamic imports and `require()`. */
const IMPORT_RE = /^[ \t]*(?:import|export)\s[^'";=()]*?from\s+['"]([^'"]+)['"]|^import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|\brequire\(\s*['"]([^'"]+)['"]\s*\)/gm;

interface Import {
  readonly file: string;
  readonly spec: string;
  /** `import type …` or `export type …`: no code is loaded. */
  readonly typeOnly: boolean;
}

function importsOf(folder: string): Import[] {
  let files: string[] = [];
  try {
    files = sources(join(root, folder));
  } catch {
    return [];
  }
  return files.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(IMPORT_RE)].map((m) => ({
      file,
      spec: m[1] ?? m[2] ?? m[3] ?? m[4] ?? '',
      typeOnly: /^\s*(?:import|export)\s+type\s/.test(m[0]),
    })),
  );
}

/** The top-level folder a relative import lands in. */
function topOf(i: Import): string {
  return relative(root, resolve(dirname(i.file), i.spec)).split(/[\\/]/)[0] ?? '';
}

/** The package a bare specifier names (`undici/lib/x.js` → undici, `@scope/name/x` → @scope/name). */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return (spec.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

describe('import rules', () => {
  for (const [folder, may] of Object.entries(allowed)) {
    it(`${folder}/ imports only ${may.length ? may.join(', ') : 'node built-ins and packages'}`, () => {
      const violations: string[] = [];
      for (const i of importsOf(folder)) {
        if (!i.spec.startsWith('.')) continue;
        const top = topOf(i);
        if (top === folder) continue;
        if (!may.includes(top)) violations.push(`${relative(root, i.file)} imports ${i.spec} (${top}/)`);
      }
      expect(violations).toEqual([]);
    });
  }

  it('every deviation from STYLE.md is still needed', () => {
    const unused: string[] = [];
    for (const [folder, extra] of Object.entries(deviations)) {
      const used = new Set(importsOf(folder).filter((i) => i.spec.startsWith('.')).map(topOf));
      for (const target of Object.keys(extra)) if (!used.has(target)) unused.push(`${folder}/ → ${target}/`);
    }
    expect(unused).toEqual([]);
  });

  it('every source folder the build compiles has a line in the table', () => {
    const built = (JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;
    expect(built.filter((f) => !(f in style))).toEqual([]);
  });

  it('nothing imports cli/ or test/ from source folders', () => {
    const bad: string[] = [];
    for (const folder of Object.keys(allowed)) {
      if (folder === 'cli') continue;
      for (const i of importsOf(folder)) {
        if (!i.spec.startsWith('.')) continue;
        const top = topOf(i);
        if (top === 'cli' || top === 'test') bad.push(`${relative(root, i.file)} imports ${i.spec}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('package rooms', () => {
  it('every package is imported only in its rooms (and each has one)', () => {
    const violations: string[] = [];
    for (const folder of Object.keys(allowed)) {
      for (const i of importsOf(folder)) {
        if (i.spec.startsWith('.') || isBuiltin(i.spec)) continue;
        const name = packageOf(i.spec);
        const rule = packages[name];
        const where = `${relative(root, i.file)} imports ${i.spec}`;
        if (!rule) violations.push(`${where}: ${name} has no room in test/arch/depcheck.test.ts`);
        else if (!rule.rooms.includes(folder) && !(i.typeOnly && rule.types?.includes(folder))) {
          violations.push(`${where}${i.typeOnly ? ' (types)' : ''}: ${name} belongs in ${rule.rooms.join(', ')}/`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('every package with a room is a dependency', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(packages).filter((p) => !(p in pkg.dependencies))).toEqual([]);
  });
});

/** Node built-ins that start processes or open connections. */
const PROCESS_OR_NETWORK = new Set(['child_process', 'cluster', 'net', 'tls', 'dgram', 'dns', 'http', 'https', 'http2']);

describe('folders STYLE.md calls pure', () => {
  // config/ and gomod/ (which reads zips from disk, on helper threads for small ones) never start
  // a process or open a connection: Docker's credential helpers run from registry/.
  for (const folder of ['config', 'gomod']) {
    it(`${folder}/ starts no process and opens no connection`, () => {
      const bad = importsOf(folder)
        .filter((i) => isBuiltin(i.spec) && PROCESS_OR_NETWORK.has(i.spec.replace(/^node:/, '').split('/')[0] ?? ''))
        .map((i) => `${relative(root, i.file)} imports ${i.spec}`);
      expect(bad).toEqual([]);
    });
  }
});
