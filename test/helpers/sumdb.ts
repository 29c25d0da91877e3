/**
 * A checksum database for tests, in the real format (golang.org/x/mod/sumdb/server.go): its own
 * ed25519 key, records of go.sum lines, signed tree notes, lookups and hash/data tiles computed on
 * demand. It can grow (the head moves), be forked (same key, rewritten history) or be re-signed
 * by another key with the same name; `intercept` serves it under `/sumdb/<name>/` of serveDir.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { unescapePath, unescapeVersion } from '../../gomod/escape.js';
import { noteKeysFromSeed, parseSignerKey, signNote, type NoteSigner } from '../../sumdb/note.js';
import {
  formatRecord,
  formatTree,
  parseTilePath,
  readTileData,
  recordHash,
  storedHashesForRecordHash,
  treeHash,
  type HashReader,
  type Tile,
} from '../../sumdb/tlog.js';

/** A record's go.sum lines for one module version. */
export function goSumLines(module: string, version: string, h1Zip: string, h1Mod: string): string {
  return `${module} ${version} ${h1Zip}\n${module} ${version}/go.mod ${h1Mod}\n`;
}

/** A test checksum database. */
export class TestSumdb {
  readonly name: string;
  /** The `name+hash+key` string a go client puts in GOSUMDB. */
  readonly verifierKey: string;
  private readonly signer: NoteSigner;
  private readonly records: Buffer[] = [];
  private readonly hashes: Buffer[] = [];
  private readonly ids = new Map<string, number>();

  private constructor(name: string, seed: Buffer) {
    const keys = noteKeysFromSeed(name, seed);
    this.name = name;
    this.verifierKey = keys.verifierKey;
    this.signer = parseSignerKey(keys.signerKey);
  }

  /** A new empty database named `name` with a fresh key (or the key from `seed`). */
  static create(name = 'sumdb.ferry.test', seed: Buffer = randomBytes(32)): TestSumdb {
    return new TestSumdb(name, seed);
  }

  /** Number of records (the tree size). */
  get size(): number {
    return this.records.length;
  }

  private reader(): HashReader {
    return { readHashes: async (indexes) => indexes.map((i) => this.hashes[i]!) };
  }

  /** Appends a record (text must be go.sum lines ending in a newline); returns its id. */
  async addText(text: string, key?: string): Promise<number> {
    const id = this.records.length;
    const data = Buffer.from(text, 'utf8');
    const hs = await storedHashesForRecordHash(id, recordHash(data), this.reader());
    this.records.push(data);
    this.hashes.push(...hs);
    if (key !== undefined) this.ids.set(key, id);
    return id;
  }

  /** Appends the record of module@version with its two h1 values. */
  add(module: string, version: string, h1Zip: string, h1Mod: string): Promise<number> {
    return this.addText(goSumLines(module, version, h1Zip, h1Mod), `${module}@${version}`);
  }

  /** Appends a record for every entry of a goproxy-tree `sums` map (sorted for stable ids). */
  async addAll(sums: ReadonlyMap<string, { h1Zip: string; h1Mod: string }>): Promise<void> {
    for (const key of [...sums.keys()].sort()) {
      const at = key.lastIndexOf('@');
      const s = sums.get(key)!;
      await this.add(key.slice(0, at), key.slice(at + 1), s.h1Zip, s.h1Mod);
    }
  }

  /** The signed tree note of the current head (or signed by `signer`). */
  async note(signer: NoteSigner = this.signer): Promise<Buffer> {
    const hash = await treeHash(this.size, this.reader());
    return signNote(formatTree({ n: this.size, hash }), [signer]);
  }

  /** The lookup body for module@version, as the server writes it; undefined when unknown. */
  async lookup(module: string, version: string): Promise<Buffer | undefined> {
    const id = this.ids.get(`${module}@${version}`);
    if (id === undefined) return undefined;
    return Buffer.concat([formatRecord(id, this.records[id]!), await this.note()]);
  }

  /** A tile's bytes (hash tiles and data tiles), undefined when outside the current tree. */
  async tile(path: string): Promise<Buffer | undefined> {
    const t: Tile | undefined = parseTilePath(path);
    if (!t || t.h !== 8) return undefined;
    const level = t.l < 0 ? 0 : t.l;
    const available = Math.floor(this.size / 2 ** (level * t.h));
    if (t.n * 2 ** t.h + t.w > available) return undefined;
    if (t.l === -1) {
      const start = t.n * 2 ** t.h;
      return Buffer.concat(this.records.slice(start, start + t.w).map((r) => Buffer.concat([r, Buffer.from('\n')])));
    }
    return readTileData(t, this.reader());
  }

  /** A copy with the same key whose record `index` has other text: a fork of this log. */
  async fork(index: number, text: string): Promise<TestSumdb> {
    const f = Object.create(TestSumdb.prototype) as TestSumdb;
    Object.assign(f, { name: this.name, verifierKey: this.verifierKey, signer: this.signer, records: [], hashes: [], ids: new Map(this.ids) });
    for (let i = 0; i < this.records.length; i++) await f.addText(i === index ? text : this.records[i]!.toString('utf8'));
    return f;
  }

  /** A copy with the same name and records signed by another key (clients must refuse its notes). */
  async impostor(): Promise<TestSumdb> {
    const other = TestSumdb.create(this.name);
    for (let i = 0; i < this.records.length; i++) await other.addText(this.records[i]!.toString('utf8'));
    for (const [k, v] of this.ids) other.ids.set(k, v);
    return other;
  }

  /** The body for a database path (`supported`, `latest`, `lookup/…`, `tile/…`), or undefined (404). */
  async serve(path: string): Promise<Buffer | undefined> {
    if (path === 'supported') return Buffer.alloc(0);
    if (path === 'latest') return this.note();
    if (path.startsWith('lookup/')) {
      const rest = path.slice('lookup/'.length);
      const at = rest.lastIndexOf('@');
      if (at < 0) return undefined;
      try {
        return await this.lookup(unescapePath(rest.slice(0, at)), unescapeVersion(rest.slice(at + 1)));
      } catch {
        return undefined;
      }
    }
    if (path.startsWith('tile/')) return this.tile(path);
    return undefined;
  }
}

/**
 * A serveDir intercept answering `/sumdb/<name>/…` from the database `current()` returns (swap it
 * to grow, fork or re-sign the upstream), counting the requests in `seen`.
 */
export function sumdbIntercept(current: () => TestSumdb, seen: string[] = []): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const db = current();
    const raw = (req.url ?? '/').split('?')[0] ?? '/';
    let path: string;
    try {
      path = decodeURIComponent(raw);
    } catch {
      return false;
    }
    const prefix = `/sumdb/${db.name}/`;
    if (!path.startsWith(prefix)) return false;
    const rel = path.slice(prefix.length);
    seen.push(rel);
    void db.serve(rel).then(
      (body) => {
        if (body === undefined) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        else res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
      },
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
    return true;
  };
}
