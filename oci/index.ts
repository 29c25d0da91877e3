/** The OCI types at the bottom of Ferry: digests, references, manifests, a verifying stream, the image graph. */
export * from './digest.js';
export * from './filtered.js';
export * from './graph.js';
export * from './manifest.js';
export * from './reference.js';
export * from './verify.js';
