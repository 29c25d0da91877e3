/** The long-running daemon: schedules, the shared queues, status and metrics, its lifecycle (it runs sync/). */
export * from './daemon.js';
export * from './http.js';
export * from './metrics.js';
export * from './retention.js';
