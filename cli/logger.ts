/** The process logger: JSON lines on stderr, or human-readable lines when stderr is a terminal. */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type pinoPretty from 'pino-pretty';

// pino-pretty (and its dependencies) load only when a person is watching a terminal.
const require = createRequire(import.meta.url);

/** Creates the logger; `pretty` defaults to whether stderr is a terminal. */
export function createLogger(level = 'info', opts: { pretty?: boolean } = {}): Logger {
  const human = opts.pretty ?? process.stderr.isTTY === true;
  const base = { level, base: { pid: process.pid }, redact: { paths: ['password', '*.password', 'authorization', '*.authorization'], censor: '[REDACTED]' } };
  if (human) {
    const pretty = require('pino-pretty') as typeof pinoPretty;
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ fd: 2, sync: true }));
}
