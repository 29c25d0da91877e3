import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { inactiveSources, loadConfig, parseByteSize, parseConfig, resolveSecret, selectTags } from '../../config/index.js';
import { FerryError } from '../../errors/index.js';

function errorOf(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

const good = `version: 1
store: ./ferry-store
concurrency: 4
registries:
  - host: 127.0.0.1:5001
    tls: plain-http
    username: env:UPSTREAM_USER
    password: env:UPSTREAM_PASS
images:
  - name: app
    source: 127.0.0.1:5001/lab/app
    tags:
      include: ["v*", "/^1\\\\.2[0-3]\\\\./"]
      exclude: ["*-rc*"]
      semver: ">=1.22 <1.24"
      latest: 3
    platforms: [linux/amd64, linux/arm64]
    target: mirror/app
  - source: golang
`;

/** A file whose aliases expand to 9^7 values: small text, billions of laughs. */
const BOMB = `version: 1
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
`;

describe('config', () => {
  beforeAll(() => {
    // The secret references in `good` must resolve: every load checks them.
    process.env['UPSTREAM_USER'] = 'upstream-user';
    process.env['UPSTREAM_PASS'] = 'upstream-pass';
  });

  it('loads a valid file and resolves paths and defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'));
    writeFileSync(join(dir, 'ferry.yaml'), good);
    const c = loadConfig(join(dir, 'ferry.yaml'));
    expect(c.store).toBe(join(dir, 'ferry-store'));
    expect(c.concurrency).toBe(4);
    expect(c.images).toHaveLength(2);
    expect(c.images[0]).toMatchObject({ name: 'app', target: 'mirror/app', ref: { registry: '127.0.0.1:5001', repository: 'lab/app' } });
    expect(c.images[1]).toMatchObject({ name: 'golang', target: 'library/golang', ref: { registry: 'docker.io', repository: 'library/golang' } });
    expect(c.registries[0]?.tls).toBe('plain-http');
  });

  it('names file, line, column and key for a typo', () => {
    const text = good.replace('    source: 127.0.0.1:5001/lab/app', '    sorce: 127.0.0.1:5001/lab/app');
    const err = errorOf(() => parseConfig(text, '/etc/ferry.yaml'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('/etc/ferry.yaml:11:5');
    expect(err.message).toContain('images[0].sorce');
    expect(err.message).toContain('did you mean "source"');
  });

  it('names the key and the expected type for a wrong type', () => {
    const err = errorOf(() => parseConfig(good.replace('concurrency: 4', 'concurrency: lots'), 'f.yaml'));
    expect(err.message).toMatch(/f\.yaml:3:14: concurrency: expected number, got string "lots"/);
  });

  it('gives GOPROXY requests a concurrency of their own, 16 unless set', () => {
    expect(parseConfig('version: 1\ngoModules: {}\n', 'f.yaml').goModules?.concurrency).toBe(16);
    expect(parseConfig('version: 1\nconcurrency: 2\ngoModules:\n  concurrency: 64\n', 'f.yaml')).toMatchObject({ concurrency: 2, goModules: { concurrency: 64 } });
    const err = errorOf(() => parseConfig('version: 1\ngoModules:\n  concurrency: 0\n', 'f.yaml'));
    expect(err.message).toMatch(/f\.yaml:3:16: goModules\.concurrency: Too small: expected number to be >=1/);
  });

  it('refuses plain-text passwords and a wrong version', () => {
    expect(errorOf(() => parseConfig(good.replace('env:UPSTREAM_PASS', 'hunter2'), 'f.yaml')).message).toMatch(
      /f\.yaml:8:\d+: registries\[0\]\.password: expected a secret reference/,
    );
    expect(errorOf(() => parseConfig(good.replace('version: 1', 'version: 2'), 'f.yaml')).message).toContain('version: 1');
  });

  it('reports YAML syntax errors with a position', () => {
    const err = errorOf(() => parseConfig('version: 1\nimages: [\n', 'bad.yaml'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/^bad\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('reads lifecycle and note on image entries and module roots (default active) and refuses bad ones', () => {
    const c = parseConfig(
      'version: 1\nimages:\n  - source: r.example/a\n    lifecycle: deprecated\n    note: use r.example/b\n  - source: r.example/b\n' +
        'goModules:\n  modules:\n    - path: example.com/m\n      lifecycle: archived\n    - gomod: ./go.mod\n      lifecycle: deprecated\n      note: moved\n',
      join(tmpdir(), 'f.yaml'),
    );
    expect(c.images.map((i) => [i.lifecycle, i.note])).toEqual([['deprecated', 'use r.example/b'], ['active', undefined]]);
    expect(c.goModules?.roots.map((r) => [r.name.replace(/:.*/, ':'), r.lifecycle, r.note])).toEqual([['example.com/m', 'archived', undefined], ['gomod:', 'deprecated', 'moved']]);
    expect(inactiveSources(c)).toEqual([
      { kind: 'image', name: 'r.example/a', target: 'a', state: 'deprecated', note: 'use r.example/b' },
      { kind: 'module', name: 'example.com/m', target: 'example.com/m', state: 'archived' },
      { kind: 'module', name: c.goModules!.roots[1]!.name, target: null, state: 'deprecated', note: 'moved' },
    ]);
    expect(errorOf(() => parseConfig('version: 1\nimages:\n  - source: r.example/a\n    lifecycle: retired\n', 'f.yaml')).message).toMatch(/^f\.yaml:4:\d+: images\[0\]\.lifecycle/);
    expect(errorOf(() => parseConfig('version: 1\nimages:\n  - source: r.example/a\n    note: "two\\nlines"\n', 'f.yaml')).message).toMatch(/images\[0\]\.note: expected one line of text/);
    expect(errorOf(() => parseConfig('version: 1\nimages:\n  - source: r.example/a\n    lifecycel: archived\n', 'f.yaml')).message).toContain('did you mean "lifecycle"?');
  });

  it('refuses a source with a tag and duplicate names', () => {
    expect(errorOf(() => parseConfig('version: 1\nimages:\n  - source: alpine:3.20\n', 'f.yaml')).message).toMatch(/f\.yaml:3:\d+: images\[0\]\.source/);
    expect(errorOf(() => parseConfig('version: 1\nimages:\n  - source: alpine\n  - source: alpine\n', 'f.yaml')).message).toContain('used twice');
  });

  it('an alias bomb is CONFIG_INVALID at the alias that passes the bound, not an internal error', () => {
    const err = errorOf(() => parseConfig(BOMB, '/etc/ferry.yaml'));
    expect(err.code).toBe('CONFIG_INVALID');
    // The aliases of lines 3-6 add 74718 values (each *e stands for 66430); line 7's first *e
    // passes 100000.
    expect(err.message).toMatch(/^\/etc\/ferry\.yaml:7:8: alias \*e makes the aliases of this file add more than 100000 values/);
  });

  it('an alias without an anchor before it, or inside its own anchor, names its position', () => {
    expect(errorOf(() => parseConfig('version: 1\nstore: *nope\n', 'f.yaml')).message).toBe('f.yaml:2:8: alias *nope names no anchor set before it');
    const loop = errorOf(() => parseConfig('version: 1\nimages: &i [{ source: a.example/x, platforms: *i }]\n', 'f.yaml'));
    expect(loop).toMatchObject({ code: 'CONFIG_INVALID', message: 'f.yaml:2:47: alias *i refers to a node that contains it' });
  });

  it('ordinary aliases still work', () => {
    const c = parseConfig('version: 1\nimages:\n  - source: a.example/x\n    platforms: &p [linux/amd64, linux/arm64]\n  - source: a.example/y\n    platforms: *p\n', 'f.yaml');
    expect(c.images.map((i) => i.platforms)).toEqual([['linux/amd64', 'linux/arm64'], ['linux/amd64', 'linux/arm64']]);
  });

  it('secret references that do not resolve fail at load with file:line:col, the key and the variable or file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-sec-'));
    writeFileSync(join(dir, 'pass'), 'from-a-file\n');
    delete process.env['FERRY_TEST_UNSET_VAR'];
    const env = errorOf(() => parseConfig(good.replace('env:UPSTREAM_PASS', 'env:FERRY_TEST_UNSET_VAR'), join(dir, 'ferry.yaml')));
    expect(env.code).toBe('SECRET_UNRESOLVED');
    expect(env.message).toBe(`${join(dir, 'ferry.yaml')}:8:15: registries[0].password: environment variable FERRY_TEST_UNSET_VAR is not set`);
    const user = errorOf(() => parseConfig(good.replace('env:UPSTREAM_USER', 'env:FERRY_TEST_UNSET_VAR'), 'f.yaml'));
    expect(user.message).toMatch(/^f\.yaml:7:15: registries\[0\]\.username: environment variable FERRY_TEST_UNSET_VAR/);
    const file = errorOf(() =>
      parseConfig('version: 1\ngoModules:\n  username: bob\n  password: file:./missing-pass\n', join(dir, 'ferry.yaml')),
    );
    expect(file.code).toBe('SECRET_UNRESOLVED');
    expect(file.message).toBe(`${join(dir, 'ferry.yaml')}:4:13: goModules.password: cannot read secret file ${join(dir, 'missing-pass')}: ENOENT`);
    const passphrase = errorOf(() => parseConfig('version: 1\nexport:\n  signingKeyPassphrase: env:FERRY_TEST_UNSET_VAR\n', 'f.yaml'));
    expect(passphrase.message).toMatch(/^f\.yaml:3:25: export\.signingKeyPassphrase: environment variable FERRY_TEST_UNSET_VAR/);
    // Resolvable references (a file beside the configuration, literal usernames) load.
    expect(parseConfig('version: 1\ngoModules:\n  username: bob\n  password: file:pass\n', join(dir, 'ferry.yaml')).goModules?.password).toBe('file:pass');
  });

  it('a missing file is CONFIG_NOT_FOUND', () => {
    expect(errorOf(() => loadConfig('/nonexistent/ferry.yaml')).code).toBe('CONFIG_NOT_FOUND');
  });

  it('resolves secrets from env and files without printing them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-sec-'));
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    process.env['FERRY_TEST_SECRET'] = 'xyz';
    expect(resolveSecret('env:FERRY_TEST_SECRET', 'password')).toBe('xyz');
    expect(resolveSecret('file:pw', 'password', dir)).toBe('s3cret');
    const err = errorOf(() => resolveSecret('env:FERRY_NOT_SET_ANYWHERE', 'registries[0].password'));
    expect(err.code).toBe('SECRET_UNRESOLVED');
    expect(err.message).toContain('FERRY_NOT_SET_ANYWHERE');
  });

  it('selects tags with globs, regexes, semver and latest', () => {
    const tags = ['1.21.0', '1.22.0', '1.22.5-alpine', '1.23.1', '1.23.2-rc1', '1.24.0', 'latest', 'v1.0', 'v2.0'];
    expect(selectTags(tags, {})).toEqual([...tags].sort());
    expect(selectTags(tags, { include: ['/^1\\.2[23]\\./'], exclude: ['*-rc*'] })).toEqual(['1.22.0', '1.22.5-alpine', '1.23.1']);
    expect(selectTags(tags, { semver: '>=1.22 <1.24' })).toEqual(['1.22.0', '1.22.5-alpine', '1.23.1', '1.23.2-rc1']);
    expect(selectTags(tags, { include: ['1.*'], latest: 2 })).toEqual(['1.23.2-rc1', '1.24.0']);
    expect(selectTags(tags, { include: ['v*'] })).toEqual(['v1.0', 'v2.0']);
  });

  it('parses byte sizes', () => {
    expect(parseByteSize('4GiB')).toBe(4 * 1024 ** 3);
    expect(parseByteSize('700MB')).toBe(700_000_000);
    expect(parseByteSize(1024)).toBe(1024);
    expect(() => parseByteSize('lots')).toThrow(/not a size/);
  });
});

describe('referrers', () => {
  const cfg = (top: string, entry: string): string => `version: 1\n${top}images:\n  - source: docker.io/library/alpine\n${entry}  - source: docker.io/library/busybox\n`;
  it('defaults to all attachments, per image and from the top-level default', () => {
    const c = parseConfig(cfg('', ''), 'f.yaml');
    expect(c.images.map((i) => i.referrers)).toEqual([{ artifactTypes: null }, { artifactTypes: null }]);
    const off = parseConfig(cfg('referrers: false\n', '    referrers: {artifactTypes: [application/spdx+json]}\n'), 'f.yaml');
    expect(off.images.map((i) => i.referrers)).toEqual([{ artifactTypes: ['application/spdx+json'] }, null]);
  });
  it('refuses a bad setting naming where', () => {
    const err = errorOf(() => parseConfig(cfg('', '    referrers: {artifactTypes: [not a type]}\n'), 'f.yaml'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('images[0].referrers');
    expect(errorOf(() => parseConfig(cfg('', '    referrers: {artifactTypes: []}\n'), 'f.yaml')).code).toBe('CONFIG_INVALID');
  });
});
