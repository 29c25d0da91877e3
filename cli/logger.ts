/** The process logger: JSON lines on stderr, or human-readable lines when stderr is a terminal. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** Creates the logger; `pretty` defaults to whether stderr is a terminal. */
export function createLogger(level = 'info', opts: { pretty?: boolean } = {}): Logger {
  const human = opts.pretty ?? process.stderr.isTTY === true;
  const base = { level, base: { pid: process.pid }, redact: { paths: ['password', '*.password', 'authorization', '*.authorization'], censor: '[REDACTED]' } };
  if (human) return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }));
  return pino(base, pino.destination({ fd: 2, sync: true }));
}
