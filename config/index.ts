/** Configuration: schema, loading with positioned errors, secrets, tag filters. */
export * from './schema.js';
export * from './load.js';
export * from './secrets.js';
export * from './filters.js';
