/** Ferry's OCI distribution client: auth, tags, manifests, blobs and uploads over undici. */
export * from './auth.js';
export * from './blob-reader.js';
export * from './challenge.js';
export * from './client.js';
export * from './foreign.js';
