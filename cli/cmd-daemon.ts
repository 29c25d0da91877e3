/** `ferry daemon`: scheduled syncs and bundles until SIGTERM/SIGINT; SIGHUP reloads the configuration. */
import type { Command } from 'commander';
import { DEFAULT_GRACE_MS } from '../daemon/defaults.js';
import { FerryError } from '../errors/index.js';
import { EXIT_OK, loadConfigOption } from './common.js';

function parseGrace(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new FerryError('USAGE', `--grace ${v}: expected a number of seconds (0 or more)`);
  return Math.round(n * 1000);
}

/** Registers `ferry daemon`. */
export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run continuously: scheduled syncs and bundles, with /healthz, /readyz, /metrics and /status over HTTP')
    .option('-c, --config <file>', 'configuration file')
    .option('--listen <host:port>', 'address of the HTTP endpoints (port 0 picks a free one)', '127.0.0.1:9420')
    .option('--grace <seconds>', 'on SIGTERM/SIGINT, how long in-flight transfers may finish before they are aborted', String(DEFAULT_GRACE_MS / 1000))
    .option('--no-catch-up', 'do not sync every source at start (wait for the schedules)')
    .action(async (o: { config?: string; listen: string; grace: string; catchUp: boolean }) => {
      const graceMs = parseGrace(o.grace);
      const config = await loadConfigOption(o.config);
      // Loaded here, not at startup: the daemon brings the scheduler, metrics and export code.
      const [{ Daemon }, { createLogger }] = await Promise.all([import('../daemon/daemon.js'), import('./logger.js')]);
      const logger = createLogger(config.logLevel);
      const daemon = new Daemon({
        configFile: config.file,
        config,
        logger,
        listen: o.listen,
        graceMs,
        catchUp: o.catchUp,
        onConfig: (c) => {
          logger.level = c.logLevel;
        },
      });
      await daemon.start();
      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const onStop = (sig: NodeJS.Signals): void => {
          if (stopping) {
            // A second signal means "now": everything on disk is written temp → rename, so
            // the next start finds a consistent store (fsck stays clean).
            logger.warn({ signal: sig }, 'second signal: exiting at once');
            process.exit(130);
          }
          stopping = true;
          logger.info({ signal: sig, graceSeconds: graceMs / 1000 }, 'stopping');
          daemon.stop().then(resolve, reject);
        };
        const onHup = (): void => {
          logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
          void daemon.reload();
        };
        process.on('SIGTERM', onStop);
        process.on('SIGINT', onStop);
        process.on('SIGHUP', onHup);
      });
      process.exitCode = EXIT_OK;
      // Idle keep-alive sockets to upstreams may hold the event loop for a few seconds more;
      // the work is done and the store closed, so do not let them delay a service stop.
      setTimeout(() => process.exit(process.exitCode ?? EXIT_OK), 2_000).unref();
    });
}
