/**
 * Builds static GOPROXY trees for tests: escaped paths, @v/list, .info, .mod, .zip (real module
 * zips written with yazl) and @latest; plus hand-made broken zips for the zip checker.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { deflateRawSync, crc32 } from 'node:zlib';
import yazl from 'yazl';
import { hashGoMod, hashZip } from '../../gomod/h1.js';
import { proxyPath } from '../../gomod/index.js';
import { compare, isPseudoVersion, latestVersion, pseudoVersionTime, sortVersions } from '../../gomod/semver.js';

/** One module version to put in the tree. */
export interface TreeModule {
  readonly path: string;
  readonly version: string;
  /** RFC 3339; default: the pseudo-version's timestamp, else 2024-01-01T00:00:00Z. */
  readonly time?: string;
  /** Files at the module root (names relative to it). Default: a single `doc.go`. */
  readonly files?: Record<string, string | Buffer>;
  /** The .mod content. Default: "module PATH\n" plus require and retract directives. */
  readonly gomod?: string;
  readonly require?: ReadonlyArray<readonly [string, string]>;
  /** Retract directive arguments, e.g. "v1.0.1", "[v1.0.0, v1.0.5] // broken". */
  readonly retract?: readonly string[];
  /** Put the .mod content in the zip as go.mod (unless files has one). @default true */
  readonly zipGoMod?: boolean;
}

/** Options for buildProxyTree. */
export interface ProxyTreeOptions {
  /** Write $module/@latest. @default true */
  readonly latest?: boolean;
}

/** go.sum hashes of what was written, keyed by "path@version". */
export interface ProxyTree {
  readonly dir: string;
  readonly sums: Map<string, { h1Zip: string; h1Mod: string }>;
}

const DEFAULT_TIME = '2024-01-01T00:00:00Z';

/** The default .mod text for a module entry. */
export function defaultGoMod(m: TreeModule): string {
  let s = `module ${m.path}\n`;
  if (m.require && m.require.length > 0) {
    s += '\nrequire (\n' + m.require.map(([p, v]) => `\t${p} ${v}\n`).join('') + ')\n';
  }
  for (const r of m.retract ?? []) s += `\nretract ${r}\n`;
  return s;
}

/** Writes a real module zip (entries "path@version/name", deflated, fixed mtime). */
export async function writeModuleZip(file: string, path: string, version: string, files: Record<string, string | Buffer>, mtime = new Date(DEFAULT_TIME)): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const zip = new yazl.ZipFile();
  for (const name of Object.keys(files).sort()) {
    const data = files[name]!;
    zip.addBuffer(Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'), `${path}@${version}/${name}`, { mtime, mode: 0o644 });
  }
  zip.end();
  await new Promise<void>((ok, fail) => {
    const out = createWriteStream(file);
    out.on('close', () => ok());
    out.on('error', fail);
    zip.outputStream.on('error', fail).pipe(out);
  });
}

/** Writes the static proxy tree for `modules` under `dir`. */
export async function buildProxyTree(dir: string, modules: readonly TreeModule[], opts: ProxyTreeOptions = {}): Promise<ProxyTree> {
  const sums = new Map<string, { h1Zip: string; h1Mod: string }>();
  const byPath = new Map<string, Array<{ version: string; info: string }>>();
  for (const m of modules) {
    const gomod = m.gomod ?? defaultGoMod(m);
    const files: Record<string, string | Buffer> = { ...(m.files ?? { 'doc.go': 'package doc\n' }) };
    if (m.zipGoMod !== false && files['go.mod'] === undefined) files['go.mod'] = gomod;
    const time = m.time ?? pseudoVersionTime(m.version) ?? DEFAULT_TIME;
    const info = JSON.stringify({ Version: m.version, Time: time }) + '\n';
    const at = (kind: 'info' | 'mod' | 'zip'): string => join(dir, ...proxyPath(m.path, kind, m.version).split('/'));
    await mkdir(dirname(at('info')), { recursive: true });
    await writeFile(at('info'), info);
    await writeFile(at('mod'), gomod);
    await writeModuleZip(at('zip'), m.path, m.version, files, new Date(time));
    sums.set(`${m.path}@${m.version}`, { h1Zip: await hashZip(at('zip')), h1Mod: hashGoMod(Buffer.from(gomod, 'utf8')) });
    const list = byPath.get(m.path) ?? [];
    list.push({ version: m.version, info });
    byPath.set(m.path, list);
  }
  for (const [path, versions] of byPath) {
    const tagged = sortVersions(versions.map((v) => v.version).filter((v) => !isPseudoVersion(v)));
    await writeFile(join(dir, ...proxyPath(path, 'list').split('/')), tagged.map((v) => v + '\n').join(''));
    if (opts.latest !== false) {
      // A module with only pseudo-versions reports its newest one, as proxy.golang.org does.
      const latest = latestVersion(tagged) ?? versions.map((v) => v.version).sort(compare).at(-1);
      const entry = versions.find((v) => v.version === latest);
      if (entry) await writeFile(join(dir, ...proxyPath(path, 'latest').split('/')), entry.info);
    }
  }
  return { dir, sums };
}

/** One entry of a hand-made zip. */
export interface BadZipEntry {
  /** Stored exactly as given (a Buffer allows invalid UTF-8). */
  readonly name: string | Buffer;
  readonly data?: string | Buffer;
  /** Uncompressed size written in the headers; default the true size (lie to make a bomb). */
  readonly declaredSize?: number;
}

/**
 * Writes a deflated zip with no name validation at all (yazl refuses `..`): for `../` paths,
 * case collisions, duplicates, wrong prefixes and lying size fields.
 */
export async function makeBadZip(file: string, entries: readonly BadZipEntry[]): Promise<void> {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name, 'utf8');
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data, 'utf8');
    const comp = deflateRawSync(data);
    const crc = crc32(data);
    const size = e.declaredSize ?? data.length;
    const flags = name.some((b) => b >= 0x80) ? 0x800 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(comp.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(comp.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, comp);
    centrals.push(central, name);
    offset += local.length + name.length + comp.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, Buffer.concat([...locals, cd, eocd]));
}
