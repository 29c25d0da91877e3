/**
 * A checksum-database client (golang.org/x/mod/sumdb/client.go; cmd/go/internal/modfetch/sumdb.go):
 * reaches the database through a GOPROXY (`$proxy/sumdb/<name>/`, after probing `supported`) or
 * directly, fetches lookups and tiles, and verifies them: the tree note's signature, the record's
 * inclusion in the newest tree seen, and the consistency of every tree head with the last one.
 * It never touches disk except to read a file:// base; persistence goes through a TileCache.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Dispatcher } from 'undici';
import { FerryError, type ErrorDetails } from '../errors/index.js';
import { discardBody, readBody, readErrorBody, redactUrl, request, statusError, ERROR_BODY_LIMIT, type RetryOptions } from '../net/index.js';
import { escapePath, escapeVersion } from '../gomod/escape.js';
import { NoteError, openNote, parseVerifierKey, type NoteVerifier } from './note.js';
import {
  HASH_SIZE,
  parseRecord,
  parseTree,
  recordHash,
  storedHashIndex,
  SUMDB_TILE_HEIGHT,
  tileHashReader,
  tilePath,
  TlogError,
  treeHash,
  type HashReader,
  type Tile,
  type TileReader,
  type Tree,
} from './tlog.js';

/** The checksum databases the go command knows by name (cmd/go knownGOSUMDB). */
export const KNOWN_SUMDB_KEYS: Readonly<Record<string, string>> = {
  'sum.golang.org': 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8',
};

/** Largest lookup body accepted. */
export const MAX_LOOKUP_BYTES = 1024 * 1024;

/** A GOSUMDB-style setting, parsed. */
export type SumdbSetting =
  | { readonly off: true }
  | {
      readonly off: false;
      /** The database name (the key's name), e.g. sum.golang.org. */
      readonly name: string;
      /** The verifier key string `name+hash+key`. */
      readonly key: string;
      readonly verifier: NoteVerifier;
      /** The URL used when no proxy serves the database: the given one, else https://NAME. */
      readonly directUrl: string;
    };

/**
 * Parses `off`, a known name (`sum.golang.org`), or `name+hash+key [URL]` as the go command
 * parses GOSUMDB; CONFIG_INVALID with the reason otherwise.
 */
export function parseSumdbSetting(setting: string, where = 'goModules.sumdb'): SumdbSetting {
  const trimmed = setting.trim();
  if (trimmed === 'off') return { off: true };
  let fields = trimmed.split(/\s+/).filter((f) => f !== '');
  // cmd/go: sum.golang.google.cn is sum.golang.org's key served from another host.
  if (fields.length === 1 && fields[0] === 'sum.golang.google.cn') fields = ['sum.golang.org', 'https://sum.golang.google.cn'];
  if (fields.length === 0) throw new FerryError('CONFIG_INVALID', `${where}: missing checksum database key`);
  if (fields.length > 2) throw new FerryError('CONFIG_INVALID', `${where}: expected "off", a key "name+hash+key" or "key URL", got ${JSON.stringify(setting)}`);
  const key = KNOWN_SUMDB_KEYS[fields[0]!] ?? fields[0]!;
  let verifier: NoteVerifier;
  try {
    verifier = parseVerifierKey(key);
  } catch (err) {
    throw new FerryError('CONFIG_INVALID', `${where}: invalid checksum database key ${JSON.stringify(fields[0])}: ${(err as Error).message}`, { cause: err });
  }
  let directUrl = `https://${verifier.name}`;
  if (fields[1] !== undefined) {
    let u: URL;
    try {
      u = new URL(fields[1]);
    } catch {
      throw new FerryError('CONFIG_INVALID', `${where}: invalid checksum database URL ${JSON.stringify(redactUrl(fields[1]))}`);
    }
    if (!['http:', 'https:', 'file:'].includes(u.protocol)) {
      throw new FerryError('CONFIG_INVALID', `${where}: checksum database URL must be http://, https:// or file://, got ${JSON.stringify(u.protocol)}`);
    }
    directUrl = u.href;
  }
  return { off: false, name: verifier.name, key, verifier, directUrl };
}

/** A verified tree head with the exact signed note that vouches for it. */
export interface SignedHead {
  readonly n: number;
  readonly hash: Buffer;
  readonly note: Buffer;
}

/** Authenticated tiles kept between runs (Ferry's store); paths are tile paths like `tile/8/0/001.p/5`. */
export interface TileCache {
  get(path: string): Promise<Buffer | undefined> | Buffer | undefined;
  /** Called only with tiles authenticated against a signed tree head. */
  save(path: string, data: Buffer): Promise<void> | void;
}

/** Options for SumdbClient. */
export interface SumdbClientOptions {
  /** The parsed setting (must not be off). */
  readonly setting: Extract<SumdbSetting, { off: false }>;
  /** GOPROXY base tried first (`$proxy/sumdb/<name>/supported`); none means direct. */
  readonly proxyUrl?: string;
  /** Basic auth for the proxy (never sent to the direct URL). */
  readonly credentials?: { readonly username: string; readonly password: string };
  readonly dispatcher?: Dispatcher;
  readonly retry?: RetryOptions;
  /** Authenticated tiles from earlier runs; tiles verified now are saved into it. */
  readonly tileCache?: TileCache;
  /** Aborts every call. */
  readonly signal?: AbortSignal;
}

/** Per-call options. */
export interface SumdbCallOptions {
  readonly signal?: AbortSignal;
}

/** A verified lookup. */
export interface SumdbLookup {
  readonly module: string;
  readonly version: string;
  readonly recordId: number;
  /** The record text (go.sum lines), exactly as hashed into the log. */
  readonly text: Buffer;
  /** The `h1:` of the zip, when the record has the line. */
  readonly h1Zip: string | undefined;
  /** The `h1:` of go.mod, when the record has the line. */
  readonly h1Mod: string | undefined;
  /** The head the lookup body was signed with. */
  readonly head: SignedHead;
  /** The newest head after merging with `known`: the one the record was proved against. */
  readonly latest: SignedHead;
  /** True when `latest` is newer than `known` (it was proved consistent with it). */
  readonly advanced: boolean;
  /** The exact lookup body. */
  readonly raw: Buffer;
  /** Tile paths the proofs of this call read. */
  readonly tiles: readonly string[];
}

/** A record to prove: its id and exact text. */
export interface SumdbRecordRef {
  readonly id: number;
  readonly text: Buffer;
}

function isNotExist(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function indent(b: Buffer | string): string {
  return b.toString().replace(/\n/g, '\n\t');
}

/** `lookup/<escaped path>@<escaped version>`, relative to the database base. */
export function sumdbLookupPath(module: string, version: string): string {
  return `lookup/${escapePath(module)}@${escapeVersion(version.endsWith('/go.mod') ? version.slice(0, -'/go.mod'.length) : version)}`;
}

/** Opens a signed tree note with `verifier`; SUMDB_INVALID with Go's reason when it does not verify. */
export function openTreeNote(msg: Buffer, verifier: NoteVerifier, details: ErrorDetails = {}): SignedHead {
  let text: string;
  try {
    text = openNote(msg, [verifier]).text;
  } catch (err) {
    const reason = err instanceof NoteError ? err.message : String(err);
    throw new FerryError('SUMDB_INVALID', `checksum database ${verifier.name}: reading tree note: ${reason}`, { ...details, op: 'sumdbNote', cause: err });
  }
  let tree: Tree;
  try {
    tree = parseTree(text);
  } catch (err) {
    throw new FerryError('SUMDB_INVALID', `checksum database ${verifier.name}: reading tree: ${(err as Error).message}`, { ...details, op: 'sumdbNote', cause: err });
  }
  return { n: tree.n, hash: tree.hash, note: Buffer.from(msg) };
}

/** The h1 values of `module version` in a record's go.sum lines. */
export function recordHashes(text: Buffer | string, module: string, version: string): { h1Zip: string | undefined; h1Mod: string | undefined } {
  let h1Zip: string | undefined;
  let h1Mod: string | undefined;
  for (const line of text.toString().split('\n')) {
    const f = line.split(' ');
    if (f.length !== 3 || f[0] !== module) continue;
    if (f[1] === version) h1Zip ??= f[2];
    else if (f[1] === `${version}/go.mod`) h1Mod ??= f[2];
  }
  return { h1Zip, h1Mod };
}

/** A client for one checksum database. */
export class SumdbClient {
  /** The database name. */
  readonly name: string;
  private readonly opts: SumdbClientOptions;
  private basePromise: Promise<{ url: URL; viaProxy: boolean }> | undefined;
  private readonly authHeader: string | undefined;

  constructor(opts: SumdbClientOptions) {
    this.opts = opts;
    this.name = opts.setting.name;
    const c = opts.credentials;
    this.authHeader = c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
  }

  private signalFor(call?: SumdbCallOptions): AbortSignal | undefined {
    const s = [this.opts.signal, call?.signal].filter((x): x is AbortSignal => x !== undefined);
    return s.length <= 1 ? s[0] : AbortSignal.any(s);
  }

  /** GETs `url`: the body, or undefined for 404/410 (a missing file for file://). */
  private async get(url: URL, auth: boolean, maxBytes: number, op: string, details: ErrorDetails, signal: AbortSignal | undefined): Promise<Buffer | undefined> {
    if (signal?.aborted) throw new FerryError('ABORTED', `${op}: aborted`, { ...details, op, cause: signal.reason });
    if (url.protocol === 'file:') {
      const file = fileURLToPath(url);
      try {
        const b = await readFile(file, signal ? { signal } : {});
        if (b.length > maxBytes) throw new FerryError('BODY_TOO_LARGE', `${op}: ${file} is ${b.length} bytes, more than ${maxBytes}`, { ...details, op, file });
        return b;
      } catch (err) {
        if (err instanceof FerryError) throw err;
        if (isNotExist(err)) return undefined;
        if (signal?.aborted) throw new FerryError('ABORTED', `${op}: aborted`, { ...details, op, cause: signal.reason });
        throw new FerryError('STORE_IO', `${op}: ${file}: ${(err as Error).message}`, { ...details, op, file, cause: err });
      }
    }
    const headers: Record<string, string> = {};
    if (auth && this.authHeader) headers['authorization'] = this.authHeader;
    const res = await request({
      url,
      headers,
      op,
      details,
      ...(signal ? { signal } : {}),
      ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
    });
    if (res.statusCode === 404 || res.statusCode === 410) {
      await discardBody(res.body);
      return undefined;
    }
    const d: ErrorDetails = { ...details, op, url: redactUrl(url), method: 'GET' };
    if (res.statusCode !== 200) {
      const body = await readErrorBody(res.body, d);
      throw statusError(op, res.statusCode, d, body);
    }
    return readBody(res.body, maxBytes, d);
  }

  /**
   * The database base URL: `$proxy/sumdb/<name>/` when the proxy answers `supported` with 200,
   * the direct URL when it answers 404/410 (or there is no proxy); any other answer is an error,
   * as for the go command (a proxy that supports the database is never bypassed).
   */
  async base(opts: SumdbCallOptions = {}): Promise<{ url: URL; viaProxy: boolean }> {
    this.basePromise ??= (async () => {
      if (this.opts.proxyUrl !== undefined) {
        const proxy = new URL(this.opts.proxyUrl);
        proxy.username = '';
        proxy.password = '';
        if (!proxy.pathname.endsWith('/')) proxy.pathname += '/';
        const url = new URL(`sumdb/${this.name}/`, proxy);
        const ok = await this.get(new URL('supported', url), true, ERROR_BODY_LIMIT, 'sumdbSupported', {}, this.signalFor(opts));
        if (ok !== undefined) return { url, viaProxy: true };
      }
      const direct = new URL(this.opts.setting.directUrl);
      if (!direct.pathname.endsWith('/')) direct.pathname += '/';
      return { url: direct, viaProxy: false };
    })();
    try {
      return await this.basePromise;
    } catch (err) {
      this.basePromise = undefined;
      throw err;
    }
  }

  /** Reads `path` (relative to the database base, e.g. `lookup/…`, `tile/…`); undefined for 404/410. */
  async readRemote(path: string, maxBytes: number, details: ErrorDetails, opts: SumdbCallOptions = {}): Promise<Buffer | undefined> {
    const { url, viaProxy } = await this.base(opts);
    return this.get(new URL(path, url), viaProxy, maxBytes, 'sumdbRead', { ...details, file: `${this.name}/${path}` }, this.signalFor(opts));
  }

  /** The exact lookup body for module@version (not yet verified). */
  async fetchLookup(module: string, version: string, opts: SumdbCallOptions = {}): Promise<Buffer> {
    const details: ErrorDetails = { module, version };
    const raw = await this.readRemote(sumdbLookupPath(module, version), MAX_LOOKUP_BYTES, details, opts);
    if (raw === undefined) {
      throw new FerryError(
        'SUMDB_INVALID',
        `${module}@${version}: not found in checksum database ${this.name} (a private module belongs in goModules.noSumCheck)`,
        { ...details, op: 'sumdbLookup' },
      );
    }
    return raw;
  }

  /** Fetches and verifies a lookup against `known` (the last head seen): see verifyLookup. */
  async lookup(module: string, version: string, known: SignedHead | undefined, opts: SumdbCallOptions = {}): Promise<SumdbLookup> {
    const raw = await this.fetchLookup(module, version, opts);
    return this.verifyLookup(raw, module, version, known, opts);
  }

  /**
   * Verifies a lookup body as the go command does: parse the record, open the tree note with the
   * configured key, merge the head with `known` (consistency proof in whichever direction is
   * needed; a fork is SUMDB_INCONSISTENT), then prove the record is in the newest head.
   */
  async verifyLookup(raw: Buffer, module: string, version: string, known: SignedHead | undefined, opts: SumdbCallOptions = {}): Promise<SumdbLookup> {
    const details: ErrorDetails = { module, version };
    const where = `${module}@${version}`;
    let rec: ReturnType<typeof parseRecord>;
    try {
      rec = parseRecord(raw);
    } catch (err) {
      throw new FerryError('SUMDB_INVALID', `${where}: checksum database ${this.name}: ${(err as Error).message}`, { ...details, op: 'sumdbLookup', cause: err });
    }
    const head = openTreeNote(rec.rest, this.opts.setting.verifier, details);
    const pending = new Map<string, Buffer>();
    const latest = await this.mergeHeads(known, head, pending, opts, details);
    await this.proveRecords(latest, [{ id: rec.id, text: rec.text }], pending, opts, details);
    await this.commit(pending);
    const { h1Zip, h1Mod } = recordHashes(rec.text, module, version);
    return {
      module,
      version,
      recordId: rec.id,
      text: rec.text,
      h1Zip,
      h1Mod,
      head,
      latest,
      advanced: known === undefined ? latest.n > 0 : latest.n > known.n,
      raw,
      tiles: [...pending.keys()],
    };
  }

  /** Saves authenticated tiles into the cache once the whole operation that read them succeeded. */
  private async commit(pending: ReadonlyMap<string, Buffer>): Promise<void> {
    for (const [path, data] of pending) await this.opts.tileCache?.save(path, data);
  }

  /**
   * Runs a proof with cached tiles, and once more with tiles fetched afresh when the cached ones
   * do not fit the head: cached tiles were authenticated against an earlier head, so a conflict
   * is either a damaged cache or a fork, and only fresh tiles tell which.
   */
  private async withFreshRetry<T>(pending: Map<string, Buffer> | undefined, fn: (pending: Map<string, Buffer>, useCache: boolean) => Promise<T>): Promise<T> {
    const own = pending ?? new Map<string, Buffer>();
    let result: T;
    try {
      result = await fn(own, true);
    } catch (err) {
      if (!(err instanceof TlogError) || this.opts.tileCache === undefined) throw err;
      own.clear();
      result = await fn(own, false);
    }
    if (pending === undefined) await this.commit(own);
    return result;
  }

  /**
   * mergeLatest: returns the newer of `known` and `head` after proving the older is a prefix
   * of the newer, with tiles of the newer. SUMDB_INCONSISTENT when it is not. Tiles read are
   * added to `pending` (saved by the caller) or, without it, saved on success.
   */
  async mergeHeads(known: SignedHead | undefined, head: SignedHead, pending?: Map<string, Buffer>, opts: SumdbCallOptions = {}, details: ErrorDetails = {}): Promise<SignedHead> {
    if (known === undefined) return head;
    if (head.n <= known.n) {
      await this.checkTrees(head, known, pending, opts, details);
      return known;
    }
    await this.checkTrees(known, head, pending, opts, details);
    return head;
  }

  /** checkTrees: `older` must be a prefix of `newer`; proves it with newer's tiles (SUMDB_INCONSISTENT when not). */
  async checkTrees(older: SignedHead, newer: SignedHead, pending?: Map<string, Buffer>, opts: SumdbCallOptions = {}, details: ErrorDetails = {}): Promise<void> {
    const what = older.n === newer.n ? `checking tree#${older.n}` : `checking tree#${older.n} against tree#${newer.n}`;
    let h: Buffer;
    try {
      h = await this.withFreshRetry(pending, (p, useCache) => treeHash(older.n, this.hashReader(newer, p, useCache, opts, details)));
    } catch (err) {
      throw this.tlogError(err, what, details);
    }
    if (h.equals(older.hash)) return;
    throw new FerryError(
      'SUMDB_INCONSISTENT',
      `SECURITY ERROR: checksum database ${this.name} misbehaviour detected: tree#${older.n} is not a prefix of tree#${newer.n} ` +
        `(forked or rolled-back log)\nold database:\n\t${indent(older.note)}\nnew database:\n\t${indent(newer.note)}\n` +
        `tree#${older.n} hash in the new tree: ${h.toString('base64')}`,
      { ...details, op: 'sumdbConsistency' },
    );
  }

  /** checkRecord for many records: each must be in `head` with exactly its text's record hash. */
  async proveRecords(head: SignedHead, records: readonly SumdbRecordRef[], pending?: Map<string, Buffer>, opts: SumdbCallOptions = {}, details: ErrorDetails = {}): Promise<void> {
    if (records.length === 0) return;
    for (const r of records) {
      if (r.id < 0 || r.id >= head.n) {
        throw new FerryError('SUMDB_INVALID', `checksum database ${this.name}: cannot validate record ${r.id} in tree of size ${head.n}`, { ...details, op: 'sumdbRecord' });
      }
    }
    let hashes: Buffer[];
    try {
      const indexes = records.map((r) => storedHashIndex(0, r.id));
      hashes = await this.withFreshRetry(pending, (p, useCache) => this.hashReader(head, p, useCache, opts, details).readHashes(indexes));
    } catch (err) {
      throw this.tlogError(err, `proving records in tree#${head.n}`, details);
    }
    records.forEach((r, i) => {
      if (!hashes[i]!.equals(recordHash(r.text))) {
        throw new FerryError('SUMDB_INVALID', `checksum database ${this.name}: cannot authenticate record data in server response (record ${r.id})`, {
          ...details,
          op: 'sumdbRecord',
        });
      }
    });
  }

  private tlogError(err: unknown, what: string, details: ErrorDetails): FerryError {
    if (err instanceof FerryError) return err;
    const reason = err instanceof TlogError ? err.message : String(err);
    return new FerryError('SUMDB_INVALID', `checksum database ${this.name}: ${what}: ${reason}`, { ...details, op: 'sumdbTiles', cause: err });
  }

  /**
   * A TileHashReader over `head` whose tiles come from the cache (when `useCache`) or the
   * database; the tiles it authenticates are added to `pending`.
   */
  hashReader(head: SignedHead, pending: Map<string, Buffer>, useCache = true, opts: SumdbCallOptions = {}, details: ErrorDetails = {}): HashReader {
    // Tiles read through this reader, by path, so that each is fetched once per proof.
    const fetched = new Map<string, Promise<Buffer>>();
    const reader: TileReader = {
      height: () => SUMDB_TILE_HEIGHT,
      readTiles: (tiles) => Promise.all(tiles.map((t) => this.readTile(t, fetched, useCache, opts, details))),
      saveTiles: (tiles, data) => {
        tiles.forEach((t, i) => pending.set(tilePath(t), data[i]!));
      },
    };
    return tileHashReader({ n: head.n, hash: head.hash }, reader);
  }

  /** readTile: the cache (exact tile, then the full tile's prefix), then the database (exact, then full). */
  private readTile(tile: Tile, fetched: Map<string, Promise<Buffer>>, useCache: boolean, opts: SumdbCallOptions, details: ErrorDetails): Promise<Buffer> {
    const path = tilePath(tile);
    let p = fetched.get(path);
    if (p === undefined) {
      p = (async () => {
        const want = tile.w * HASH_SIZE;
        const full: Tile = { ...tile, w: 2 ** tile.h };
        const fullPath = tilePath(full);
        const cache = useCache ? this.opts.tileCache : undefined;
        const cached = await cache?.get(path);
        if (cached !== undefined) return cached;
        if (fullPath !== path) {
          const c = await cache?.get(fullPath);
          if (c !== undefined && c.length >= want) return c.subarray(0, want);
        }
        const max = 2 ** tile.h * HASH_SIZE;
        const data = await this.readRemote(path, max, details, opts);
        if (data !== undefined) return data;
        // A missing partial tile has usually been completed: only the full one is served.
        if (fullPath !== path) {
          const f = await this.readRemote(fullPath, max, details, opts);
          if (f !== undefined && f.length >= want) return f.subarray(0, want);
        }
        throw new FerryError('SUMDB_INVALID', `checksum database ${this.name}: tile ${path} not found`, { ...details, op: 'sumdbTile', file: `${this.name}/${path}` });
      })();
      fetched.set(path, p);
    }
    return p;
  }
}
