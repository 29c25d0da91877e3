/** The sync engine and, later, the long-running daemon. */
export * from './clients.js';
export * from './images.js';
export * from './sync.js';
