/**
 * Process-wide V8 settings, applied before any other module is loaded (the launcher and
 * cli/main.ts import this first).
 *
 * A ferry run is mostly native work (hashing, zlib, file and socket I/O) driven by a few
 * thousand calls of our JavaScript. With V8's default tier-up budget, a Go module sync of 500
 * versions had its helper threads spend about 1 s of CPU optimizing some 200 functions, as much
 * again as the main thread's own work, on a machine of 2 cores, and the sync ran no faster for
 * it. For the first seconds of a run, functions are optimized only after about 15 times as much
 * use; after that, a long run (a sync of gigabytes, an export, the daemon) gets V8's default
 * again for the JavaScript its streams run per chunk.
 */
import { setFlagsFromString } from 'node:v8';

/** The tier-up budget for the start of a run, and V8's own (Node.js 20). */
const START_BUDGET = 1_000_000;
const DEFAULT_BUDGET = 67_584;
/** How long a run keeps START_BUDGET. */
const START_MS = 5_000;

setFlagsFromString(`--interrupt-budget=${START_BUDGET}`);
setTimeout(() => setFlagsFromString(`--interrupt-budget=${DEFAULT_BUDGET}`), START_MS).unref();
