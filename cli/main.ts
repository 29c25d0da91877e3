#!/usr/bin/env node
/** Ferry's command line: parses arguments, runs a command, maps outcomes to exit codes (0 ok, 1 failed, 2 usage/config). */
import { Command, CommanderError, Option } from 'commander';
import { registerCommands } from './commands.js';
import { EXIT_USAGE, LOG_FORMATS, reportError, setLogFormat, type LogFormat } from './common.js';

const program = new Command();
program
  .name('ferry')
  .description('Carry container images and Go modules across an air gap.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .addOption(new Option('--log-format <format>', 'logs on stderr as JSON lines or human-readable text (default: text on a terminal, else json)').choices(LOG_FORMATS))
  .configureHelp({ showGlobalOptions: true })
  .hook('preAction', (_program, command) => setLogFormat(command.optsWithGlobals<{ logFormat?: LogFormat }>().logFormat))
  .exitOverride();

registerCommands(program);

// A reader that went away (`ferry status --json | head`) ends the output as for any Unix tool:
// quietly, with the exit status the command had so far, never an unhandled EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
});

// No top-level await: the bundle is a CommonJS script (see scripts/postbuild.mjs).
program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    process.exitCode = reportError(err);
  }
});
