/** The process logger on stderr: JSON lines, or human-readable text (`--log-format`; by default text on a terminal). */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type pinoPretty from 'pino-pretty';
import { logFormat, type LogFormat } from './common.js';

// pino-pretty (and its dependencies) load only when a person reads the logs.
const require = createRequire(import.meta.url);

/** Creates the logger; `format` defaults to the command's (see logFormat()). */
export function createLogger(level = 'info', opts: { format?: LogFormat } = {}): Logger {
  const human = (opts.format ?? logFormat()) === 'text';
  const base = { level, base: { pid: process.pid }, redact: { paths: ['password', '*.password', 'authorization', '*.authorization'], censor: '[REDACTED]' } };
  if (human) {
    const pretty = require('pino-pretty') as typeof pinoPretty;
    return pino(base, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ fd: 2, sync: true }));
}
