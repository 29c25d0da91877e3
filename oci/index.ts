/** The OCI types at the bottom of Ferry: digests, references, manifests, a verifying stream, the image graph, the media interfaces and the one copy. */
export * from './copy.js';
export * from './digest.js';
export * from './filtered.js';
export * from './graph.js';
export * from './manifest.js';
export type * from './media.js';
export * from './reference.js';
export * from './verify.js';
export * from './referrers.js';
export * from './cosign.js';
