/** Ferry's network layer: dispatchers, retries, bounded reads, redaction, status errors. */
export * from './dispatcher.js';
export * from './errors.js';
export * from './redact.js';
export * from './request.js';
export * from './resume.js';
export * from './retry.js';
