import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../errors/index.js';
import { isRetracted, parseGoMod, retractionRationale } from '../../gomod/index.js';

const REALISTIC = `// Deprecated: use example.com/new instead.
module example.com/old

go 1.21

toolchain go1.21.5

godebug panicnil=1

require (
	github.com/Azure/azure-sdk-for-go v68.0.0+incompatible
	github.com/pkg/errors v0.9.1
	golang.org/x/text v0.14.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect; used by tests
	"example.com/quoted" v1.2 // not indirect
)

require example.com/single v1.0.0-rc.1

exclude (
	golang.org/x/net v0.0.0-20190311183353-d8887717615a
)

replace example.com/old/sub => ./sub

replace (
	github.com/pkg/errors v0.9.1 => github.com/fork/errors v0.9.2
	golang.org/x/text => ../text // local checkout
)

// Published by mistake.
retract v1.0.1

retract (
	// Data race in the cache.

	[v1.1.0, v1.1.5]
	v1.2.0 // tag moved
)
`;

describe('parseGoMod', () => {
  it('parses a realistic go.mod', () => {
    const m = parseGoMod(Buffer.from(REALISTIC));
    expect(m.module).toBe('example.com/old');
    expect(m.deprecated).toBe('use example.com/new instead.');
    expect(m.go).toBe('1.21');
    expect(m.toolchain).toBe('go1.21.5');
    expect(m.godebug).toEqual([{ key: 'panicnil', value: '1' }]);
    expect(m.require).toEqual([
      { path: 'github.com/Azure/azure-sdk-for-go', version: 'v68.0.0+incompatible', indirect: false },
      { path: 'github.com/pkg/errors', version: 'v0.9.1', indirect: false },
      { path: 'golang.org/x/text', version: 'v0.14.0', indirect: true },
      { path: 'gopkg.in/yaml.v3', version: 'v3.0.1', indirect: true },
      { path: 'example.com/quoted', version: 'v1.2.0', indirect: false },
      { path: 'example.com/single', version: 'v1.0.0-rc.1', indirect: false },
    ]);
    expect(m.exclude).toEqual([{ path: 'golang.org/x/net', version: 'v0.0.0-20190311183353-d8887717615a' }]);
    expect(m.replace).toEqual([
      { old: { path: 'example.com/old/sub' }, new: { path: './sub' } },
      { old: { path: 'github.com/pkg/errors', version: 'v0.9.1' }, new: { path: 'github.com/fork/errors', version: 'v0.9.2' } },
      { old: { path: 'golang.org/x/text' }, new: { path: '../text' } },
    ]);
    expect(m.retract).toEqual([
      { low: 'v1.0.1', high: 'v1.0.1', rationale: 'Published by mistake.' },
      { low: 'v1.1.0', high: 'v1.1.5', rationale: 'Data race in the cache.' },
      { low: 'v1.2.0', high: 'v1.2.0', rationale: 'tag moved' },
    ]);
    expect(isRetracted('v1.1.3', m.retract)).toBe(true);
    expect(isRetracted('v1.1.6', m.retract)).toBe(false);
    expect(isRetracted('v1.0.1', m.retract)).toBe(true);
    expect(retractionRationale('v1.2.0', m.retract)).toEqual(['tag moved']);
  });

  it('handles quoted strings with Go escapes and CRLF line endings', () => {
    const m = parseGoMod('module "example.com/\\x71uote"\r\n\r\nrequire example.com/a v1.0.0 // indirect\r\n');
    expect(m.module).toBe('example.com/quote');
    expect(m.require).toEqual([{ path: 'example.com/a', version: 'v1.0.0', indirect: true }]);
  });

  it('lax mode ignores main-module-only and unknown directives, as for dependencies', () => {
    const text = 'module example.com/m\nreplace a.com/x => ./x\nfrobnicate yes\nretract banana\nrequire b.com/y v1.0.0\n';
    expect(() => parseGoMod(text)).toThrow(/unknown directive: frobnicate/);
    const m = parseGoMod(text, { lax: true });
    expect(m.replace).toEqual([]);
    expect(m.retract).toEqual([]);
    expect(m.require).toEqual([{ path: 'b.com/y', version: 'v1.0.0', indirect: false }]);
    expect(parseGoMod('module example.com/m\ngo 1.18beta1-extra\n', { lax: true }).go).toBe('1.18');
  });

  it.each([
    ['module example.com/m\nrequire example.com/a\n', 'go.mod:2: usage: require module/path v1.2.3'],
    ['module example.com/m\nrequire example.com/a 1.0.0\n', 'go.mod:2: require example.com/a: version "1.0.0" invalid: must be of the form v1.2.3'],
    ['module example.com/m\nrequire example.com/a v2.0.0\n', 'go.mod:2: require example.com/a: version "v2.0.0" invalid: should be v0 or v1, not v2'],
    ['module example.com/m\n\nreplace example.com/a => example.com/b\n', 'go.mod:3: replacement module without version must be directory path'],
    ['module example.com/m\nretract [v1.0.0 v1.2.0]\n', "go.mod:2: retract: expected ',' after version"],
    ['module example.com/m\ngo 1.21.x\n', "go.mod:2: invalid go version '1.21.x'"],
    ['module example.com/m\nrequire (\n\texample.com/a v1.0.0\n', 'unterminated block'],
    ['module example.com/m\n/* no */\n', 'mod files must use // comments'],
    ['module example.com/m\nmodule example.com/n\n', 'go.mod:2: repeated module statement'],
    ['go 1.21\n', 'missing module declaration'],
    ['module example.com/m\nrequire \'x\' v1.0.0\n', 'unquoted string cannot contain quote'],
  ])('refuses %j', (text, msg) => {
    let err: unknown;
    try {
      parseGoMod(text);
    } catch (e) {
      err = e;
    }
    expect(isFerryError(err, 'GOMOD_INVALID')).toBe(true);
    expect((err as Error).message).toContain(msg);
  });
});
