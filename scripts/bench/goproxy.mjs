// Benchmark helper: a static GOPROXY tree (list, .info, .mod, real deflated .zip) with
// `require` edges between modules, and a node:http static server for it on 127.0.0.1.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join, resolve, sep } from 'node:path';
import yazl from 'yazl';
import { mapLimit } from './registry.mjs';

const TIME = '2024-01-01T00:00:00Z';

/** The module path of module number i (lowercase: no GOPROXY case-escaping needed). */
export function modulePath(i) {
  return `bench.example/m${String(i).padStart(3, '0')}`;
}

/** Version j of every module. */
export function moduleVersion(j) {
  return `v1.${j}.0`;
}

function writeZip(file, prefix, files) {
  const zip = new yazl.ZipFile();
  for (const name of Object.keys(files).sort()) {
    zip.addBuffer(Buffer.from(files[name], 'utf8'), `${prefix}/${name}`, { mtime: new Date(TIME), mode: 0o644 });
  }
  zip.end();
  return new Promise((ok, fail) => {
    const out = createWriteStream(file);
    out.on('close', ok);
    out.on('error', fail);
    zip.outputStream.on('error', fail).pipe(out);
  });
}

/** Some Go source of a few KiB that differs per module and version (so zips are not trivial). */
function source(pkg, i, j, n) {
  const lines = [`package ${pkg}`, ''];
  for (let k = 0; k < n; k++) {
    lines.push(`// F${k} returns a constant of module ${i}, version ${j}: filler text for a realistic zip size.`);
    lines.push(`func F${k}() int { return ${i * 1000 + j * 100 + k} }`, '');
  }
  return lines.join('\n');
}

/**
 * Writes `modules` × `versions` module versions under `dir`. Version j of module i requires
 * version j of modules i+roots and i+roots+1, so the closure of modules 0..roots-1 at every
 * version is the whole tree. Returns { roots, all } as arrays of { path, version }.
 */
export async function buildGoProxyTree(dir, { modules, versions, roots }) {
  const all = [];
  for (let i = 0; i < modules; i++) for (let j = 0; j < versions; j++) all.push({ i, j, path: modulePath(i), version: moduleVersion(j) });
  await mapLimit(all, 16, async ({ i, j, path, version }) => {
    const at = join(dir, path, '@v');
    await mkdir(at, { recursive: true });
    const req = [i + roots, i + roots + 1].filter((k) => k < modules).map((k) => `\t${modulePath(k)} ${version}\n`);
    const gomod = `module ${path}\n\ngo 1.19\n${req.length ? `\nrequire (\n${req.join('')})\n` : ''}`;
    await writeFile(join(at, `${version}.info`), `${JSON.stringify({ Version: version, Time: TIME })}\n`);
    await writeFile(join(at, `${version}.mod`), gomod);
    const pkg = `m${String(i).padStart(3, '0')}`;
    await writeZip(join(at, `${version}.zip`), `${path}@${version}`, {
      'go.mod': gomod,
      'doc.go': `// Package ${pkg} is benchmark filler.\npackage ${pkg}\n`,
      'a.go': source(pkg, i, j, 40),
      'b.go': source(pkg, i, j + 7, 40),
      'internal/c/c.go': source('c', i, j, 20),
    });
  });
  for (let i = 0; i < modules; i++) {
    const list = Array.from({ length: versions }, (_, j) => `${moduleVersion(j)}\n`).join('');
    await writeFile(join(dir, modulePath(i), '@v', 'list'), list);
    await writeFile(join(dir, modulePath(i), '@latest'), `${JSON.stringify({ Version: moduleVersion(versions - 1), Time: TIME })}\n`);
  }
  const rootList = all.filter((m) => m.i < roots).map(({ path, version }) => ({ path, version }));
  return { roots: rootList, all: all.map(({ path, version }) => ({ path, version })) };
}

/** Serves `dir` statically on 127.0.0.1; resolves { url, requests(), stop }. */
export async function serveStatic(dir) {
  const root = resolve(dir);
  let count = 0;
  const server = createServer((req, res) => {
    count++;
    void (async () => {
      let decoded;
      try {
        decoded = decodeURIComponent((req.url ?? '/').split('?')[0]);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const file = resolve(root, `.${decoded}`);
      if (!file.startsWith(root + sep)) {
        res.writeHead(404).end('not found\n');
        return;
      }
      try {
        const st = await stat(file);
        if (!st.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
        if (req.method === 'HEAD') res.end();
        else createReadStream(file).on('error', () => res.destroy()).pipe(res);
      } catch {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    })();
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests: () => count,
    stop: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
