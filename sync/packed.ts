/**
 * A list of strings packed into one string and an offsets array. A repository's tag list at
 * 50,000 tags is 50,000 heap strings and the arrays and sets that hold them, several megabytes
 * alive for the whole pass; V8 lets the old generation grow to a multiple of what the heap holds
 * before it collects, so each megabyte held for a pass costs several at its peak. Packed, the
 * list is its characters and four bytes a tag; a tag is cut out when it is worked on.
 */
export class PackedStrings {
  private constructor(
    private readonly text: string,
    /** ends[i]: where string i ends in `text` (it starts where string i - 1 ends). */
    private readonly ends: Uint32Array,
  ) {}

  /** Packs `list`, in its order. */
  static of(list: readonly string[]): PackedStrings {
    const ends = new Uint32Array(list.length);
    let end = 0;
    for (let i = 0; i < list.length; i++) {
      end += list[i]!.length;
      ends[i] = end;
    }
    return new PackedStrings(list.join(''), ends);
  }

  /** How many strings. */
  get length(): number {
    return this.ends.length;
  }

  /** String `i` (0 ≤ i < length). */
  at(i: number): string {
    if (!Number.isInteger(i) || i < 0 || i >= this.ends.length) throw new RangeError(`PackedStrings.at(${i}): out of range 0..${this.ends.length - 1}`);
    return this.text.slice(i === 0 ? 0 : this.ends[i - 1], this.ends[i]);
  }

  /** The strings, in order. */
  *[Symbol.iterator](): Generator<string> {
    for (let i = 0; i < this.ends.length; i++) yield this.at(i);
  }
}
