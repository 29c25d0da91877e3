/** Loading bundles inside the air gap: verify first, then import (`ferry serve` is in serve/). */
export * from './import.js';
