/**
 * The checksum database inside a bundle: `gomod/sumdb/<name>/supported`, `latest`, one lookup
 * per carried version and the tiles that prove them, all against ONE signed head (the newest
 * Ferry verified). A lookup is composed as the checksum-database server does (server.go): the
 * record (`ID\nTEXT\n`) followed by the current signed tree note, so a go client pointed at the
 * imported tree as GOPROXY verifies every record with the tiles carried here and nothing else.
 * The tiles are found by running the same proofs the go client runs, offline, from the store.
 */
import { FerryError } from '../errors/index.js';
import { escapePath, escapeVersion } from '../gomod/escape.js';
import {
  HASH_SIZE,
  formatRecord,
  parseHash,
  recordHash,
  storedHashIndex,
  SUMDB_TILE_HEIGHT,
  tileHashReader,
  tilePath,
  TlogError,
  treeHash,
  type Tile,
  type TileReader,
} from '../sumdb/tlog.js';
import type { Store, StoreSumdb } from '../store/index.js';
import type { SumdbRecordRow } from '../store/sumdb.js';
import { bufferEntry, type BundleEntry } from './writer.js';

/** Where checksum-database files live inside a bundle. */
export const SUMDB_BUNDLE_DIR = 'gomod/sumdb';

/** Options for sumdbBundleEntries. */
export interface SumdbBundleOptions {
  readonly signal?: AbortSignal;
  /** Record the head as handed out, so later bundles carry its consistency tiles. @default true unless the store is read-only */
  readonly markExported?: boolean;
  /**
   * Bundle paths already carried by the bundle's ancestors: tiles among them are left out (a
   * tile path names immutable content). Lookups, `latest` and `supported` are always written.
   */
  readonly alreadyCarried?: ReadonlySet<string>;
}

function lookupFile(module: string, version: string): string {
  return `lookup/${escapePath(module)}@${escapeVersion(version)}`;
}

/** A TileReader over the tiles kept in the store; collects the tiles each proof used. */
function storeTileReader(sumdb: StoreSumdb, name: string, used: Map<string, Buffer>, signal: AbortSignal | undefined): TileReader {
  const read = async (t: Tile): Promise<Buffer> => {
    const path = tilePath(t);
    const want = t.w * HASH_SIZE;
    const exact = await sumdb.readFile(name, path, signal ? { signal } : {});
    if (exact !== undefined) return exact;
    const full = tilePath({ ...t, w: 2 ** t.h });
    if (full !== path) {
      const f = await sumdb.readFile(name, full, signal ? { signal } : {});
      // A partial tile is the prefix of its completed tile.
      if (f !== undefined && f.length >= want) return f.subarray(0, want);
    }
    throw new FerryError(
      'SUMDB_INVALID',
      `checksum database ${name}: tile ${path} is not in the store; run a sync (it completes the checksum-database tiles) before exporting`,
      { op: 'sumdbBundle', file: `${name}/${path}` },
    );
  };
  return {
    height: () => SUMDB_TILE_HEIGHT,
    readTiles: (tiles) => Promise.all(tiles.map(read)),
    saveTiles: (tiles, data) => {
      tiles.forEach((t, i) => used.set(tilePath(t), data[i]!));
    },
  };
}

/**
 * The bundle entries for the checksum-database records of `modules` (versions without a record,
 * e.g. noSumCheck modules, are skipped): their lookups, composed with the newest verified head,
 * and the tiles proving every stored record against that head. Also proves that every head an
 * earlier bundle handed out is a prefix of it and carries those tiles, so that clients which
 * cached an older head move forward.
 */
export async function sumdbBundleEntries(
  store: Pick<Store, 'sumdb' | 'readonly'>,
  modules: ReadonlyArray<{ readonly module: string; readonly version: string }>,
  opts: SumdbBundleOptions = {},
): Promise<BundleEntry[]> {
  const entries: BundleEntry[] = [];
  for (const name of store.sumdb.names()) {
    if (opts.signal?.aborted) throw new FerryError('ABORTED', 'sumdbBundle: aborted', { op: 'sumdbBundle', cause: opts.signal.reason });
    const carried: SumdbRecordRow[] = [];
    for (const m of modules) {
      const r = store.sumdb.getRecord(name, m.module, m.version);
      if (r) carried.push(r);
    }
    if (carried.length === 0) continue;
    // Every record ever carried is proved against the new head, not only this bundle's: a client
    // whose cached head is this one re-proves older lookups with this head's tiles.
    const records = store.sumdb.listRecords(name);
    const headRow = store.sumdb.head(name);
    const hash = headRow && parseHash(headRow.hash);
    if (!headRow || hash === undefined) {
      throw new FerryError('STORE_CORRUPT', `checksum database ${name}: records are stored but no valid verified head`, { op: 'sumdbBundle' });
    }
    const head = { n: headRow.size, hash };
    const used = new Map<string, Buffer>();
    const thr = tileHashReader(head, storeTileReader(store.sumdb, name, used, opts.signal));
    const dir = `${SUMDB_BUNDLE_DIR}/${name}`;
    try {
      for (const r of records) {
        if (r.recordId >= head.n) {
          throw new FerryError('STORE_CORRUPT', `checksum database ${name}: record ${r.recordId} of ${r.module}@${r.version} is beyond tree#${head.n}`, { op: 'sumdbBundle' });
        }
      }
      const hashes = await thr.readHashes(records.map((r) => storedHashIndex(0, r.recordId)));
      records.forEach((r, i) => {
        if (!hashes[i]!.equals(recordHash(Buffer.from(r.text, 'utf8')))) {
          throw new FerryError('SUMDB_INVALID', `checksum database ${name}: stored record ${r.recordId} of ${r.module}@${r.version} is not in tree#${head.n}`, {
            op: 'sumdbBundle',
            module: r.module,
            version: r.version,
          });
        }
      });
      for (const old of store.sumdb.heads(name)) {
        if (!old.exported || old.size >= head.n) continue;
        const h = await treeHash(old.size, thr);
        if (h.toString('base64') !== old.hash) {
          throw new FerryError('SUMDB_INCONSISTENT', `checksum database ${name}: exported tree#${old.size} is not a prefix of tree#${head.n}`, { op: 'sumdbBundle' });
        }
      }
    } catch (err) {
      if (err instanceof TlogError) {
        throw new FerryError('SUMDB_INVALID', `checksum database ${name}: stored tiles do not prove tree#${head.n}: ${err.message}`, { op: 'sumdbBundle', cause: err });
      }
      throw err;
    }
    const note = Buffer.from(headRow.note, 'utf8');
    entries.push(bufferEntry(`${dir}/supported`, Buffer.alloc(0)));
    entries.push(bufferEntry(`${dir}/latest`, note));
    for (const r of carried) {
      const body = Buffer.concat([formatRecord(r.recordId, Buffer.from(r.text, 'utf8')), note]);
      entries.push(bufferEntry(`${dir}/${lookupFile(r.module, r.version)}`, body));
    }
    for (const [path, data] of [...used].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!opts.alreadyCarried?.has(`${dir}/${path}`)) entries.push(bufferEntry(`${dir}/${path}`, data));
    }
    if (opts.markExported ?? !store.readonly) store.sumdb.markExported(name, head.n);
  }
  return entries;
}
