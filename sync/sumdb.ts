/**
 * Checksum-database verification at sync (go.dev/ref/mod#checksum-database): every new module
 * version is looked up, its tree note verified with the configured key, its record proved in
 * the newest tree head, that head proved consistent with the last head Ferry kept (SQLite), and
 * both h1 values compared with what Ferry computed. Nothing is stored for a version that fails.
 */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { parseDuration, resolveSecret, type Config } from '../config/index.js';
import { FerryError, isFerryError } from '../errors/index.js';
import { matchPrefixPatterns } from '../gomod/match.js';
import { parseSumdbSetting, SumdbClient, sumdbLookupPath, type SignedHead, type SumdbClientOptions, type TileCache } from '../sumdb/client.js';
import { parseHash } from '../sumdb/tlog.js';
import { createDispatcher, withAdvice, type RetryOptions } from '../net/index.js';
import type { Store, StoreSumdb } from '../store/index.js';
import type { SumdbHeadRow } from '../store/sumdb.js';
import type { SumCheck } from './modules.js';

/** What `complete()` proved. */
export interface SumdbCompletion {
  readonly database: string;
  /** Size of the newest verified head ("" when none yet). */
  readonly treeSize: number;
  readonly records: number;
  /** Tiles read to prove every record and every exported head against the newest head. */
  readonly tiles: number;
}

/** A SumCheck for runSync plus the step that readies the store for bundles. */
export interface SumChecker extends SumCheck {
  /** The checksum database name, e.g. sum.golang.org. */
  readonly database: string;
  /**
   * Proves every stored record, and every head a bundle handed out, against the newest head,
   * fetching (and keeping) the tiles that takes. Bundles carry exactly these tiles, so call it
   * after each sync pass and before an export.
   */
  complete(opts?: { signal?: AbortSignal }): Promise<SumdbCompletion>;
}

/** Options for createSumChecker. */
export interface SumCheckerOptions {
  readonly store: Pick<Store, 'sumdb'>;
  readonly config: Config;
  /** The checksum database client's dispatcher. @default a dispatcher with goModules.tls / caFile */
  readonly dispatcher?: SumdbClientOptions['dispatcher'];
  readonly retry?: RetryOptions;
  readonly logger?: Logger;
}

/** A stored head as the client wants it. */
export function signedHead(row: SumdbHeadRow): SignedHead {
  const hash = parseHash(row.hash);
  if (hash === undefined) throw new FerryError('STORE_CORRUPT', `checksum database ${row.name}: stored head tree#${row.size} has a malformed hash`, { op: 'sumdbHead' });
  return { n: row.size, hash, note: Buffer.from(row.note, 'utf8') };
}

/** A TileCache over the store: authenticated tiles become blobs indexed by (database, path). */
export function storeTileCache(sumdb: StoreSumdb, database: string, signal?: AbortSignal): TileCache {
  return {
    get: (path) => sumdb.readFile(database, `${path}`, signal ? { signal } : {}),
    save: async (path, data) => {
      if (sumdb.getFile(database, path) !== undefined) return;
      await sumdb.putFile(database, path, data, signal ? { signal } : {});
    },
  };
}

/**
 * What to do when the checksum database `key` names cannot be reached (a DMZ host that may not
 * talk to sum.golang.org): name a mirror after the key, or turn the check off knowing what that
 * gives up.
 */
export function sumdbUnreachableAdvice(name: string, key: string): string {
  return (
    `the checksum database ${name} cannot be reached from this host. If a mirror of it is reachable, put the mirror's URL ` +
    `after the key: goModules.sumdb: "${key} https://mirror.example/sumdb/${name}" (a goModules.proxy that serves ` +
    `sumdb/${name}/ is used for it without that). Or set goModules.sumdb: off, which gives up checking every module ` +
    `version against the database (a proxy serving altered code would go unnoticed) and carrying it inside (go there ` +
    `then needs GOSUMDB=off)`
  );
}

/**
 * Builds the checker for `config.goModules.sumdb` (`off` → undefined; a known name such as
 * sum.golang.org, or `name+hash+key [URL]`), reached through `goModules.proxy` first.
 * Module paths matching `goModules.noSumCheck` (GONOSUMDB patterns) are not checked.
 */
export function createSumChecker(opts: SumCheckerOptions): SumChecker | undefined {
  const gm = opts.config.goModules;
  if (!gm) return undefined;
  const setting = parseSumdbSetting(gm.sumdb);
  if (setting.off) return undefined;
  const { store, logger } = opts;
  const patterns = gm.noSumCheck.join(',');
  const baseDir = dirname(opts.config.file);
  const credentials =
    gm.username !== undefined && gm.password !== undefined
      ? { username: resolveSecret(gm.username, 'goModules.username', baseDir), password: resolveSecret(gm.password, 'goModules.password', baseDir) }
      : undefined;
  const dispatcher =
    opts.dispatcher ??
    createDispatcher({ tls: gm.tls, ...(gm.caFile ? { caFile: gm.caFile } : {}), ...(gm.idleTimeout !== undefined ? { bodyTimeoutMs: parseDuration(gm.idleTimeout) } : {}) });
  const database = setting.name;
  const tileCache = storeTileCache(store.sumdb, database);
  // Connection failures (not HTTP answers) mean the database is out of reach from here.
  const advise = (err: unknown): unknown =>
    isFerryError(err) && (err.code === 'NETWORK' || err.code === 'TIMEOUT') ? withAdvice(err, sumdbUnreachableAdvice(database, setting.key)) : err;
  const client = new SumdbClient({
    setting,
    proxyUrl: gm.proxy,
    dispatcher,
    ...(credentials ? { credentials } : {}),
    ...(opts.retry ? { retry: opts.retry } : {}),
    tileCache,
  });

  // Head merges are serialised: two lookups must not both move the head from the same base.
  let tail: Promise<unknown> = Promise.resolve();
  const locked = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  const known = (): SignedHead | undefined => {
    const row = store.sumdb.head(database);
    return row && signedHead(row);
  };

  const check = async (module: string, version: string, h1Zip: string | undefined, h1Mod: string, signal?: AbortSignal): Promise<void> => {
    if (matchPrefixPatterns(patterns, module)) {
      logger?.debug({ module, version }, 'not checked against the checksum database (goModules.noSumCheck)');
      return;
    }
    const call = signal ? { signal } : {};
    const raw = await client.fetchLookup(module, version, call).catch((err: unknown) => {
      throw advise(err);
    });
    await locked(async () => {
      const before = known();
      const res = await client.verifyLookup(raw, module, version, before, call).catch((err: unknown) => {
        throw advise(err);
      });
      if (res.advanced) {
        store.sumdb.putHead(database, { size: res.latest.n, hash: res.latest.hash.toString('base64'), note: res.latest.note.toString('utf8') });
        logger?.info({ database, treeSize: res.latest.n, previous: before?.n ?? 0 }, 'checksum database head advanced (proved consistent)');
      }
      const ids = { module, version, op: 'sumCheck' };
      // A version carried without its zip (the proxy has none) is checked by its go.mod line alone.
      if ((h1Zip !== undefined && res.h1Zip === undefined) || res.h1Mod === undefined) {
        throw new FerryError('SUMDB_INVALID', `${module}@${version}: the checksum database ${database} record ${res.recordId} has no ${res.h1Mod === undefined ? 'go.mod' : 'zip'} line for this version`, ids);
      }
      if (h1Zip !== undefined && res.h1Zip !== h1Zip) {
        throw new FerryError(
          'SUMDB_MISMATCH',
          `${module}@${version}: verifying module: checksum mismatch: the zip downloaded has ${h1Zip}, the checksum database ${database} has ${res.h1Zip}: refusing it`,
          ids,
        );
      }
      if (res.h1Mod !== h1Mod) {
        throw new FerryError(
          'SUMDB_MISMATCH',
          `${module}@${version}: verifying go.mod: checksum mismatch: the go.mod downloaded has ${h1Mod}, the checksum database ${database} has ${res.h1Mod}: refusing it`,
          ids,
        );
      }
      const lookupPath = sumdbLookupPath(module, version);
      await store.sumdb.putFile(database, lookupPath, raw, call);
      store.sumdb.putRecord({ name: database, module, version, recordId: res.recordId, text: res.text.toString('utf8'), lookupPath, headSize: res.latest.n });
    });
  };

  const complete = (o: { signal?: AbortSignal } = {}): Promise<SumdbCompletion> =>
    locked(async () => {
      const row = store.sumdb.head(database);
      if (!row) return { database, treeSize: 0, records: 0, tiles: 0 };
      const head = signedHead(row);
      const records = store.sumdb.listRecords(database);
      const tiles = new Map<string, Buffer>();
      const call = o.signal ? { signal: o.signal } : {};
      try {
        await client.proveRecords(head, records.map((r) => ({ id: r.recordId, text: Buffer.from(r.text, 'utf8') })), tiles, call);
        for (const h of store.sumdb.heads(database)) {
          if (h.exported && h.size < head.n) await client.checkTrees(signedHead(h), head, tiles, call);
        }
      } catch (err) {
        throw advise(err);
      }
      // Kept only now that every proof succeeded: the store holds no tile of a refused head.
      for (const [path, data] of tiles) await tileCache.save(path, data);
      return { database, treeSize: head.n, records: records.length, tiles: tiles.size };
    });

  return Object.assign(check, { database, complete });
}
