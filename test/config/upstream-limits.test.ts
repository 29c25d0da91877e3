// Configuration keys that bound what an upstream may do (issue 13 items 8 and 9): idle timeouts
// per registry and for the GOPROXY, and tag list limits per registry.
import { describe, expect, it } from 'vitest';
import { parseConfig, parseDuration } from '../../config/index.js';
import { isFerryError } from '../../errors/index.js';

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('upstream limits in the configuration', () => {
  it('reads idleTimeout, maxTagPages, maxTags and maxTagListBytes on a registry, and goModules.idleTimeout', () => {
    const c = parseConfig(
      'version: 1\nregistries:\n  - host: r.example\n    idleTimeout: 45s\n    maxTagPages: 50\n    maxTags: 2000\n    maxTagListBytes: 8MiB\n' +
        'goModules:\n  idleTimeout: 2m\n',
      'f.yaml',
    );
    expect(c.registries[0]).toMatchObject({ host: 'r.example', idleTimeout: '45s', maxTagPages: 50, maxTags: 2000, maxTagListBytes: '8MiB' });
    expect(c.goModules?.idleTimeout).toBe('2m');
    // Unset: the built-in defaults apply (30 s idle, 10000 pages, 100000 tags, 64 MiB).
    const bare = parseConfig('version: 1\nregistries:\n  - host: r.example\n', 'f.yaml');
    expect(bare.registries[0]!.idleTimeout).toBeUndefined();
  });

  it('parses durations', () => {
    expect(parseDuration('45s')).toBe(45_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration(1.5)).toBe(1500);
    expect(isFerryError(errorOf(() => parseDuration('soon')), 'USAGE')).toBe(true);
  });

  it('refuses bad values with file:line:col, the key and what was expected', () => {
    const bad = (yaml: string): string => {
      const err = errorOf(() => parseConfig(yaml, 'f.yaml'));
      expect(isFerryError(err, 'CONFIG_INVALID')).toBe(true);
      return err.message;
    };
    expect(bad('version: 1\nregistries:\n  - host: r.example\n    idleTimeout: soon\n')).toBe(
      'f.yaml:4:18: registries[0].idleTimeout: expected a duration such as 30s, 2m or 500ms (a bare number means seconds)',
    );
    expect(bad('version: 1\nregistries:\n  - host: r.example\n    idleTimeout: 0\n')).toBe('f.yaml:4:18: registries[0].idleTimeout: Too small: expected number to be >0');
    expect(bad('version: 1\nregistries:\n  - host: r.example\n    maxTagPages: 0\n')).toBe('f.yaml:4:18: registries[0].maxTagPages: Too small: expected number to be >0');
    expect(bad('version: 1\nregistries:\n  - host: r.example\n    maxTags: 2.5\n')).toBe('f.yaml:4:14: registries[0].maxTags: expected int, got number 2.5');
    expect(bad('version: 1\nregistries:\n  - host: r.example\n    maxTagListBytes: lots\n')).toBe(
      'f.yaml:4:22: registries[0].maxTagListBytes: expected a size such as 700MB, 4GiB or a number of bytes',
    );
    expect(bad('version: 1\ngoModules:\n  idleTimeout: 10x\n')).toBe(
      'f.yaml:3:16: goModules.idleTimeout: expected a duration such as 30s, 2m or 500ms (a bare number means seconds)',
    );
    expect(bad('version: 1\nregistries:\n  - host: r.example\n    idleTimout: 3s\n')).toBe('f.yaml:4:5: registries[0].idleTimout: unknown key "idleTimout" (did you mean "idleTimeout"?)');
  });
});
