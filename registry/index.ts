/** Ferry's OCI distribution client: auth and Docker's stored credentials, tags, manifests, blobs and uploads over undici. */
export * from './attachments.js';
export * from './auth.js';
export * from './blob-reader.js';
export * from './challenge.js';
export * from './client.js';
export * from './credentials.js';
export * from './foreign.js';
export * from './media.js';
export * from './types.js';
