/** Shared pieces of the CLI: exit codes, error reporting, config loading, signal handling. */
import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { FerryError, isFerryError } from '../errors/index.js';

/** Exit code for success. */
export const EXIT_OK = 0;
/** Exit code when the work failed (some source, a check, a verification). */
export const EXIT_FAILED = 1;
/** Exit code for bad usage or configuration. */
export const EXIT_USAGE = 2;

const USAGE_CODES = new Set(['USAGE', 'CONFIG_INVALID', 'CONFIG_NOT_FOUND', 'SECRET_UNRESOLVED', 'REFERENCE_INVALID', 'KEY_INVALID', 'STORE_NOT_FOUND', 'LAYOUT_INVALID']);

/** The exit code an error deserves: 2 for usage and configuration (a path naming the wrong thing included), else 1. */
export function exitCodeOf(err: FerryError): number {
  return USAGE_CODES.has(err.code) ? EXIT_USAGE : EXIT_FAILED;
}

/** Prints an error to stderr and returns the exit code it deserves. */
export function reportError(err: unknown): number {
  if (isFerryError(err)) {
    process.stderr.write(`ferry: ${err.message}\n`);
    return exitCodeOf(err);
  }
  process.stderr.write(`ferry: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_FAILED;
}

/** How logs on stderr are written: JSON lines (for journald, log shippers) or human-readable text. */
export type LogFormat = 'json' | 'text';

/** The `--log-format` values. */
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

let chosenLogFormat: LogFormat | undefined;

/** Records `--log-format` for the command about to run (main.ts, before the action). */
export function setLogFormat(format: LogFormat | undefined): void {
  chosenLogFormat = format;
}

/** The log format: `--log-format` when given, else text on a terminal and JSON lines otherwise. */
export function logFormat(): LogFormat {
  return chosenLogFormat ?? (process.stderr.isTTY === true ? 'text' : 'json');
}

/** Loads `-c FILE`, defaulting to ./ferry.yaml (the schema code loads only now: `--help` never needs it). */
export async function loadConfigOption(file: string | undefined): Promise<Config> {
  const path = file ?? 'ferry.yaml';
  if (file === undefined && !existsSync(path)) {
    throw new FerryError('CONFIG_NOT_FOUND', 'no ./ferry.yaml here; pass -c FILE');
  }
  const { loadConfig } = await import('../config/index.js');
  return loadConfig(path);
}

/** Collects a repeatable option into an array (commander helper). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** An AbortController aborted by the first SIGINT/SIGTERM; a second signal exits at once. */
export function abortOnSignals(onFirst?: (sig: string) => void): AbortController {
  const ac = new AbortController();
  // Every in-flight request, stream and queue wait of the command listens on this one signal.
  setMaxListeners(0, ac.signal);
  let seen = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (seen) process.exit(130);
    seen = true;
    onFirst?.(sig);
    ac.abort(new FerryError('ABORTED', `interrupted by ${sig}`));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return ac;
}

/** Writes one JSON document to stdout. */
export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Text gathered before one write to stdout: large enough to keep writes few, small enough to hold no whole document. */
const JSON_CHUNK = 64 * 1024;

/**
 * Writes one JSON document to stdout exactly as printJson does (`JSON.stringify(v, null, 2)` and a
 * newline), but piece by piece: arrays and plain objects are walked, everything else is
 * stringified alone, and the text goes out in chunks of about 64 KiB, waiting for stdout to
 * drain. A report with tens of thousands of tags is never one string.
 */
export async function writeJson(v: unknown, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  let buf = '';
  const flush = async (): Promise<void> => {
    const text = buf;
    buf = '';
    if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', resolve));
  };
  const emit = async (s: string): Promise<void> => {
    buf += s;
    if (buf.length >= JSON_CHUNK) await flush();
  };
  const walk = async (x: unknown, indent: string): Promise<void> => {
    const inner = `${indent}  `;
    // An array, or a list whose JSON form is the array of its elements (a toJSON and an iterator,
    // as the import's tag report; typed arrays excepted): walked element by element.
    if (Array.isArray(x) || isJsonList(x)) {
      let i = 0;
      for (const el of x as Iterable<unknown>) {
        await emit(`${i++ > 0 ? ',' : '['}\n${inner}`);
        // As JSON.stringify: what has no JSON form is null inside an array.
        if (el === undefined || typeof el === 'function' || typeof el === 'symbol') await emit('null');
        else await walk(el, inner);
      }
      return emit(i === 0 ? '[]' : `\n${indent}]`);
    }
    if (x !== null && typeof x === 'object' && typeof (x as { toJSON?: unknown }).toJSON !== 'function') {
      const entries = Object.entries(x).filter(([, val]) => val !== undefined && typeof val !== 'function' && typeof val !== 'symbol');
      if (entries.length === 0) return emit('{}');
      await emit('{');
      for (const [i, [k, val]] of entries.entries()) {
        await emit(`${i > 0 ? ',' : ''}\n${inner}${JSON.stringify(k)}: `);
        await walk(val, inner);
      }
      return emit(`\n${indent}}`);
    }
    // A leaf (or an object with toJSON): its own text, indented as it would be in place. JSON
    // strings hold no raw newline, so every newline is layout.
    const s = JSON.stringify(x, null, 2);
    return emit(s === undefined ? 'null' : s.includes('\n') ? s.replace(/\n/g, `\n${indent}`) : s);
  };
  await walk(v, '');
  buf += '\n';
  await flush();
}

/** True for a non-array list that writes itself to JSON as its elements: a toJSON and an iterator (not a typed array). */
function isJsonList(x: unknown): boolean {
  return (
    x !== null &&
    typeof x === 'object' &&
    !ArrayBuffer.isView(x) &&
    typeof (x as { toJSON?: unknown }).toJSON === 'function' &&
    typeof (x as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
  );
}

/** Lines to stdout in chunks of about 64 KiB, waiting for it to drain: a long report is never one string. */
export function lineWriter(out: NodeJS.WritableStream = process.stdout): { line(s: string): Promise<void>; end(): Promise<void> } {
  let buf = '';
  const flush = async (): Promise<void> => {
    const text = buf;
    buf = '';
    if (text !== '' && !out.write(text)) await new Promise<void>((resolve) => out.once('drain', resolve));
  };
  return {
    async line(s) {
      buf += `${s}\n`;
      if (buf.length >= JSON_CHUNK) await flush();
    },
    end: flush,
  };
}
