/** The content-addressed store: blob files plus the SQLite index (the only SQL in Ferry). */
export { Store, STORE_FORMAT, STORE_MARKER, STORE_DB } from './store.js';
export { SCHEMA_VERSION } from './migrations.js';
export { GC_PENDING_KEY, type GcOptions, type GcResult } from './gc.js';
export type { BlobSource } from './blobs.js';
export type { StoreContent } from './content.js';
export type { StoreJournal, StoreTags, TagKeySet, TagCursor } from './tags.js';
export type { StoreModules } from './modules.js';
export type { StoreRuns } from './runs.js';
export type { StoreBundles } from './bundles.js';
export type { StoreSumdb } from './sumdb.js';
export type { StoreAttachments } from './attachments.js';
export type * from './types.js';
export * from './ledger.js';
export { pidAlive, processStartTime } from './pid.js';
export { latestRow, StoreSink, StoreSource, storeReader, type StoreSinkOptions, type StoreSourceOptions, type StoreTag } from './media.js';
