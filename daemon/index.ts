/** The sync engine and, later, the long-running daemon. */
export * from './clients.js';
export * from './images.js';
export * from './sync.js';
export * from './daemon.js';
export * from './http.js';
export * from './metrics.js';
export * from './retention.js';
