/** The bundle format both ways: keys, signatures, the signed manifests, writing, reading, verifying, import.sh. */
export * from './format.js';
export * from './import-script.js';
export * from './keys.js';
export * from './layout.js';
export * from './module-check.js';
export * from './reader.js';
export * from './sign.js';
export * from './verify.js';
export * from './writer.js';
export * from './export.js';
export * from './media.js';
export * from './plan.js';
