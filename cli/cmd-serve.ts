/** `ferry serve`: a read-only GOPROXY and pull-only registry over a store or a Go module tree. */
import type { Command } from 'commander';
import { abortOnSignals, EXIT_OK, loadConfigOption } from './common.js';

/** Options of `ferry serve` as commander hands them over. */
interface ServeCliOptions {
  readonly config?: string;
  readonly store?: string;
  readonly gomodDir?: string;
  readonly listen: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly logLevel?: string;
}

/** Registers `ferry serve`. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve Go modules (GOPROXY) and images (pull-only OCI registry) from a store or a Go module tree, read-only')
    .option('-c, --config <file>', 'configuration file (its store is served)')
    .option('--store <dir>', 'store directory (instead of the configuration)')
    .option('--gomod-dir <dir>', 'static GOPROXY tree to serve modules from (wins over the store for modules)')
    .option('--listen <addr>', 'HOST:PORT to listen on (port 0 picks one)', '127.0.0.1:8080')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--log-level <level>', 'log level (debug logs one line per request)')
    .action(async (o: ServeCliOptions) => {
      // A store comes from --store, or from the configuration unless only a module tree was asked for.
      const config = o.store === undefined && (o.config !== undefined || o.gomodDir === undefined) ? await loadConfigOption(o.config) : undefined;
      const storeDir = o.store ?? config?.store;
      // Loaded per command, not at startup (`--help` and other commands need none of it).
      const [{ startServe }, { Store }, { createLogger }] = await Promise.all([import('../serve/server.js'), import('../store/index.js'), import('./logger.js')]);
      const logger = createLogger(o.logLevel ?? config?.logLevel ?? 'info');
      // Read-only: no migrations, no temp cleanup, safe beside a sync writing the same store
      // (SQLite WAL readers see each committed transaction without blocking the writer).
      const store = storeDir !== undefined ? Store.open(storeDir, { readonly: true, logger }) : undefined;
      try {
        const ac = abortOnSignals((sig) => logger.info({ signal: sig }, 'stopping: finishing requests in progress'));
        const server = await startServe({
          store,
          gomodDir: o.gomodDir,
          listen: o.listen,
          tlsCert: o.tlsCert,
          tlsKey: o.tlsKey,
          logger,
          signal: ac.signal,
        });
        const lines = [`serving on ${server.url}`];
        lines.push(`  Go modules:  GOPROXY=${server.url}${o.gomodDir !== undefined ? ` (from ${o.gomodDir})` : ''}`);
        // The databases an import carried into the store, which this server answers for.
        const sumdb = store && o.gomodDir === undefined ? store.sumdb.namesWithFile('supported') : [];
        if (sumdb.length > 0) lines.push(`  checksum db: ${sumdb.join(', ')} under ${server.url}/sumdb/ (GOSUMDB unchanged; go asks through GOPROXY)`);
        if (store) {
          const plain = server.url.startsWith('http://') ? ' (plain HTTP: skopeo --src-tls-verify=false, or list it under insecure registries)' : '';
          lines.push(`  images:      ${server.host}/<repository>:<tag>${plain}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
        await new Promise<void>((ok) => ac.signal.addEventListener('abort', () => ok(), { once: true }));
        await server.close();
        process.exitCode = EXIT_OK;
      } finally {
        store?.close();
      }
    });
}
