/** The sync engine: one pass over images and module roots, copied into the store. */
export * from './clients.js';
export * from './images.js';
export * from './run.js';
