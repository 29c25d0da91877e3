import { defineConfig } from 'vitest/config';

// Tests start real servers (docker-registry, static GOPROXY trees) and real child
// processes (skopeo, go, openssl), so they get generous timeouts and run in forks.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
