import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import {
  checkFilePath,
  checkModulePath,
  checkVersion,
  escapePath,
  escapeVersion,
  splitPathVersion,
  unescapePath,
  unescapeVersion,
} from '../../gomod/index.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isFerryError(err) ? err.code : 'not a FerryError';
  }
}

describe('escapePath / unescapePath', () => {
  it.each([
    ['github.com/Azure/azure-sdk', 'github.com/!azure/azure-sdk'],
    ['github.com/GoogleCloudPlatform/cloudsql-proxy', 'github.com/!google!cloud!platform/cloudsql-proxy'],
    ['github.com/Sirupsen/logrus', 'github.com/!sirupsen/logrus'],
    ['golang.org/x/text', 'golang.org/x/text'],
    ['gopkg.in/yaml.v2', 'gopkg.in/yaml.v2'],
  ])('%s <-> %s', (path, escaped) => {
    expect(escapePath(path)).toBe(escaped);
    expect(unescapePath(escaped)).toBe(path);
  });

  it('escapes versions and round-trips them', () => {
    expect(escapeVersion('v1.0.0-RC1')).toBe('v1.0.0-!r!c1');
    expect(unescapeVersion('v1.0.0-!r!c1')).toBe('v1.0.0-RC1');
    expect(escapeVersion('v2.0.0+incompatible')).toBe('v2.0.0+incompatible');
  });

  it.each([
    'github.com/!Azure/x', // upper case after !
    'github.com/Azure/x', // upper case in escaped form
    'github.com/!azure/x!', // trailing !
    'github.com/!1/x', // ! before a non-letter
    'github.com/é/x',
  ])('unescapePath refuses %s', (bad) => {
    expect(code(() => unescapePath(bad))).toBe('MODULE_INVALID');
  });

  it.each([
    ['', 'empty string'],
    ['example', 'missing dot in first path element'],
    ['Example.com/x', 'invalid char'],
    ['-example.com/x', 'leading dash'],
    ['example.com//x', 'double slash'],
    ['example.com/x/', 'trailing slash'],
    ['example.com/../x', 'invalid path element'],
    ['example.com/.x', 'leading dot in path element'],
    ['example.com/x.', 'trailing dot in path element'],
    ['example.com/a+b', "invalid char '+'"],
    ['example.com/com1', 'disallowed as path element component on Windows'],
    ['example.com/LPT1.txt', 'disallowed as path element component on Windows'],
    ['example.com/prog~1', 'trailing tilde and digits'],
    ['example.com/x/v1', 'invalid version'],
    ['example.com/x/v02', 'invalid version'],
    ['example.com/x/v2.1', 'invalid version'],
    ['gopkg.in/yaml', 'invalid version'],
    ['/example.com', 'empty path element'],
  ])('checkModulePath refuses %j (%s)', (path, why) => {
    expect(() => checkModulePath(path)).toThrow(why);
    expect(code(() => escapePath(path))).toBe('MODULE_INVALID');
  });

  it('accepts major version suffixes and matches versions to them', () => {
    expect(splitPathVersion('example.com/x/v2')).toEqual({ prefix: 'example.com/x', pathMajor: '/v2', ok: true });
    expect(splitPathVersion('gopkg.in/yaml.v2')).toEqual({ prefix: 'gopkg.in/yaml', pathMajor: '.v2', ok: true });
    expect(() => checkVersion('example.com/x/v2', 'v2.3.0')).not.toThrow();
    expect(() => checkVersion('example.com/x', 'v2.0.0+incompatible')).not.toThrow();
    expect(code(() => checkVersion('example.com/x', 'v2.0.0'))).toBe('VERSION_INVALID');
    expect(code(() => checkVersion('example.com/x/v2', 'v1.0.0'))).toBe('VERSION_INVALID');
    expect(code(() => checkVersion('example.com/x', 'v1.0'))).toBeUndefined();
    expect(code(() => checkVersion('example.com/x', '1.0.0'))).toBe('VERSION_INVALID');
  });

  it('checkFilePath allows Unicode letters and the safe punctuation only', () => {
    expect(() => checkFilePath('dir/ñandú é.go')).not.toThrow();
    expect(() => checkFilePath('.github/workflows/ci.yml')).not.toThrow();
    expect(() => checkFilePath('a/b:c')).toThrow("invalid char ':'");
    expect(() => checkFilePath('a/*.go')).toThrow("invalid char '*'");
    expect(() => checkFilePath('a/../b')).toThrow('invalid path element');
    expect(() => checkFilePath('aux.c')).toThrow('disallowed');
  });

  it('escapeVersion refuses what cannot be a file name', () => {
    expect(code(() => escapeVersion('v1/2'))).toBe('VERSION_INVALID');
    expect(code(() => escapeVersion('v1!'))).toBe('VERSION_INVALID');
    expect(code(() => escapeVersion('..'))).toBe('VERSION_INVALID');
  });
});
