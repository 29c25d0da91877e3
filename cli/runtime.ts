/**
 * Process-wide V8 settings, applied before any other module is loaded (cli/main.ts imports
 * this first).
 *
 * A ferry run is mostly native work (hashing, zlib, file and socket I/O) driven by a few
 * thousand calls of our JavaScript. With V8's default tier-up budget, a Go module sync of 500
 * versions had its helper threads spend about 1 s of CPU optimizing some 200 functions, as much
 * again as the main thread's own work, on a machine of 2 cores, and the sync ran no faster for
 * it. Functions are now optimized after about 15 times as much use: still early in a long daemon
 * run, and no longer for a one-off command.
 */
import { setFlagsFromString } from 'node:v8';

const INTERRUPT_BUDGET = 1_000_000;

setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
