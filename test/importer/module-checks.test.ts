// `ferry verify`, `ferry import` and import.sh agree on Go modules: signed bundles carrying a
// module version that breaks the module zip rules, or whose .info, .mod and zip disagree, are
// refused by all three (ferry import into a module tree and into a store) with the same code and
// message, import.sh (run with dash) writing nothing to its --gomod-dir; the legitimate odd cases
// (a +incompatible zip with no go.mod, a version carried with only .info and .mod, a quoted
// module path) pass all three.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMPORT_SCRIPT, verifyBundle, writeBundle, bufferEntry, type BundleEntry, type BundleModule } from '../../bundle/index.js';
import { hashGoMod, hashZip, proxyPath } from '../../gomod/index.js';
import { importBundles } from '../../importer/index.js';
import { Ledger, Store } from '../../store/index.js';
import { makeKeys } from '../bundle/fixtures.js';
import { makeBadZip, writeModuleZip, type BadZipEntry } from '../helpers/goproxy-tree.js';

const ROOT = join(import.meta.dirname, '..', '..');
const logger = pino({ level: 'silent' });
const NAME = 'ferry-20240101-0001';
const M = 'example.com/m';
const V = 'v1.0.0';
const MV = `${M}@${V}`;
const MOD = `module ${M}\n`;
const INFO = `{"Version":"${V}","Time":"2024-01-01T00:00:00Z"}\n`;

/** One module version as a bundle carries it; `zip` entries are written as given (no validation). */
interface Carried {
  readonly path?: string;
  readonly version?: string;
  readonly info?: string;
  readonly mod?: string;
  /** Entries of a hand-made zip, a map of files for a well-formed one, or null for no zip. */
  readonly zip: readonly BadZipEntry[] | Record<string, string> | null;
}

let dir: string;
let keys: Awaited<ReturnType<typeof makeKeys>>;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-modchecks-'));
  keys = await makeKeys(dir);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a signed bundle carrying `c`, its module list giving the h1 values of exactly what it carries. */
async function bundleOf(c: Carried): Promise<{ out: string; files: { info: string; mod: string; zip: string } }> {
  const path = c.path ?? M;
  const version = c.version ?? V;
  const work = join(dir, `w${n}`);
  const out = join(dir, `b${n++}`);
  mkdirSync(work);
  mkdirSync(out);
  const mod = c.mod ?? MOD;
  const files = { info: `gomod/${proxyPath(path, 'info', version)}`, mod: `gomod/${proxyPath(path, 'mod', version)}`, zip: `gomod/${proxyPath(path, 'zip', version)}` };
  const entries: BundleEntry[] = [bufferEntry(files.info, Buffer.from(c.info ?? INFO)), bufferEntry(files.mod, Buffer.from(mod))];
  let h1: string | null = null;
  if (c.zip !== null) {
    const zipFile = join(work, 'm.zip');
    if (Array.isArray(c.zip)) await makeBadZip(zipFile, c.zip as BadZipEntry[]);
    else await writeModuleZip(zipFile, path, version, c.zip as Record<string, string>);
    // go's HashZip, which applies no rule: the signed list describes the zip exactly (a zip that
    // lies about its sizes cannot be hashed at all; the rules refuse it before any hash is compared).
    h1 = await hashZip(zipFile).catch(() => `h1:${'A'.repeat(43)}=`);
    entries.push(bufferEntry(files.zip, readFileSync(zipFile)));
    entries.push(bufferEntry(`gomod/${proxyPath(path, 'list')}`, Buffer.from(`${version}\n`)));
  }
  const module: BundleModule = { path, version, h1, goModH1: hashGoMod(Buffer.from(mod)), time: '2024-01-01T00:00:00Z' };
  await writeBundle({
    outDir: out,
    name: NAME,
    manifest: { id: `${NAME}-0a1b2c3d`, sequence: 1, parent: null, chain: [], created: '2024-01-01T00:00:00Z', store: { id: 'store-test' }, images: [], modules: [module], requires: [] },
    entries,
    privateKey: keys.privateKey,
    importScript: IMPORT_SCRIPT,
  });
  return { out, files };
}

/** Imports into a fresh module tree and a fresh store; the error (or undefined) of each. */
async function importBoth(out: string): Promise<{ tree: string; store: string; treeErr: unknown; storeErr: unknown }> {
  const tree = join(dir, `tree${n}`);
  const store = join(dir, `store${n++}`);
  const attempt = async (o: { gomodDir?: string; store?: Store }, ledgerFile: string): Promise<unknown> => {
    const ledger = Ledger.open(ledgerFile);
    try {
      await importBundles({ bundles: [out], trust: keys.trust, ledger, logger, ...o });
      return undefined;
    } catch (err) {
      return err;
    } finally {
      ledger.close();
    }
  };
  const treeErr = await attempt({ gomodDir: tree }, `${tree}.ledger.db`);
  const s = Store.open(store);
  try {
    const storeErr = await attempt({ store: s }, `${store}.ledger.db`);
    if (storeErr !== undefined) expect(s.modules.list()).toEqual([]);
    return { tree, store, treeErr, storeErr };
  } finally {
    s.close();
  }
}

/** Runs the bundle's import.sh with dash into a fresh --gomod-dir. */
function importSh(out: string): { code: number | null; stdout: string; stderr: string; tree: string } {
  const tree = join(dir, `shtree${n++}`);
  const r = spawnSync('dash', ['import.sh', '--trust', keys.pubPath, '--gomod-dir', tree, `${NAME}.tar`], { cwd: out, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, tree };
}

/** Module files in a tree (staging directories and the ledger left out). */
function treeFiles(tree: string): string[] {
  if (!existsSync(tree)) return [];
  return (readdirSync(tree, { recursive: true }) as string[]).filter((f) => !f.startsWith('.ferry-') && f.includes('@v/'));
}

const prefixed = (name: string): string => `${MV}/${name}`;

const zipOf = (...names: Array<string | Buffer>): BadZipEntry[] => [{ name: prefixed('go.mod'), data: MOD }, ...names.map((name) => ({ name, data: 'package m\n' }))];

describe('module checks at verify and import', () => {
  it.each<[string, Carried, string, RegExp]>([
    ['a ".." path', { zip: [{ name: prefixed('go.mod'), data: MOD }, { name: prefixed('../evil.go'), data: 'package evil\n' }] }, 'ZIP_INVALID', /evil\.go/],
    ['an absolute path', { zip: [{ name: prefixed('go.mod'), data: MOD }, { name: '/etc/evil.go', data: 'package evil\n' }] }, 'ZIP_INVALID', /\/etc\/evil\.go/],
    ["another module's prefix", { zip: [{ name: prefixed('go.mod'), data: MOD }, { name: 'example.com/other@v1.0.0/x.go', data: 'package x\n' }] }, 'ZIP_INVALID', /prefix/],
    ['a case collision', { zip: [{ name: prefixed('go.mod'), data: MOD }, { name: prefixed('README'), data: 'a' }, { name: prefixed('readme'), data: 'b' }] }, 'ZIP_INVALID', /case-insensitive/],
    ['an over-size file', { zip: [{ name: prefixed('go.mod'), data: MOD }, { name: prefixed('big.bin'), data: 'x', declaredSize: 600 * 1024 * 1024 }] }, 'ZIP_INVALID', /too large/],
    [
      'a zip whose go.mod differs from the .mod',
      { mod: MOD, zip: { 'go.mod': `${MOD}\nrequire example.com/x v1.0.0\n`, 'm.go': 'package m\n' } },
      'MODULE_INVALID',
      /go\.mod/,
    ],
    ['a .mod that declares another module path', { mod: 'module example.com/somebody-else\n', zip: { 'go.mod': 'module example.com/somebody-else\n', 'm.go': 'package m\n' } }, 'GOMOD_INVALID', /example\.com\/somebody-else/],
    ['an .info for another version', { info: '{"Version":"v1.0.1","Time":"2024-01-01T00:00:00Z"}\n', zip: { 'go.mod': MOD, 'm.go': 'package m\n' } }, 'VERSION_INVALID', /v1\.0\.1/],
    [
      'a zip with no go.mod whose .mod declares requirements',
      { mod: `${MOD}\nrequire example.com/x v1.0.0\n`, zip: { 'm.go': 'package m\n' } },
      'MODULE_INVALID',
      /no go\.mod/,
    ],
    ['a Windows reserved name', { zip: zipOf(prefixed('sub/aux.go')) }, 'ZIP_INVALID', /"aux" disallowed/],
    ['a character outside the allowed set', { zip: zipOf(prefixed('a:b.go')) }, 'ZIP_INVALID', /invalid char ':'/],
    ['an unclean path', { zip: zipOf(prefixed('./m.go')) }, 'ZIP_INVALID', /not clean/],
    ['an empty path element', { zip: zipOf(prefixed('a//m.go')) }, 'ZIP_INVALID', /not clean/],
    ['a trailing dot', { zip: zipOf(prefixed('m.')) }, 'ZIP_INVALID', /trailing dot/],
    ['a duplicate file', { zip: zipOf(prefixed('m.go'), prefixed('m.go')) }, 'ZIP_INVALID', /multiple entries/],
    ['a file that is also a directory', { zip: zipOf(prefixed('a'), prefixed('a/m.go')) }, 'ZIP_INVALID', /both a file and a directory/],
    ['a go.mod below the root', { zip: zipOf(prefixed('sub/go.mod')) }, 'ZIP_INVALID', /not in module root/],
    ['an upper-case GO.MOD', { zip: [{ name: prefixed('GO.MOD'), data: MOD }] }, 'ZIP_INVALID', /lowercase names/],
    ['a name that is not UTF-8', { zip: zipOf(Buffer.concat([Buffer.from(prefixed('m')), Buffer.from([0xff]), Buffer.from('.go')])) }, 'ZIP_INVALID', /invalid UTF-8/],
    ['an over-size go.mod', { zip: [{ name: prefixed('go.mod'), data: MOD, declaredSize: 17 * 1024 * 1024 }] }, 'ZIP_INVALID', /go\.mod file too large/],
    ['a version that is not canonical', { version: 'v1.0', info: '{"Version":"v1.0"}\n', zip: { 'go.mod': MOD } }, 'VERSION_INVALID', /not canonical/],
    ['a version that does not fit the major version suffix', { path: 'example.com/m/v2', zip: { 'go.mod': 'module example.com/m/v2\n' }, mod: 'module example.com/m/v2\n' }, 'VERSION_INVALID', /should be v2, not v1/],
  ])('%s: verify, import and import.sh all refuse it', async (_what, carried, code, why) => {
    const { out } = await bundleOf(carried);
    const verr = await verifyBundle(out, { trust: keys.trust }).catch((e: unknown) => e);
    expect(verr, 'verify').toMatchObject({ code, details: { module: carried.path ?? M, version: carried.version ?? V } });
    expect((verr as Error).message).toMatch(why);
    expect((verr as Error).message).toContain(`gomod/${carried.path ?? M}/@v/${carried.version ?? V}.`);
    const { tree, treeErr, storeErr } = await importBoth(out);
    expect(treeErr, 'import --gomod-dir').toMatchObject({ code, details: { module: carried.path ?? M, version: carried.version ?? V } });
    expect(storeErr, 'import --store').toMatchObject({ code });
    expect((treeErr as Error).message).toBe((verr as Error).message);
    expect(treeFiles(tree)).toEqual([]);
    // import.sh refuses it too, in the same words, before it writes anything.
    const sh = importSh(out);
    expect(sh.stderr).toBe(`import.sh: error: ${(verr as Error).message}\n`);
    expect(sh.code).toBe(1);
    expect(existsSync(sh.tree)).toBe(false);
  });

  it.each<[string, BadZipEntry[], RegExp]>([
    ['a go.mod shorter than it declares', [{ name: prefixed('go.mod'), data: MOD, declaredSize: MOD.length + 5 }], /not enough bytes in the stream/],
    ['a go.mod longer than it declares', [{ name: prefixed('go.mod'), data: MOD, declaredSize: MOD.length - 3 }], /too many bytes in the stream/],
  ])('%s: all refuse the zip whose data is not what its directory says', async (_what, zip, why) => {
    const { out } = await bundleOf({ zip });
    const verr = await verifyBundle(out, { trust: keys.trust }).catch((e: unknown) => e);
    expect(verr).toMatchObject({ code: 'ZIP_INVALID' });
    expect((verr as Error).message).toMatch(why);
    const { treeErr } = await importBoth(out);
    expect(treeErr).toMatchObject({ code: 'ZIP_INVALID' });
    const sh = importSh(out);
    expect(sh.code).toBe(1);
    expect(sh.stderr).toMatch(why);
    expect(sh.stderr).toContain(`gomod/example.com/m/@v/v1.0.0.zip: ${MV}: zip entry "${prefixed('go.mod')}": cannot read`);
    expect(existsSync(sh.tree)).toBe(false);
  });

  it('a +incompatible zip with no go.mod and the .mod go synthesizes passes all three', async () => {
    const old = 'example.com/old';
    const inc = 'v2.0.0+incompatible';
    const { out } = await bundleOf({ path: old, version: inc, info: `{"Version":"${inc}","Time":"2024-01-01T00:00:00Z"}\n`, mod: `module ${old}\n`, zip: { 'old.go': 'package old\n' } });
    await expect(verifyBundle(out, { trust: keys.trust })).resolves.toMatchObject({ ok: true });
    const { tree, treeErr, storeErr } = await importBoth(out);
    expect(treeErr).toBeUndefined();
    expect(storeErr).toBeUndefined();
    expect(treeFiles(tree).sort()).toEqual(['example.com/old/@v/list', `example.com/old/@v/${inc}.info`, `example.com/old/@v/${inc}.mod`, `example.com/old/@v/${inc}.zip`]);
    const sh = importSh(out);
    expect(sh.stderr).toBe('');
    expect(sh.code).toBe(0);
    expect(treeFiles(sh.tree).sort()).toEqual(treeFiles(tree).sort());
  });

  it('a .mod and go.mod that quote the module path, in a block, with comments, pass all three', async () => {
    const mod = `// a comment\nmodule (\n\t"${M}" // the path\n)\n\ngo 1.21\n`;
    const { out } = await bundleOf({ mod, zip: { 'go.mod': mod, 'm.go': 'package m\n' } });
    await expect(verifyBundle(out, { trust: keys.trust })).resolves.toMatchObject({ ok: true });
    const { treeErr } = await importBoth(out);
    expect(treeErr).toBeUndefined();
    const sh = importSh(out);
    expect(sh.stderr).toBe('');
    expect(sh.code).toBe(0);
    expect(treeFiles(sh.tree).sort()).toEqual(['example.com/m/@v/list', 'example.com/m/@v/v1.0.0.info', 'example.com/m/@v/v1.0.0.mod', 'example.com/m/@v/v1.0.0.zip']);
  });

  it('a version carried with only .info and .mod passes all three; its .mod is installed and @v/list does not name it', async () => {
    const { out } = await bundleOf({ zip: null });
    await expect(verifyBundle(out, { trust: keys.trust })).resolves.toMatchObject({ ok: true });
    const { tree, store, treeErr, storeErr } = await importBoth(out);
    expect(treeErr).toBeUndefined();
    expect(storeErr).toBeUndefined();
    expect(treeFiles(tree).sort()).toEqual(['example.com/m/@v/v1.0.0.info', 'example.com/m/@v/v1.0.0.mod']);
    const sh = importSh(out);
    expect(sh.stderr).toBe('');
    expect(sh.code).toBe(0);
    expect(treeFiles(sh.tree).sort()).toEqual(['example.com/m/@v/v1.0.0.info', 'example.com/m/@v/v1.0.0.mod']);
    const s = Store.open(store);
    try {
      expect(s.modules.get(M, V)).toMatchObject({ zipDigest: null, h1Zip: null, h1Mod: hashGoMod(Buffer.from(MOD)) });
    } finally {
      s.close();
    }
  });

  it('the ferry verify command refuses what import refuses, exit 1', async () => {
    const { out } = await bundleOf({ zip: [{ name: prefixed('go.mod'), data: MOD }, { name: prefixed('../evil.go'), data: 'package evil\n' }] });
    const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
      const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
    };
    const text = await run(['verify', out, '--trust', keys.pubPath]);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stderr).toContain('gomod/example.com/m/@v/v1.0.0.zip');
    expect(text.stderr).toContain('evil.go');
    const json = await run(['verify', out, '--trust', keys.pubPath, '--json']);
    expect(json.code, json.stderr).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, code: 'ZIP_INVALID', file: 'gomod/example.com/m/@v/v1.0.0.zip' });
  });
});
