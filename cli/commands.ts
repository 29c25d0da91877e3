/** Registers every command on the program. */
import type { Command } from 'commander';
import { registerBundleCommands } from './cmd-bundle.js';
import { registerDaemonCommand } from './cmd-daemon.js';
import { registerImportCommands } from './cmd-import.js';
import { registerInitCommand } from './cmd-init.js';
import { registerServeCommand } from './cmd-serve.js';
import { registerSyncCommands } from './cmd-sync.js';

/** Adds Ferry's commands to `program`. */
export function registerCommands(program: Command): void {
  registerInitCommand(program);
  registerSyncCommands(program);
  registerBundleCommands(program);
  registerDaemonCommand(program);
  registerServeCommand(program);
  registerImportCommands(program);
}
