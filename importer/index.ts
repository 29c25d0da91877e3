/** Loading bundles inside the air gap (import, ledger) and serving what arrived (serve). */
export * from './import.js';
