// Test helper, loaded into a ferry child process with `node --import` (NODE_OPTIONS): a kill -9
// at a chosen point instead of a timed one. With FERRY_TEST_KILL_AT_RM=N the process sends itself
// SIGKILL just before its Nth removal of a file under a store's blobs/sha256/ (gc deleting files).
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const fsp = require('node:fs/promises');
const at = Number(process.env.FERRY_TEST_KILL_AT_RM ?? '0');

if (at > 0) {
  const rm = fsp.rm;
  let count = 0;
  fsp.rm = async (path, opts) => {
    if (String(path).includes('/blobs/sha256/') && ++count === at) {
      process.kill(process.pid, 'SIGKILL');
      return new Promise(() => {});
    }
    return rm(path, opts);
  };
  syncBuiltinESMExports();
}
