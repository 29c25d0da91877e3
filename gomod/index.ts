/** Go module rules: path escaping, Go semver, go.mod parsing, the GOPROXY file layout, h1 hashes, zip checks. */
export * from './escape.js';
export * from './h1.js';
export * from './modcheck.js';
export * from './modfile.js';
export * from './proxy-path.js';
export * from './semver.js';
export * from './zipcheck.js';
export { IN_MEMORY_ZIP } from './zipread.js';
