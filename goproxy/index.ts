/** Go modules: path escaping, Go semver, go.mod parsing, h1 hashes, zip checks, a GOPROXY client. */
export * from './client.js';
export * from './escape.js';
export * from './gomod.js';
export * from './h1.js';
export * from './modcheck.js';
export * from './semver.js';
export * from './zipcheck.js';
export { IN_MEMORY_ZIP } from './zipread.js';
