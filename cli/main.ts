#!/usr/bin/env node
/** Ferry's command line: parses arguments and maps outcomes to exit codes. */
import { Command } from 'commander';

const program = new Command();
program
  .name('ferry')
  .description('Carry container images and Go modules across an air gap.')
  .version('0.1.0');

await program.parseAsync(process.argv);
