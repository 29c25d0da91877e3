/**
 * The tamper-evident log behind the Go checksum database, ported from golang.org/x/mod/sumdb/tlog
 * (tlog.go, tile.go, note.go): RFC 6962 record and node hashes, the stored-hash ordering, record
 * (inclusion) and tree (consistency) proofs, tiles and their paths, and the tile hash reader that
 * authenticates every downloaded tile against a signed tree head before any hash is used.
 *
 * Indexes and sizes are JS numbers: exact up to 2^53, far beyond any real log. Go's shifts are
 * written as multiplications and floored divisions because JS bit operators are 32-bit.
 */
import { createHash } from 'node:crypto';

/** Size of a hash in bytes. */
export const HASH_SIZE = 32;

/** The tile height the Go checksum database uses. */
export const SUMDB_TILE_HEIGHT = 8;

/** A tree head: the number of records and the root hash. */
export interface Tree {
  readonly n: number;
  readonly hash: Buffer;
}

/** A tile: height h, level l (-1 for record data), number n within the level, width w hashes. */
export interface Tile {
  readonly h: number;
  readonly l: number;
  readonly n: number;
  readonly w: number;
}

/** Reads hashes by stored hash index (tlog.HashReader), asynchronously. */
export interface HashReader {
  readHashes(indexes: readonly number[]): Promise<Buffer[]>;
}

/** Reads tiles of a log (tlog.TileReader); saveTiles is called once the tiles are authenticated. */
export interface TileReader {
  height(): number;
  readTiles(tiles: readonly Tile[]): Promise<Buffer[]>;
  saveTiles(tiles: readonly Tile[], data: readonly Buffer[]): void | Promise<void>;
}

/** A proof failure or malformed input in the log code; callers turn it into a FerryError. */
export class TlogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlogError';
  }
}

const PROOF_FAILED = 'invalid transparency proof';

function pow2(k: number): number {
  return 2 ** k;
}

function shr(x: number, k: number): number {
  return Math.floor(x / 2 ** k);
}

function trailingZeros(x: number): number {
  if (x === 0) return 64;
  let n = 0;
  while (x % 2 === 0) {
    x /= 2;
    n++;
  }
  return n;
}

/** maxpow2: the largest power of two k smaller than n, and log2(k). */
function maxpow2(n: number): [number, number] {
  let l = 0;
  while (pow2(l + 1) < n) l++;
  return [pow2(l), l];
}

/** RecordHash: SHA-256(0x00 ‖ data), RFC 6962 §2.1. */
export function recordHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.from([0])).update(data).digest();
}

/** NodeHash: SHA-256(0x01 ‖ left ‖ right), RFC 6962 §2.1. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.from([1])).update(left).update(right).digest();
}

/** An all-zero hash, the hash of the empty tree. */
export function zeroHash(): Buffer {
  return Buffer.alloc(HASH_SIZE);
}

/** Parses a base64 hash (tlog.ParseHash); undefined when malformed. */
export function parseHash(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.length === HASH_SIZE ? b : undefined;
}

/** StoredHashIndex: the position of hash (level, n) in the dense stored-hash order. */
export function storedHashIndex(level: number, n: number): number {
  for (let l = level; l > 0; l--) n = 2 * n + 1;
  let i = 0;
  for (; n > 0; n = shr(n, 1)) i += n;
  return i + level;
}

/** SplitStoredHashIndex: the inverse of storedHashIndex. */
export function splitStoredHashIndex(index: number): [number, number] {
  let n = Math.floor(index / 2);
  let indexN = storedHashIndex(0, n);
  if (indexN > index) throw new TlogError('bad math');
  for (;;) {
    const x = indexN + 1 + trailingZeros(n + 1);
    if (x > index) break;
    n++;
    indexN = x;
  }
  const level = index - indexN;
  return [level, shr(n, level)];
}

/** StoredHashCount: how many hashes a tree of n records stores. */
export function storedHashCount(n: number): number {
  if (n === 0) return 0;
  let numHash = storedHashIndex(0, n - 1) + 1;
  for (let i = n - 1; i % 2 === 1; i = shr(i, 1)) numHash++;
  return numHash;
}

/** StoredHashes: the hashes to append when writing record n (with record hash h). */
export async function storedHashesForRecordHash(n: number, h: Buffer, r: HashReader): Promise<Buffer[]> {
  const hashes = [h];
  const m = trailingZeros(n + 1);
  const indexes: number[] = new Array<number>(m);
  for (let i = 0; i < m; i++) indexes[m - 1 - i] = storedHashIndex(i, shr(n, i) - 1);
  const old = await r.readHashes(indexes);
  if (old.length !== indexes.length) throw new TlogError(`tlog: ReadHashes(${indexes.length} indexes) = ${old.length} hashes`);
  for (let i = 0; i < m; i++) {
    h = nodeHash(old[m - 1 - i]!, h);
    hashes.push(h);
  }
  return hashes;
}

function subTreeIndex(lo: number, hi: number, need: number[]): number[] {
  while (lo < hi) {
    const [k, level] = maxpow2(hi - lo + 1);
    if (lo % k !== 0) throw new TlogError('tlog: bad math in subTreeIndex');
    need.push(storedHashIndex(level, shr(lo, level)));
    lo += k;
  }
  return need;
}

function subTreeHash(lo: number, hi: number, hashes: Buffer[]): [Buffer, Buffer[]] {
  let numTree = 0;
  while (lo < hi) {
    const [k] = maxpow2(hi - lo + 1);
    if (lo % k !== 0 || lo >= hi) throw new TlogError('tlog: bad math in subTreeHash');
    numTree++;
    lo += k;
  }
  if (hashes.length < numTree) throw new TlogError('tlog: bad index math in subTreeHash');
  let h = hashes[numTree - 1]!;
  for (let i = numTree - 2; i >= 0; i--) h = nodeHash(hashes[i]!, h);
  return [h, hashes.slice(numTree)];
}

/** TreeHash: the root hash of the tree of n records, read through r (all-zero for n = 0). */
export async function treeHash(n: number, r: HashReader): Promise<Buffer> {
  if (n === 0) return zeroHash();
  const indexes = subTreeIndex(0, n, []);
  const hashes = await r.readHashes(indexes);
  if (hashes.length !== indexes.length) throw new TlogError(`tlog: ReadHashes(${indexes.length} indexes) = ${hashes.length} hashes`);
  const [hash, rest] = subTreeHash(0, n, hashes);
  if (rest.length !== 0) throw new TlogError('tlog: bad index math in TreeHash');
  return hash;
}

function leafProofIndex(lo: number, hi: number, n: number, need: number[]): number[] {
  if (!(lo <= n && n < hi)) throw new TlogError('tlog: bad math in leafProofIndex');
  if (lo + 1 === hi) return need;
  const [k] = maxpow2(hi - lo);
  if (n < lo + k) {
    leafProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    leafProofIndex(lo + k, hi, n, need);
  }
  return need;
}

function leafProof(lo: number, hi: number, n: number, hashes: Buffer[]): [Buffer[], Buffer[]] {
  if (!(lo <= n && n < hi)) throw new TlogError('tlog: bad math in leafProof');
  if (lo + 1 === hi) return [[], hashes];
  let p: Buffer[];
  let th: Buffer;
  const [k] = maxpow2(hi - lo);
  if (n < lo + k) {
    [p, hashes] = leafProof(lo, lo + k, n, hashes);
    [th, hashes] = subTreeHash(lo + k, hi, hashes);
  } else {
    [th, hashes] = subTreeHash(lo, lo + k, hashes);
    [p, hashes] = leafProof(lo + k, hi, n, hashes);
  }
  return [[...p, th], hashes];
}

/** ProveRecord: the proof that the tree of size t contains record n (RFC 6962 audit path). */
export async function proveRecord(t: number, n: number, r: HashReader): Promise<Buffer[]> {
  if (t < 0 || n < 0 || n >= t) throw new TlogError('tlog: invalid inputs in ProveRecord');
  const indexes = leafProofIndex(0, t, n, []);
  if (indexes.length === 0) return [];
  const hashes = await r.readHashes(indexes);
  if (hashes.length !== indexes.length) throw new TlogError(`tlog: ReadHashes(${indexes.length} indexes) = ${hashes.length} hashes`);
  const [p, rest] = leafProof(0, t, n, hashes);
  if (rest.length !== 0) throw new TlogError('tlog: bad index math in ProveRecord');
  return p;
}

function runRecordProof(p: readonly Buffer[], lo: number, hi: number, n: number, leaf: Buffer): Buffer {
  if (!(lo <= n && n < hi)) throw new TlogError('tlog: bad math in runRecordProof');
  if (lo + 1 === hi) {
    if (p.length !== 0) throw new TlogError(PROOF_FAILED);
    return leaf;
  }
  if (p.length === 0) throw new TlogError(PROOF_FAILED);
  const [k] = maxpow2(hi - lo);
  const last = p[p.length - 1]!;
  if (n < lo + k) return nodeHash(runRecordProof(p.slice(0, -1), lo, lo + k, n, leaf), last);
  return nodeHash(last, runRecordProof(p.slice(0, -1), lo + k, hi, n, leaf));
}

/** CheckRecord: throws unless p proves that the tree (t, th) has record n with hash h. */
export function checkRecord(p: readonly Buffer[], t: number, th: Buffer, n: number, h: Buffer): void {
  if (t < 0 || n < 0 || n >= t) throw new TlogError('tlog: invalid inputs in CheckRecord');
  if (!runRecordProof(p, 0, t, n, h).equals(th)) throw new TlogError(PROOF_FAILED);
}

function treeProofIndex(lo: number, hi: number, n: number, need: number[]): number[] {
  if (!(lo < n && n <= hi)) throw new TlogError('tlog: bad math in treeProofIndex');
  if (n === hi) {
    if (lo === 0) return need;
    return subTreeIndex(lo, hi, need);
  }
  const [k] = maxpow2(hi - lo);
  if (n <= lo + k) {
    treeProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    treeProofIndex(lo + k, hi, n, need);
  }
  return need;
}

function treeProof(lo: number, hi: number, n: number, hashes: Buffer[]): [Buffer[], Buffer[]] {
  if (!(lo < n && n <= hi)) throw new TlogError('tlog: bad math in treeProof');
  if (n === hi) {
    if (lo === 0) return [[], hashes];
    const [th, rest] = subTreeHash(lo, hi, hashes);
    return [[th], rest];
  }
  let p: Buffer[];
  let th: Buffer;
  const [k] = maxpow2(hi - lo);
  if (n <= lo + k) {
    [p, hashes] = treeProof(lo, lo + k, n, hashes);
    [th, hashes] = subTreeHash(lo + k, hi, hashes);
  } else {
    [th, hashes] = subTreeHash(lo, lo + k, hashes);
    [p, hashes] = treeProof(lo + k, hi, n, hashes);
  }
  return [[...p, th], hashes];
}

/** ProveTree: the proof that the tree of size t contains the tree of size n as a prefix. */
export async function proveTree(t: number, n: number, r: HashReader): Promise<Buffer[]> {
  if (t < 1 || n < 1 || n > t) throw new TlogError('tlog: invalid inputs in ProveTree');
  const indexes = treeProofIndex(0, t, n, []);
  if (indexes.length === 0) return [];
  const hashes = await r.readHashes(indexes);
  if (hashes.length !== indexes.length) throw new TlogError(`tlog: ReadHashes(${indexes.length} indexes) = ${hashes.length} hashes`);
  const [p, rest] = treeProof(0, t, n, hashes);
  if (rest.length !== 0) throw new TlogError('tlog: bad index math in ProveTree');
  return p;
}

function runTreeProof(p: readonly Buffer[], lo: number, hi: number, n: number, old: Buffer): [Buffer, Buffer] {
  if (!(lo < n && n <= hi)) throw new TlogError('tlog: bad math in runTreeProof');
  if (n === hi) {
    if (lo === 0) {
      if (p.length !== 0) throw new TlogError(PROOF_FAILED);
      return [old, old];
    }
    if (p.length !== 1) throw new TlogError(PROOF_FAILED);
    return [p[0]!, p[0]!];
  }
  if (p.length === 0) throw new TlogError(PROOF_FAILED);
  const [k] = maxpow2(hi - lo);
  const last = p[p.length - 1]!;
  if (n <= lo + k) {
    const [oh, th] = runTreeProof(p.slice(0, -1), lo, lo + k, n, old);
    return [oh, nodeHash(th, last)];
  }
  const [oh, th] = runTreeProof(p.slice(0, -1), lo + k, hi, n, old);
  return [nodeHash(last, oh), nodeHash(last, th)];
}

/** CheckTree: throws unless p proves that the tree (t, th) contains the tree (n, h) as a prefix. */
export function checkTree(p: readonly Buffer[], t: number, th: Buffer, n: number, h: Buffer): void {
  if (t < 1 || n < 1 || n > t) throw new TlogError('tlog: invalid inputs in CheckTree');
  const [h2, th2] = runTreeProof(p, 0, t, n, h);
  if (!th2.equals(th) || !h2.equals(h)) throw new TlogError(PROOF_FAILED);
}

// ---- tiles ----

function tileForIndexFull(h: number, index: number): { tile: Tile; start: number; end: number } {
  let [level, n] = splitStoredHashIndex(index);
  const l = Math.floor(level / h);
  level -= l * h;
  const tn = shr(n * pow2(level), h);
  n -= (tn * pow2(h)) / pow2(level);
  const w = (n + 1) * pow2(level);
  return { tile: { h, l, n: tn, w }, start: n * pow2(level) * HASH_SIZE, end: (n + 1) * pow2(level) * HASH_SIZE };
}

/** TileForIndex: the tile of height h and least width that stores hash `index`. */
export function tileForIndex(h: number, index: number): Tile {
  if (h <= 0) throw new TlogError(`TileForIndex: invalid height ${h}`);
  return tileForIndexFull(h, index).tile;
}

/** The subtree hash of the 2^k hashes in data. */
export function tileHash(data: Buffer): Buffer {
  if (data.length === 0) throw new TlogError('bad math in tileHash');
  if (data.length === HASH_SIZE) return Buffer.from(data);
  const n = data.length / 2;
  return nodeHash(tileHash(data.subarray(0, n)), tileHash(data.subarray(n)));
}

/** HashFromTile: the hash at `index`, given tile t (TileForIndex(t.h, index) or wider) and its data. */
export function hashFromTile(t: Tile, data: Buffer, index: number): Buffer {
  if (t.h < 1 || t.h > 30 || t.l < 0 || t.l >= 64 || t.w < 1 || t.w > pow2(t.h)) throw new TlogError(`invalid tile ${tilePath(t)}`);
  if (data.length < t.w * HASH_SIZE) throw new TlogError(`data len ${data.length} too short for tile ${tilePath(t)}`);
  const { tile: t1, start, end } = tileForIndexFull(t.h, index);
  if (t.l !== t1.l || t.n !== t1.n || t.w < t1.w) throw new TlogError(`index ${index} is in ${tilePath(t1)} not ${tilePath(t)}`);
  return tileHash(data.subarray(start, end));
}

/** NewTiles: the tiles to publish when a tree grows from oldTreeSize to newTreeSize. */
export function newTiles(h: number, oldTreeSize: number, newTreeSize: number): Tile[] {
  if (h <= 0) throw new TlogError(`NewTiles: invalid height ${h}`);
  const tiles: Tile[] = [];
  for (let level = 0; shr(newTreeSize, h * level) > 0; level++) {
    const oldN = shr(oldTreeSize, h * level);
    const newN = shr(newTreeSize, h * level);
    for (let n = shr(oldN, h); n < shr(newN, h); n++) tiles.push({ h, l: level, n, w: pow2(h) });
    const n = shr(newN, h);
    const maxW = newN - n * pow2(h);
    let minW = 1;
    if (oldN > n * pow2(h)) minW = oldN - n * pow2(h);
    for (let w = minW; w <= maxW; w++) tiles.push({ h, l: level, n, w });
  }
  return tiles;
}

/** ReadTileData: the bytes of tile t, read from the stored hashes. */
export async function readTileData(t: Tile, r: HashReader): Promise<Buffer> {
  const size = t.w === 0 ? pow2(t.h) : t.w;
  const start = t.n * pow2(t.h);
  const indexes: number[] = [];
  for (let i = 0; i < size; i++) indexes.push(storedHashIndex(t.h * t.l, start + i));
  const hashes = await r.readHashes(indexes);
  if (hashes.length !== indexes.length) throw new TlogError(`tlog: ReadHashes(${indexes.length} indexes) = ${hashes.length} hashes`);
  return Buffer.concat(hashes);
}

/** Tile.Path: `tile/H/L/NNN[.p/W]`, N written in 3-digit groups with `x` before all but the last. */
export function tilePath(t: Tile): string {
  let n = t.n;
  let nStr = String(n % 1000).padStart(3, '0');
  while (n >= 1000) {
    n = Math.floor(n / 1000);
    nStr = `x${String(n % 1000).padStart(3, '0')}/${nStr}`;
  }
  const pStr = t.w !== pow2(t.h) ? `.p/${t.w}` : '';
  const l = t.l === -1 ? 'data' : String(t.l);
  return `tile/${t.h}/${l}/${nStr}${pStr}`;
}

/** ParseTilePath: the tile of a tile path; undefined unless the path is exactly canonical. */
export function parseTilePath(path: string): Tile | undefined {
  let f = path.split('/');
  if (f.length < 4 || f[0] !== 'tile') return undefined;
  const digits = /^[0-9]+$/;
  if (!digits.test(f[1]!)) return undefined;
  const h = Number(f[1]);
  const isData = f[2] === 'data';
  if (!isData && !digits.test(f[2]!)) return undefined;
  let l = isData ? 0 : Number(f[2]);
  if (h < 1 || h > 30 || l < 0) return undefined;
  let w = pow2(h);
  const dotP = f[f.length - 2]!;
  if (dotP.endsWith('.p')) {
    const last = f[f.length - 1]!;
    if (!digits.test(last)) return undefined;
    const ww = Number(last);
    if (ww <= 0 || ww >= w) return undefined;
    w = ww;
    f = [...f.slice(0, -2), dotP.slice(0, -2)];
  }
  let n = 0;
  for (const s of f.slice(3)) {
    const e = s.startsWith('x') ? s.slice(1) : s;
    if (!digits.test(e)) return undefined;
    const nn = Number(e);
    if (nn >= 1000) return undefined;
    n = n * 1000 + nn;
  }
  if (isData) l = -1;
  const t: Tile = { h, l, n, w };
  return tilePath(t) === path ? t : undefined;
}

function tileKey(t: Tile): string {
  return `${t.h}/${t.l}/${t.n}/${t.w}`;
}

/** tileParent: t's k'th parent tile in the tiles of a tree of size n; undefined when there is none. */
function tileParent(t: Tile, k: number, n: number): Tile | undefined {
  const l = t.l + k;
  const tn = shr(t.n, k * t.h);
  let w = pow2(t.h);
  const max = shr(n, l * t.h);
  if (tn * pow2(t.h) + w >= max) {
    if (tn * pow2(t.h) >= max) return undefined;
    w = max - tn * pow2(t.h);
  }
  return { h: t.h, l, n: tn, w };
}

/**
 * TileHashReader: a HashReader answering from tiles of `tree`, which authenticates every tile
 * it loads against the tree hash (and full tiles against their parents) before returning any
 * hash, so every hash it returns is proven to be in the tree.
 */
export function tileHashReader(tree: Tree, tr: TileReader): HashReader {
  return {
    async readHashes(indexes: readonly number[]): Promise<Buffer[]> {
      const h = tr.height();
      const tileOrder = new Map<string, number>();
      const tiles: Tile[] = [];
      const stx = subTreeIndex(0, tree.n, []);
      const stxTileOrder: number[] = new Array<number>(stx.length).fill(0);
      stx.forEach((x, i) => {
        const tile = tileParent(tileForIndex(h, x), 0, tree.n);
        if (tile === undefined) throw new TlogError(`bad math in tileHashReader: no tile for index ${x}`);
        const j = tileOrder.get(tileKey(tile));
        if (j !== undefined) {
          stxTileOrder[i] = j;
          return;
        }
        stxTileOrder[i] = tiles.length;
        tileOrder.set(tileKey(tile), tiles.length);
        tiles.push(tile);
      });
      // Go's loop below starts at len(stx), the number of subtree indexes, not of their (deduplicated)
      // tiles, and so skips authenticating the first child tiles when several indexes share a tile
      // (a tree of 600 records: 4 indexes, 2 tiles). Ferry authenticates every tile after them.
      const stxTiles = tiles.length;
      const indexTileOrder: number[] = new Array<number>(indexes.length).fill(0);
      const limit = storedHashIndex(0, tree.n);
      indexes.forEach((x, i) => {
        if (x >= limit) throw new TlogError('indexes not in tree');
        const tile = tileForIndex(h, x);
        let k = 0;
        for (; ; k++) {
          const p = tileParent(tile, k, tree.n);
          const j = p === undefined ? undefined : tileOrder.get(tileKey(p));
          if (j !== undefined) {
            if (k === 0) indexTileOrder[i] = j;
            break;
          }
          if (p === undefined) throw new TlogError(`bad math in tileHashReader: ${tree.n} ${x}: no parent`);
        }
        for (k--; k >= 0; k--) {
          const p = tileParent(tile, k, tree.n);
          if (p === undefined || p.w !== pow2(p.h)) {
            throw new TlogError(`bad math in tileHashReader: ${tree.n} ${x} ${p ? tilePath(p) : 'none'}`);
          }
          tileOrder.set(tileKey(p), tiles.length);
          if (k === 0) indexTileOrder[i] = tiles.length;
          tiles.push(p);
        }
      });
      const data = await tr.readTiles(tiles);
      if (data.length !== tiles.length) throw new TlogError(`TileReader returned bad result slice (len=${data.length}, want ${tiles.length})`);
      tiles.forEach((tile, i) => {
        if (data[i]!.length !== tile.w * HASH_SIZE) {
          throw new TlogError(`TileReader returned bad result slice (${tilePath(tile)} len=${data[i]!.length}, want ${tile.w * HASH_SIZE})`);
        }
      });
      if (stx.length > 0) {
        const lastStx = stx.length - 1;
        let th = hashFromTile(tiles[stxTileOrder[lastStx]!]!, data[stxTileOrder[lastStx]!]!, stx[lastStx]!);
        for (let i = stx.length - 2; i >= 0; i--) {
          th = nodeHash(hashFromTile(tiles[stxTileOrder[i]!]!, data[stxTileOrder[i]!]!, stx[i]!), th);
        }
        if (!th.equals(tree.hash)) throw new TlogError('downloaded inconsistent tile');
      }
      for (let i = stxTiles; i < tiles.length; i++) {
        const tile = tiles[i]!;
        const p = tileParent(tile, 1, tree.n);
        const j = p === undefined ? undefined : tileOrder.get(tileKey(p));
        if (p === undefined || j === undefined) throw new TlogError(`bad math in tileHashReader ${tree.n}: lost parent of ${tilePath(tile)}`);
        const ph = hashFromTile(p, data[j]!, storedHashIndex(p.l * p.h, tile.n));
        if (!ph.equals(tileHash(data[i]!))) throw new TlogError('downloaded inconsistent tile');
      }
      await tr.saveTiles(tiles, data);
      return indexes.map((x, i) => {
        const j = indexTileOrder[i]!;
        return hashFromTile(tiles[j]!, data[j]!, x);
      });
    },
  };
}

// ---- tree notes and records (tlog/note.go) ----

const TREE_PREFIX = 'go.sum database tree\n';

/** FormatTree: the text of a tree note, `go.sum database tree\nN\nHASH\n`. */
export function formatTree(tree: Tree): string {
  return `${TREE_PREFIX}${tree.n}\n${tree.hash.toString('base64')}\n`;
}

/** ParseTree: the tree in a tree note's text (extra lines ignored, as Go does); throws TlogError. */
export function parseTree(text: string): Tree {
  const malformed = new TlogError('malformed tree note');
  if (!text.startsWith(TREE_PREFIX) || text.split('\n').length - 1 < 3 || text.length > 1e6) throw malformed;
  const lines = text.split('\n');
  const ns = lines[1]!;
  if (!/^(0|[1-9][0-9]*)$/.test(ns)) throw malformed;
  const n = Number(ns);
  if (!Number.isSafeInteger(n)) throw malformed;
  const hash = parseHash(lines[2]!);
  if (hash === undefined) throw malformed;
  return { n, hash };
}

/** isValidRecordText: UTF-8 without control characters but newline, ending in newline, no blank lines. */
function isValidRecordText(text: Buffer): boolean {
  if (!isUtf8(text)) return false;
  let last = -1;
  for (const b of text) {
    if ((b < 0x20 && b !== 0x0a) || (last === 0x0a && b === 0x0a)) return false;
    last = b;
  }
  return last === 0x0a;
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/** A parsed lookup body: record id, record text and what follows (the signed tree note). */
export interface ParsedRecord {
  readonly id: number;
  readonly text: Buffer;
  readonly rest: Buffer;
}

/** ParseRecord: `ID\nTEXT\n\nREST`; throws TlogError('malformed record data'). */
export function parseRecord(msg: Buffer): ParsedRecord {
  const malformed = new TlogError('malformed record data');
  const i = msg.indexOf(0x0a);
  if (i < 0) throw malformed;
  const idStr = msg.subarray(0, i).toString('latin1');
  // strconv.ParseInt accepts an optional sign; record ids are never negative.
  if (!/^[+-]?[0-9]+$/.test(idStr)) throw malformed;
  const id = Number(idStr);
  if (!Number.isSafeInteger(id)) throw malformed;
  const body = msg.subarray(i + 1);
  const j = body.indexOf('\n\n');
  if (j < 0) throw malformed;
  const text = body.subarray(0, j + 1);
  if (!isValidRecordText(text)) throw malformed;
  return { id, text: Buffer.from(text), rest: Buffer.from(body.subarray(j + 2)) };
}

/** FormatRecord: `ID\nTEXT\n` (a lookup body is this followed by the signed tree note). */
export function formatRecord(id: number, text: Buffer): Buffer {
  if (!isValidRecordText(text)) throw new TlogError('malformed record data');
  return Buffer.concat([Buffer.from(`${id}\n`), text, Buffer.from('\n')]);
}
