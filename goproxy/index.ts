/** The GOPROXY client (Go module rules are in gomod/). */
export * from './client.js';
