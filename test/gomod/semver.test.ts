import { describe, expect, it } from 'vitest';
import {
  build,
  canonical,
  canonicalModuleVersion,
  compare,
  isPseudoVersion,
  isValid,
  latestVersion,
  major,
  majorMinor,
  matchesRange,
  prerelease,
  pseudoVersionTime,
  sortVersions,
} from '../../gomod/index.js';

describe('Go semver', () => {
  it('validates like golang.org/x/mod/semver', () => {
    for (const v of ['v1', 'v1.2', 'v1.2.3', 'v1.2.3-pre', 'v1.2.3-pre.1+meta', 'v2.0.0+incompatible', 'v0.0.0-20191109021931-daa7c04131f5']) {
      expect(isValid(v), v).toBe(true);
    }
    for (const v of ['', '1.2.3', 'v1.2.3.4', 'v01.2.3', 'v1.02.3', 'v1.2-pre', 'v1.2.3-01', 'v1.2.3-', 'v1.2.3+', 'v1.2.3-a..b', 'bad']) {
      expect(isValid(v), v).toBe(false);
    }
  });

  it('canonicalises, keeping +incompatible only in the module form', () => {
    expect(canonical('v1')).toBe('v1.0.0');
    expect(canonical('v1.2')).toBe('v1.2.0');
    expect(canonical('v1.2.3+meta')).toBe('v1.2.3');
    expect(canonical('v2.0.0+incompatible')).toBe('v2.0.0');
    expect(canonicalModuleVersion('v2.0.0+incompatible')).toBe('v2.0.0+incompatible');
    expect(canonical('nope')).toBe('');
    expect(major('v2.1.0')).toBe('v2');
    expect(majorMinor('v2.1.0')).toBe('v2.1');
    expect(majorMinor('v2')).toBe('v2.0');
    expect(prerelease('v2.1.0-pre+meta')).toBe('-pre');
    expect(build('v2.1.0-pre+meta')).toBe('+meta');
  });

  it('compares by precedence: numeric fields, pre-releases, build ignored', () => {
    expect(compare('v1.10.0', 'v1.9.0')).toBe(1);
    expect(compare('v1.0.0-alpha', 'v1.0.0')).toBe(-1);
    expect(compare('v1.0.0-alpha.1', 'v1.0.0-alpha.beta')).toBe(-1);
    expect(compare('v1.0.0-beta.2', 'v1.0.0-beta.11')).toBe(-1);
    expect(compare('v2.0.0+incompatible', 'v2.0.0')).toBe(0);
    expect(compare('v1', 'v1.0.0')).toBe(0);
    expect(compare('bad', 'v0.0.0')).toBe(-1);
    expect(compare('bad', 'worse')).toBe(0);
  });

  it('sorts pre-releases, pseudo-versions and +incompatible', () => {
    const list = [
      'v1.2.4-0.20191109021931-daa7c04131f5',
      'v2.0.0+incompatible',
      'v1.2.3',
      'v0.0.0-20191109021931-daa7c04131f5',
      'v1.0.0-rc.1',
      'v1.0.0',
      'v1.2.4',
      'v1.10.0',
      'v1.0.0-beta.11',
      'v1.0.0-beta.2',
    ];
    expect(sortVersions(list)).toEqual([
      'v0.0.0-20191109021931-daa7c04131f5',
      'v1.0.0-beta.2',
      'v1.0.0-beta.11',
      'v1.0.0-rc.1',
      'v1.0.0',
      'v1.2.3',
      'v1.2.4-0.20191109021931-daa7c04131f5',
      'v1.2.4',
      'v1.10.0',
      'v2.0.0+incompatible',
    ]);
  });

  it('recognises pseudo-versions (module.IsPseudoVersion)', () => {
    expect(isPseudoVersion('v0.0.0-20191109021931-daa7c04131f5')).toBe(true);
    expect(isPseudoVersion('v1.2.4-0.20191109021931-daa7c04131f5')).toBe(true);
    expect(isPseudoVersion('v1.2.3-pre.0.20191109021931-daa7c04131f5')).toBe(true);
    expect(isPseudoVersion('v2.0.1-0.20191109021931-daa7c04131f5+incompatible')).toBe(true);
    expect(isPseudoVersion('v1.2.3')).toBe(false);
    expect(isPseudoVersion('v1.2.3-rc.1')).toBe(false);
    expect(isPseudoVersion('v1.2.3-2019110902193-daa7c04131f5')).toBe(false);
    expect(pseudoVersionTime('v1.2.4-0.20191109021931-daa7c04131f5')).toBe('2019-11-09T02:19:31Z');
    expect(pseudoVersionTime('v1.2.4')).toBeUndefined();
  });

  it('latestVersion: highest release, else highest pre-release; never pseudo or retracted', () => {
    expect(latestVersion(['v1.0.0', 'v1.1.0-rc.1', 'v0.9.0'])).toBe('v1.0.0');
    expect(latestVersion(['v1.1.0-rc.1', 'v1.1.0-beta'])).toBe('v1.1.0-rc.1');
    expect(latestVersion(['v0.0.0-20191109021931-daa7c04131f5'])).toBeUndefined();
    expect(latestVersion(['v1.0.0', 'v1.2.4-0.20191109021931-daa7c04131f5'])).toBe('v1.0.0');
    expect(latestVersion(['v1.0.0', 'v1.1.0'], { isRetracted: (v) => v === 'v1.1.0' })).toBe('v1.0.0');
    expect(latestVersion(['v1.0.0', 'v2.0.0+incompatible'])).toBe('v2.0.0+incompatible');
    expect(latestVersion([])).toBeUndefined();
  });

  it('matches ranges', () => {
    expect(matchesRange('v1.5.0', '>=1.0.0 <2')).toBe(true);
    expect(matchesRange('v2.0.0', '>=1.0.0 <2')).toBe(false);
    expect(matchesRange('v2.0.0-rc.1', '>=1.0.0 <2')).toBe(false);
    expect(matchesRange('v0.9.9', '>=1.0.0 <2')).toBe(false);
    expect(matchesRange('v0.3.0', '>=v0.3.0')).toBe(true);
    expect(matchesRange('v0.3.0-rc.1', '>=v0.3.0')).toBe(false);
    expect(matchesRange('v1.2.7', '1.2.x')).toBe(true);
    expect(matchesRange('v1.3.0', '1.2.x')).toBe(false);
    expect(matchesRange('v1.2.3', '=v1.2.3')).toBe(true);
    expect(matchesRange('v1.2.3', 'v1.2.3')).toBe(true);
    expect(matchesRange('v1.2.4', 'v1.2.3')).toBe(false);
    expect(matchesRange('v2.3.0+incompatible', '>=2 <3')).toBe(true);
    expect(matchesRange('v1.2.4-0.20191109021931-daa7c04131f5', '>=1.2.3 <1.3')).toBe(true);
    expect(matchesRange('v1.4.0', '^1.2.0')).toBe(true);
    expect(matchesRange('v0.3.0', '^0.2.0')).toBe(false);
    expect(matchesRange('v1.2.9', '~1.2.0')).toBe(true);
    expect(matchesRange('v1.3.0', '~1.2.0')).toBe(false);
    expect(matchesRange('v3.0.0', '<2 || >=3')).toBe(true);
    expect(matchesRange('v1.0.0', '>1.0')).toBe(false);
    expect(matchesRange('v1.1.0', '>1.0')).toBe(true);
    expect(matchesRange('v1.0.9', '<=1.0')).toBe(true);
    expect(matchesRange('v9.9.9', '*')).toBe(true);
    expect(matchesRange('garbage', '*')).toBe(false);
    expect(() => matchesRange('v1.0.0', '>=banana')).toThrow('invalid version range');
    expect(() => matchesRange('v1.0.0', '>=')).toThrow('invalid version range');
  });
});
