// The transparency log port: tile paths, stored-hash order, proofs against an independent
// RFC 6962 computation and against real Certificate Transparency data (golang/mod testdata).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkRecord,
  checkTree,
  hashFromTile,
  newTiles,
  parseHash,
  parseRecord,
  parseTilePath,
  parseTree,
  formatRecord,
  formatTree,
  proveRecord,
  proveTree,
  readTileData,
  recordHash,
  splitStoredHashIndex,
  storedHashCount,
  storedHashesForRecordHash,
  storedHashIndex,
  tileForIndex,
  tileHashReader,
  tilePath,
  treeHash,
  type HashReader,
  type Tile,
  type TileReader,
} from '../../sumdb/tlog.js';

/** RFC 6962 §2.1 Merkle Tree Hash, computed directly from the leaves. */
function mth(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1) return createHash('sha256').update(Buffer.from([0])).update(leaves[0]!).digest();
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return createHash('sha256').update(Buffer.from([1])).update(mth(leaves.slice(0, k))).update(mth(leaves.slice(k))).digest();
}

async function buildLog(n: number): Promise<{ leaves: Buffer[]; hashes: Buffer[]; reader: HashReader }> {
  const leaves: Buffer[] = [];
  const hashes: Buffer[] = [];
  const reader: HashReader = { readHashes: async (ix) => ix.map((i) => hashes[i]!) };
  for (let i = 0; i < n; i++) {
    const leaf = Buffer.from(`leaf ${i}\n`);
    leaves.push(leaf);
    hashes.push(...(await storedHashesForRecordHash(i, recordHash(leaf), reader)));
  }
  return { leaves, hashes, reader };
}

function tileReaderFor(reader: HashReader, tamper?: (path: string, data: Buffer) => Buffer): TileReader & { saved: string[] } {
  const saved: string[] = [];
  return {
    saved,
    height: () => 8,
    readTiles: (tiles: readonly Tile[]) => Promise.all(tiles.map(async (t) => {
      const d = await readTileData(t, reader);
      return tamper ? tamper(tilePath(t), d) : d;
    })),
    saveTiles: (tiles: readonly Tile[]) => {
      saved.push(...tiles.map(tilePath));
    },
  };
}

describe('tile paths', () => {
  it('writes N in 3-digit groups with x before all but the last, and .p/W for partial tiles', () => {
    expect(tilePath({ h: 3, l: 4, n: 1234067, w: 1 })).toBe('tile/3/4/x001/x234/067.p/1');
    expect(tilePath({ h: 3, l: 4, n: 1234067, w: 8 })).toBe('tile/3/4/x001/x234/067');
    expect(tilePath({ h: 8, l: -1, n: 5, w: 256 })).toBe('tile/8/data/005');
    expect(tilePath({ h: 8, l: 0, n: 0, w: 7 })).toBe('tile/8/0/000.p/7');
    expect(tilePath({ h: 8, l: 1, n: 1000, w: 256 })).toBe('tile/8/1/x001/000');
  });

  it('parses only canonical paths', () => {
    for (const p of ['tile/3/4/x001/x234/067.p/1', 'tile/8/data/x001/002.p/9', 'tile/8/0/000', 'tile/8/2/x999/999']) {
      const t = parseTilePath(p);
      expect(t, p).toBeDefined();
      expect(tilePath(t!)).toBe(p);
    }
    expect(parseTilePath('tile/8/data/005')).toEqual({ h: 8, l: -1, n: 5, w: 256 });
    for (const p of ['tile/8/0/5', 'tile/8/0/x000/005', 'tile/8/0/000.p/256', 'tile/8/0/000.p/0', 'tile/0/0/000', 'tiles/8/0/000', 'tile/8/0/1234', 'tile/8/-1/000']) {
      expect(parseTilePath(p), p).toBeUndefined();
    }
  });
});

describe('stored hash order', () => {
  it('splitStoredHashIndex inverts storedHashIndex', () => {
    for (let i = 0; i < 5000; i++) {
      const [level, n] = splitStoredHashIndex(i);
      expect(storedHashIndex(level, n)).toBe(i);
    }
    expect(storedHashIndex(0, 0)).toBe(0);
    expect(storedHashIndex(0, 1)).toBe(1);
    expect(storedHashIndex(1, 0)).toBe(2);
    expect(storedHashIndex(0, 2)).toBe(3);
  });

  it('storedHashCount matches what storedHashes appends', async () => {
    const { hashes } = await buildLog(300);
    expect(storedHashCount(300)).toBe(hashes.length);
  });

  it('tileForIndex picks the least-width tile and hashFromTile reads it back', async () => {
    expect(tileForIndex(8, storedHashIndex(0, 0))).toEqual({ h: 8, l: 0, n: 0, w: 1 });
    expect(tileForIndex(8, storedHashIndex(0, 300))).toEqual({ h: 8, l: 0, n: 1, w: 45 });
    expect(tileForIndex(8, storedHashIndex(8, 1))).toEqual({ h: 8, l: 1, n: 0, w: 2 });
    const { reader } = await buildLog(600);
    for (const [level, n] of [[0, 0], [0, 299], [2, 3], [1, 299], [8, 1], [9, 0]] as const) {
      const x = storedHashIndex(level, n);
      const t = tileForIndex(8, x);
      const data = await readTileData(t, reader);
      expect(hashFromTile(t, data, x)).toEqual((await reader.readHashes([x]))[0]);
    }
  });

  it('newTiles lists full tiles and every partial width', () => {
    expect(newTiles(8, 0, 3).map(tilePath)).toEqual(['tile/8/0/000.p/1', 'tile/8/0/000.p/2', 'tile/8/0/000.p/3']);
    expect(newTiles(8, 255, 257).map(tilePath)).toEqual(['tile/8/0/000', 'tile/8/0/001.p/1', 'tile/8/1/000.p/1']);
  });
});

describe('proofs', () => {
  it('treeHash equals the RFC 6962 Merkle tree hash', async () => {
    const { leaves, reader } = await buildLog(300);
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 100, 255, 256, 257, 300]) {
      expect((await treeHash(n, reader)).equals(mth(leaves.slice(0, n))), `n=${n}`).toBe(true);
    }
    expect(await treeHash(0, reader)).toEqual(Buffer.alloc(32));
  });

  it('record and tree proofs verify, and fail for other data', async () => {
    const { leaves, reader } = await buildLog(40);
    for (let t = 1; t <= 40; t++) {
      const th = await treeHash(t, reader);
      for (let n = 0; n < t; n++) {
        const p = await proveRecord(t, n, reader);
        expect(() => checkRecord(p, t, th, n, recordHash(leaves[n]!))).not.toThrow();
        expect(() => checkRecord(p, t, th, n, recordHash(Buffer.from('other')))).toThrow('invalid transparency proof');
      }
      for (let n = 1; n <= t; n++) {
        const p = await proveTree(t, n, reader);
        const h = await treeHash(n, reader);
        expect(() => checkTree(p, t, th, n, h)).not.toThrow();
        if (n < t) expect(() => checkTree(p, t, th, n, recordHash(Buffer.from('x')))).toThrow('invalid transparency proof');
      }
    }
  });

  it('verifies real Certificate Transparency proofs (Google Argon 2020, from golang/mod testdata)', () => {
    const size = 961984013;
    const root = parseHash('dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM=')!;
    const leaf = Buffer.from(ARGON_LEAF, 'base64');
    checkRecord(ARGON_AUDIT.map((h) => parseHash(h)!), size, root, 10000, recordHash(leaf));
    checkTree(ARGON_CONSISTENCY.map((h) => parseHash(h)!), size, root, 3654490, parseHash('AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=')!);
    expect(() => checkRecord(ARGON_AUDIT.map((h) => parseHash(h)!), size, root, 10001, recordHash(leaf))).toThrow();
  });
});

describe('tileHashReader', () => {
  it('returns hashes only from tiles authenticated against the tree hash', async () => {
    const { reader, leaves } = await buildLog(70000);
    const tree = { n: 70000, hash: mth(leaves) };
    const tr = tileReaderFor(reader);
    const thr = tileHashReader(tree, tr);
    const ix = [0, 1, 255, 256, 65535, 65536, 69999].map((n) => storedHashIndex(0, n));
    expect(await thr.readHashes(ix)).toEqual(await reader.readHashes(ix));
    expect(tr.saved).toContain('tile/8/0/273.p/112');
    expect(tr.saved).toContain('tile/8/2/000.p/1');
    // The hash of a smaller tree from the bigger tree's tiles: the go client's consistency check.
    expect((await treeHash(1000, thr)).equals(mth(leaves.slice(0, 1000)))).toBe(true);
  });

  it('refuses a tampered tile (even a child of a tile shared by several subtree hashes) and a tree hash the tiles do not support', async () => {
    const { reader, leaves } = await buildLog(600);
    const tree = { n: 600, hash: mth(leaves) };
    const flip = (path: string, d: Buffer): Buffer => {
      if (path !== 'tile/8/0/001') return d;
      const c = Buffer.from(d);
      c[5]! ^= 1;
      return c;
    };
    await expect(tileHashReader(tree, tileReaderFor(reader, flip)).readHashes([storedHashIndex(0, 300)])).rejects.toThrow('downloaded inconsistent tile');
    await expect(tileHashReader({ n: 600, hash: mth(leaves.slice(0, 599)) }, tileReaderFor(reader)).readHashes([0])).rejects.toThrow('downloaded inconsistent tile');
    await expect(tileHashReader(tree, tileReaderFor(reader)).readHashes([storedHashIndex(0, 600)])).rejects.toThrow('indexes not in tree');
  });
});

describe('tree notes and records', () => {
  it('formats and parses tree notes as Go does', () => {
    const hash = parseHash('nND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=')!;
    const text = formatTree({ n: 2, hash });
    expect(text).toBe('go.sum database tree\n2\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=\n');
    expect(parseTree(text + 'extra line\n')).toEqual({ n: 2, hash });
    for (const bad of ['go.sum database tree\n02\nnND/nri/U0xuHUrYSy0HtMeal2vzD9V4k/BO79C+QeI=\n', 'go.sum database tree v2\n2\nx\n', 'go.sum database tree\n2\nshort=\n']) {
      expect(() => parseTree(bad)).toThrow('malformed tree note');
    }
  });

  it('parses lookup bodies: id, record text, then the note', () => {
    const text = Buffer.from('m v1.0.0 h1:a\nm v1.0.0/go.mod h1:b\n');
    const body = Buffer.concat([formatRecord(12, text), Buffer.from('NOTE\n\n— x y\n')]);
    const r = parseRecord(body);
    expect(r.id).toBe(12);
    expect(r.text.equals(text)).toBe(true);
    expect(r.rest.toString()).toBe('NOTE\n\n— x y\n');
    expect(() => parseRecord(Buffer.from('x\nm v h1:a\n\nN'))).toThrow('malformed record data');
    expect(() => parseRecord(Buffer.from('1\nm v\x01 h1:a\n\nN'))).toThrow('malformed record data');
    expect(() => formatRecord(1, Buffer.from('no newline'))).toThrow('malformed record data');
  });
});

const ARGON_LEAF =
  'AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAxCzAJBgNVBAYTAkdCMRswGQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNVBAoTEUNPTU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQDEy1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3VyZSBTZXJ2ZXIgQ0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBfMSEwHwYDVQQLExhEb21haW4gQ29udHJvbCBWYWxpZGF0ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxhbmRsb3Jkcy5jb20uYXUwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvBz60f14gDufF2haWbOxyJ0a3opAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69HuHgzhusPf1Ytfk3ps1PRC14MkyrS4kwPrk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy56fBRKG05Fr5wNq3Acak5kYZdNsLhhmlrqAfAjiombW3hb3V5blJdRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+aifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSMEGDAWgBSQr2o6lFoL2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1UdEwEB/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcwKzApBggrBgEFBQcCARYdaHR0cHM6Ly9zZWN1cmUuY29tb2RvLmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEswSaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NPTU9ET1JTQURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0cDovL2NydC5jb21vZG9jYS5jb20vQ09NT0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggrBgEFBQcwAYYYaHR0cDovL29jc3AuY29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFuZGxvcmRzLmNvbS5hdTANBgkqhkiG9w0BAQsFAAOCAQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK2b9vvBLDWAaqm8c0YL1h+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs3UUsmShAgPwNohAtL9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXjHTeuQj6lR+TNrQXJuhwTXYe+20rrpPQxc1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbkoriN8b6jcWExtrYO6bm2TwAA';

const ARGON_AUDIT = [
  'T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=', '9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=', 'D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=',
  'wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=', '516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=', 'naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=',
  'mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=', 'Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=', 'yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=',
  'n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=', 'go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=', '8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=',
  '6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=', '2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=', 'nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=',
  'mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=', 'JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=', 'UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=',
  'hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=', 'II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=', 'd609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=',
  'rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=', 'GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=', 'pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=',
  'f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=', 'WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=', 'f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=',
  'NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=', 'C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=', 'nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=',
];

const ARGON_CONSISTENCY = [
  '80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=', 'FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=', 'Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=',
  'eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=', 'QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=', 'XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=',
  'SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=', 'WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=', 'QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=',
  'Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=', 'mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=', 'q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=',
  'jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=', 'GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=', 'x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=',
  '6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=', 'Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=', 'DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=',
  '2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=', '3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=', 's6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=',
  'z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=', 'GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=', 'pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=',
  'f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=', 'WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=', 'f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=',
  'NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=', 'C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=', 'nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=',
];
