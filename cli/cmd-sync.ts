/** `ferry sync`, `ferry status`, `ferry fsck`, `ferry config check`. */
// Option definitions are static; each action loads what it runs (`--help` stays cheap).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { abortOnSignals, collect, EXIT_FAILED, EXIT_OK, loadConfigOption, logFormat, printJson } from './common.js';
import { formatBytes, Progress } from './progress.js';

/** Registers the sync-side commands. */
export function registerSyncCommands(program: Command): void {
  program
    .command('sync')
    .description('copy what changed upstream (images and Go modules) into the store')
    .option('-c, --config <file>', 'configuration file', undefined)
    .option('--only <name>', 'sync only this source (repeatable)', collect, [])
    .option('--json', 'print one JSON summary on stdout')
    .action(async (o: { config?: string; only: string[]; json?: boolean }) => {
      const config = await loadConfigOption(o.config);
      // The sync engine alone, not the daemon (its scheduler, metrics and export code).
      const [{ checkOnly, runSync }, { Store }, { createLogger }] = await Promise.all([
        import('../sync/run.js'),
        import('../store/index.js'),
        import('./logger.js'),
      ]);
      checkOnly(config, o.only);
      const tty = process.stderr.isTTY === true && !o.json;
      // A person reads text logs: the summary is a plain line for them, not a log record.
      const human = logFormat() === 'text' && !o.json;
      const logger = createLogger(tty ? 'warn' : config.logLevel);
      const ac = abortOnSignals((sig) => logger.warn({ signal: sig }, 'stopping: finishing in-flight work'));
      const store = Store.open(config.store, { logger });
      const progress = new Progress(tty);
      try {
        const s = await runSync({ config, store, logger, only: o.only, signal: ac.signal, onEvent: progress.onEvent });
        progress.stop();
        if (o.json) {
          printJson({ ...s, results: undefined, moduleResults: undefined });
        } else {
          if (s.archived.length > 0) process.stderr.write(`ferry: archived, not contacted upstream: ${s.archived.join(', ')}\n`);
          const line =
            `images: ${s.images.checked} checked, ${s.images.changed} changed, ${s.images.unchanged} unchanged, ${s.images.failed} failed; ` +
            `tags: ${s.tags.changed} changed of ${s.tags.checked}; modules: ${s.modules.versionsNew} new of ${s.modules.versionsChecked} versions` +
            `${s.modules.modOnly > 0 ? ` (${s.modules.modOnly} without a zip)` : ''}, ${s.modules.failed} roots failed; ` +
            `blobs: ${s.blobs.fetched} fetched (${formatBytes(s.blobs.bytes)}) in ${(s.durationMs / 1000).toFixed(1)}s`;
          if (human) process.stderr.write(`${line}\n`);
          else logger.info({ summary: { ...s, results: undefined, moduleResults: undefined } }, line);
          for (const p of s.pruned) process.stderr.write(`ferry: ${p.source}: pruned tag ${p.tag} (gone upstream or no longer selected; the next bundle removes it inside)\n`);
          for (const w of s.warnings) process.stderr.write(`ferry: warning: ${w.source}: ${w.message}\n`);
          for (const f of s.foreignLayers) {
            if (!f.stored) process.stderr.write(`ferry: ${f.source}: foreign layer ${f.digest} (${f.mediaType}) left out; its urls: ${f.urls.map((u) => JSON.stringify(u)).join(' ')}\n`);
          }
          for (const f of s.failures) process.stderr.write(`ferry: ${f.source}${f.tag ? `:${f.tag}` : ''}: ${f.message}\n`);
        }
        process.exitCode = s.ok ? EXIT_OK : EXIT_FAILED;
      } finally {
        progress.stop();
        store.close();
      }
    });

  program
    .command('status')
    .description('show what the store holds and how the last runs went')
    .option('-c, --config <file>', 'configuration file')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { config?: string; json?: boolean }) => {
      const config = await loadConfigOption(o.config);
      const [{ Store }, { inactiveSources }] = await Promise.all([import('../store/index.js'), import('../config/index.js')]);
      // Reading commands never create a store: a wrong path is an error, not an empty store.
      const store = Store.open(config.store, { create: false });
      try {
        const stats = store.stats();
        const tags = store.tags.list();
        const runs = store.runs.last(5);
        const sources = store.runs.sourceStates();
        const modules = store.modules.list();
        if (o.json) {
          printJson({ store: config.store, stats, sources, lifecycle: inactiveSources(config), runs, tags, modules: modules.map((m) => ({ module: m.module, version: m.version, ...(m.zipDigest === null ? { zip: false } : {}) })) });
          return;
        }
        const out: string[] = [];
        const modOnly = modules.filter((m) => m.zipDigest === null).length;
        out.push(`store ${config.store}`);
        out.push(
          `  ${stats.tags} tags, ${stats.manifests} manifests, ${stats.blobs} blobs (${formatBytes(stats.bytes)}), ${stats.moduleVersions} module versions` +
            `${modOnly > 0 ? ` (${modOnly} carried without a zip: upstream has none)` : ''}, journal at ${stats.journalSeq}`,
        );
        out.push('sources:');
        // A source that is not active says so first: archived ones are not synced at all.
        const life = (s: { lifecycle: string; note: string | undefined }): string =>
          s.lifecycle === 'active' ? '' : `  ${s.lifecycle}${s.note !== undefined ? ` (${s.note})` : ''}${s.lifecycle === 'archived' ? ', not synced' : ''}`;
        for (const img of config.images) {
          const st = sources.find((s) => s.source === img.name);
          const n = tags.filter((t) => t.source === img.name).length;
          out.push(`  ${img.name}${life(img)}  ${n} tags  last ok ${st?.lastOk ?? 'never'}${st?.lastError ? `  last error: ${st.lastError}` : ''}`);
        }
        for (const root of config.goModules?.roots ?? []) {
          const st = sources.find((s) => s.source === root.name);
          out.push(`  ${root.name}${life(root)}  last ok ${st?.lastOk ?? 'never'}${st?.lastError ? `  last error: ${st.lastError}` : ''}`);
        }
        out.push('last runs:');
        for (const r of runs) out.push(`  #${r.id} ${r.kind} ${r.status} started ${r.startedAt}${r.error ? `  ${r.error}` : ''}`);
        process.stdout.write(`${out.join('\n')}\n`);
      } finally {
        store.close();
      }
    });

  program
    .command('fsck')
    .description('re-hash every blob and check every reference; exit 1 on damage')
    .option('-c, --config <file>', 'configuration file')
    .option('--store <dir>', 'store directory (instead of the configuration)')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { config?: string; store?: string; json?: boolean }) => {
      const dir = o.store ?? (await loadConfigOption(o.config)).store;
      const { Store } = await import('../store/index.js');
      const store = Store.open(dir, { create: false });
      try {
        const r = await store.fsck();
        if (o.json) printJson({ store: dir, ...r, ok: r.problems.length === 0 });
        else {
          for (const p of r.problems) process.stdout.write(`${p.kind}: ${p.digest ? `${p.digest}: ` : ''}${p.detail}\n`);
          process.stdout.write(`${r.checked} blobs checked, ${r.problems.length} problem(s)\n`);
          if (r.foreignLayers.length > 0) {
            process.stdout.write(`${r.foreignLayers.length} foreign layer(s) not stored, by design (non-distributable): ${r.foreignLayers.join(', ')}\n`);
          }
          if (r.unreferenced.length > 0) {
            const bytes = r.unreferenced.reduce((n, b) => n + b.size, 0);
            process.stdout.write(`${r.unreferenced.length} unreferenced blob(s) (${bytes} bytes): nothing in the index uses them; an interrupted sync or import left them (not damage)\n`);
          }
        }
        process.exitCode = r.problems.length === 0 ? EXIT_OK : EXIT_FAILED;
      } finally {
        store.close();
      }
    });

  program
    .command('gc')
    .description('remove the manifests and blobs nothing needs, and the tags of sources no longer configured')
    .option('-c, --config <file>', 'configuration file')
    .option('--store <dir>', 'store directory (instead of the configuration; every source in it is kept)')
    .option('--dry-run', 'list what would go, change nothing')
    .option('--min-age <duration>', 'never remove content stored less than this long ago (default 1h; 0 for none)')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { config?: string; store?: string; dryRun?: boolean; minAge?: string; json?: boolean }) => {
      const config = o.store === undefined ? await loadConfigOption(o.config) : undefined;
      const dir = o.store ?? config!.store;
      const [{ Store }, { parseDuration }] = await Promise.all([import('../store/index.js'), import('../config/index.js')]);
      const minAgeMs = o.minAge === undefined ? undefined : /^\s*0+\s*(ms|s|m|h)?\s*$/.test(o.minAge) ? 0 : parseDuration(o.minAge);
      const store = Store.open(dir, { create: false });
      try {
        // Journal entries every confirmed bundle covers are compacted (no confirmations: none).
        const file = config?.export?.confirmations;
        const [{ confirmedCoverage }, { readConfirmations }] = await Promise.all([import('../bundle/export.js'), import('../daemon/retention.js')]);
        const covered = file === undefined ? undefined : confirmedCoverage(store.bundles, await readConfirmations(file));
        // A store `ferry import --store` fills: what its bundles carried stays (a later bundle
        // lists it in `requires` rather than carrying it again): every blob the ledger beside it
        // names and every manifest (the ledger does not list those), with all they reach.
        const keepDigests = await importedBlobs(store.dir);
        const r = await store.gc({
          ...(covered ? { journalCovered: covered } : {}),
          ...(keepDigests ? { keepDigests, keepManifests: true } : {}),
          ...(config ? { keepSources: new Set(config.images.map((i) => i.name)) } : {}),
          ...(o.dryRun ? { dryRun: true } : {}),
          ...(minAgeMs !== undefined ? { minAgeMs } : {}),
        });
        if (o.json) printJson({ store: dir, ...r });
        else {
          for (const s of r.droppedSources) process.stdout.write(`${r.dryRun ? 'would drop' : 'dropped'} the ${s.tags} tag(s) of ${s.source} (no longer in the configuration)\n`);
          process.stdout.write(
            `${r.dryRun ? 'would remove' : 'removed'} ${r.manifests} manifest(s) and ${r.blobs} blob(s), ${formatBytes(r.bytes)}${r.resumed > 0 ? `; finished ${r.resumed} file deletion(s) an interrupted gc left` : ''}${r.runs > 0 ? `; ${r.dryRun ? 'would compact' : 'compacted'} ${r.runs} old run record(s)` : ''}${r.journal > 0 ? `; ${r.dryRun ? 'would compact' : 'compacted'} ${r.journal} journal entr${r.journal === 1 ? 'y' : 'ies'} every confirmed bundle covers` : ''}\n`,
          );
        }
      } finally {
        store.close();
      }
    });

  const cfg = program.command('config').description('configuration tools');
  cfg
    .command('check')
    .argument('[file]', 'configuration file', 'ferry.yaml')
    .description('validate a configuration file without network access')
    .action(async (file: string) => {
      const { loadConfig } = await import('../config/index.js');
      const c = loadConfig(file);
      process.stdout.write(
        `${c.file}: ok (${c.images.length} images, ${c.goModules?.roots.length ?? 0} Go module roots, store ${c.store})\n`,
      );
    });
}

/** The blobs the import ledger beside a store (`ferry import --store`) says imported bundles placed there; undefined without one. */
async function importedBlobs(dir: string): Promise<Set<string> | undefined> {
  const { Ledger } = await import('../store/index.js');
  const file = join(dir, 'ledger.db');
  if (!existsSync(file)) return undefined;
  const ledger = Ledger.open(file, { readonly: true });
  try {
    return ledger.importedBlobs(`store:${dir}`);
  } finally {
    ledger.close();
  }
}
