import { describe, expect, it } from 'vitest';
import { PackedStrings } from '../../sync/packed.js';

describe('PackedStrings', () => {
  it('gives back each string, in order, empty ones included', () => {
    const list = ['latest', '', 'v1.2.3', 'sha256-' + 'a'.repeat(64) + '.sig', 'é-unicode', 'x'];
    const p = PackedStrings.of(list);
    expect(p.length).toBe(list.length);
    expect(list.map((_, i) => p.at(i))).toEqual(list);
    expect([...p]).toEqual(list);
    expect(new Set(p)).toEqual(new Set(list));
  });

  it('packs an empty list', () => {
    const p = PackedStrings.of([]);
    expect(p.length).toBe(0);
    expect([...p]).toEqual([]);
  });

  it('refuses an index out of range', () => {
    const p = PackedStrings.of(['a', 'b']);
    expect(() => p.at(2)).toThrow(RangeError);
    expect(() => p.at(-1)).toThrow(/out of range 0\.\.1/);
    expect(() => p.at(0.5)).toThrow(RangeError);
  });
});
