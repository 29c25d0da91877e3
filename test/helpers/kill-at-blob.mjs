// Test helper, loaded into a ferry child process with `node --import` (NODE_OPTIONS): a kill -9
// at a chosen point instead of a timed one. With FERRY_TEST_KILL_AT_BLOB=N the process sends
// itself SIGKILL at its Nth rename into an OCI layout's blobs/sha256/: right after that rename, or
// with FERRY_TEST_KILL_WHEN=before just before it (the blob's temp file written and synced).
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const fsp = require('node:fs/promises');
const at = Number(process.env.FERRY_TEST_KILL_AT_BLOB ?? '0');
const before = process.env.FERRY_TEST_KILL_WHEN === 'before';

/** Never returns: the signal ends the process. */
function die() {
  process.kill(process.pid, 'SIGKILL');
  return new Promise(() => {});
}

if (at > 0) {
  const rename = fsp.rename;
  let count = 0;
  fsp.rename = async (from, to) => {
    if (String(to).includes('/blobs/sha256/') && ++count === at) {
      if (before) return die();
      await rename(from, to);
      return die();
    }
    return rename(from, to);
  };
  // The ES module form of node:fs/promises follows the patched function too.
  syncBuiltinESMExports();
}
