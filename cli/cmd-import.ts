/** `ferry import` (and `--status`) and its alias `ferry ledger`: loading bundles inside the air gap. */
import { existsSync } from 'node:fs';
// Option definitions are static; each action loads what it runs (`--help` stays cheap).
import type { Command } from 'commander';
import { FerryError } from '../errors/index.js';
import type { ImportResult } from '../importer/index.js';
import type { LedgerChainStatus, LedgerLifecycle } from '../store/index.js';
import { abortOnSignals, collect, EXIT_OK, exitCodeOf, lineWriter, printJson, writeJson } from './common.js';
import { formatBytes } from './progress.js';

interface ImportCliOptions {
  trust: string[];
  registry?: string;
  plainHttp?: boolean;
  insecure?: boolean;
  caFile?: string;
  username?: string;
  password?: string;
  prefix?: string;
  gomodDir?: string;
  store?: string;
  ociDir?: string;
  ledger?: string;
  dryRun?: boolean;
  /** False with --no-prune. */
  prune?: boolean;
  force?: boolean;
  insecureSkipSignature?: boolean;
  json?: boolean;
  status?: boolean;
  concurrency?: string;
  serveUrl?: string;
}

function usage(msg: string): FerryError {
  return new FerryError('USAGE', msg);
}

/** Prints the ledger: what arrived, per source store, and what the chain is missing. */
async function printStatus(file: string, json: boolean | undefined): Promise<void> {
  if (!existsSync(file)) {
    if (json) printJson({ ledger: file, stores: [] });
    else process.stdout.write(`ledger ${file}: nothing imported yet\n`);
    return;
  }
  const { Ledger } = await import('../store/index.js');
  const ledger = Ledger.open(file, { readonly: true });
  let chains: LedgerChainStatus[];
  let lifecycle: LedgerLifecycle[];
  try {
    chains = ledger.chainStatus();
    lifecycle = ledger.lifecycle();
  } finally {
    ledger.close();
  }
  if (json) {
    printJson({ ledger: file, stores: chains, lifecycle });
    return;
  }
  const out: string[] = [`ledger ${file}`];
  if (chains.length === 0) out.push('  nothing imported yet');
  for (const c of chains) {
    out.push(`source store ${c.sourceStore}: highest sequence imported ${c.highest}`);
    for (const b of c.bundles) {
      const only = b.sources ? `  only ${b.sources.join(', ')}` : '';
      out.push(`  ${String(b.sequence).padStart(4)}  ${b.id}  ${b.result.padEnd(7)}  ${b.target}  ${b.finishedAt ?? b.startedAt}${only}${b.error ? `  ${b.error}` : ''}`);
    }
    if (c.missing.length === 0) out.push('  chain complete');
    else out.push(`  missing: ${c.missing.map((x) => `sequence ${x.sequence}${x.id ? ` (${x.id})` : ''}`).join(', ')}`);
    for (const p of c.partial) {
      out.push(
        `  sequence ${p.sequence} carried only ${p.sources.join(', ')} (export --only): other sources are as of ${c.allSourcesThrough > 0 ? `sequence ${c.allSourcesThrough}` : 'no bundle yet'}`,
      );
    }
    for (const l of lifecycle.filter((x) => x.sourceStore === c.sourceStore)) {
      out.push(`  ${l.state} ${l.kind} ${l.target ?? l.name}${l.note !== null ? `: ${l.note}` : ''}  (as of sequence ${l.sequence})`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/** The human report, written as it is made (one line per tag: tens of thousands at scale). */
async function printResult(r: ImportResult): Promise<void> {
  const w = lineWriter();
  const out = {
    push: async (...lines: string[]): Promise<void> => {
      for (const l of lines) await w.line(l);
    },
  };
  for (const b of r.bundles) {
    if (b.status === 'already-imported') {
      await out.push(`bundle ${b.id} (sequence ${b.sequence}): already imported into ${b.alreadyAt.join(', ')}; nothing to do`);
      continue;
    }
    if (b.status === 'dry-run') {
      await out.push(`bundle ${b.id} (sequence ${b.sequence}) — dry run, nothing changed:`);
      let total = 0;
      for (const p of b.plan ?? []) {
        total += p.action === 'skip' ? 0 : p.size;
        await out.push(`  ${p.action.padEnd(13)} ${p.what}${p.size ? `  ${formatBytes(p.size)}` : ''}  [${p.target}]`);
      }
      await out.push(`  would transfer about ${formatBytes(total)}`);
      if (b.alreadyAt.length > 0) await out.push(`  already imported into ${b.alreadyAt.join(', ')}`);
      continue;
    }
    await out.push(`bundle ${b.id} (sequence ${b.sequence}) imported${b.signer ? `, signed by ${b.signer}` : ', SIGNATURE NOT CHECKED'}:`);
    for (const t of b.targets) {
      const bl = t.blobs;
      await out.push(
        `  ${t.target}: blobs ${bl.uploaded} uploaded (${formatBytes(bl.bytes)}), ${bl.mounted} mounted, ${bl.existing} already there, ${bl.skipped} done before; ` +
          `${t.manifests} manifests, ${t.tags.length} tags, ${t.modules} module versions`,
      );
      for (const tag of t.tags) {
        await out.push(`    ${tag.repository}:${tag.tag} → ${tag.digest}${tag.filteredFrom ? `  (platform-filtered; upstream ${tag.filteredFrom})` : ''}${tag.skipped ? '  (already set)' : ''}`);
      }
      const how = { tag: 'deleted (tag)', manifest: 'deleted (manifest; the registry deletes no tags)', gone: 'already gone', kept: 'kept' } as const;
      for (const p of t.pruned ?? []) {
        await out.push(`    pruned ${p.repository}:${p.tag} (${p.digest}): ${how[p.action]}${p.detail !== undefined ? `: ${p.detail}` : ''}`);
      }
    }
  }
  const cc = r.clientConfig;
  if (!r.dryRun && (Object.keys(cc.env).length > 0 || cc.registriesConf || cc.notes.length > 0)) {
    await out.push('', 'Client configuration for intranet users:');
    for (const [k, v] of Object.entries(cc.env)) await out.push(`  export ${k}=${shellQuote(v)}`);
    if (cc.registriesConf) await out.push('', '  # /etc/containers/registries.conf', ...cc.registriesConf.trimEnd().split('\n').map((l) => `  ${l}`));
    if (cc.daemonJson) await out.push('', '  # /etc/docker/daemon.json', ...cc.daemonJson.trimEnd().split('\n').map((l) => `  ${l}`));
    await out.push('');
    for (const n of cc.notes) await out.push(`  note: ${n}`);
  }
  await w.end();
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@=+,-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

interface LedgerPlace {
  ledger?: string;
  store?: string;
  gomodDir?: string;
  ociDir?: string;
}

async function ledgerFile(o: LedgerPlace): Promise<string> {
  if (o.ledger !== undefined) return o.ledger;
  const { defaultLedgerPath } = await import('../importer/index.js');
  return defaultLedgerPath({
    ...(o.store !== undefined ? { store: o.store } : {}),
    ...(o.gomodDir !== undefined ? { gomodDir: o.gomodDir } : {}),
    ...(o.ociDir !== undefined ? { ociDir: o.ociDir } : {}),
  });
}

/** The ledger `ferry ledger` and `--status` read: a path named on the command line must exist (a typo is not "nothing imported yet"). */
async function statusLedgerFile(o: LedgerPlace): Promise<string> {
  if (o.ledger !== undefined) {
    if (!existsSync(o.ledger)) throw usage(`--ledger ${o.ledger}: no such file`);
  } else if (o.store !== undefined) {
    if (!existsSync(o.store)) throw new FerryError('STORE_NOT_FOUND', `--store ${o.store}: no such directory`, { file: o.store });
  } else if (o.gomodDir !== undefined) {
    if (!existsSync(o.gomodDir)) throw usage(`--gomod-dir ${o.gomodDir}: no such directory`);
  } else if (o.ociDir !== undefined && !existsSync(o.ociDir)) {
    throw usage(`--oci-dir ${o.ociDir}: no such directory`);
  }
  return ledgerFile(o);
}

async function runImport(bundles: string[], o: ImportCliOptions): Promise<void> {
  if (o.status) {
    await printStatus(await statusLedgerFile(o), o.json);
    return;
  }
  if (bundles.length === 0) throw usage('ferry import: name at least one bundle (a .tar, its first part, or a directory)');
  if (o.registry === undefined && o.gomodDir === undefined && o.store === undefined && o.ociDir === undefined) {
    throw usage('ferry import: name at least one target: --registry HOST[:PORT], --gomod-dir DIR, --store DIR or --oci-dir DIR');
  }
  const tlsFlags = [o.plainHttp, o.insecure, o.caFile !== undefined].filter(Boolean).length;
  if (tlsFlags > 1) throw usage('ferry import: --plain-http, --insecure and --ca-file exclude each other');
  if ((o.username === undefined) !== (o.password === undefined)) throw usage('ferry import: --username and --password go together');
  if (o.password !== undefined && !/^(env|file):/.test(o.password)) throw usage('ferry import: --password takes env:NAME or file:PATH, never the password itself');
  if (o.registry === undefined && (tlsFlags > 0 || o.username !== undefined || o.prefix !== undefined)) {
    throw usage('ferry import: --plain-http, --insecure, --ca-file, --username and --prefix need --registry');
  }
  if (o.trust.length === 0 && !o.insecureSkipSignature) throw usage('ferry import: --trust PUB is required (the public key of the bundle signer)');
  const concurrency = o.concurrency !== undefined ? Number(o.concurrency) : undefined;
  if (concurrency !== undefined && (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 256)) {
    throw usage(`ferry import: --concurrency must be an integer from 1 to 256, got "${o.concurrency}"`);
  }
  const [{ loadTrustedKey }, { resolveSecret }, { importBundles, inspectLayoutDir, SKIP_SIGNATURE_WARNING }, { RegistryClient }, { Ledger, Store }, { createLogger }] = await Promise.all([
    import('../bundle/index.js'),
    import('../config/index.js'),
    import('../importer/index.js'),
    import('../registry/index.js'),
    import('../store/index.js'),
    import('./logger.js'),
  ]);
  if (o.insecureSkipSignature) process.stderr.write(`ferry: ${SKIP_SIGNATURE_WARNING}\n`);

  const trust = await Promise.all(o.trust.map((p) => loadTrustedKey(p)));
  const lf = await ledgerFile(o);
  /** With --json, a FerryError is one JSON document on stdout too. */
  const failedAsJson = (err: unknown): boolean => {
    if (!o.json || !(err instanceof FerryError)) return false;
    printJson({ ok: false, code: err.code, message: err.message, file: err.details.file, ledger: lf });
    process.stderr.write(`ferry: ${err.message}\n`);
    process.exitCode = exitCodeOf(err);
    return true;
  };
  // Before the ledger (which may go into it) or anything else is created.
  if (o.ociDir !== undefined) {
    try {
      await inspectLayoutDir(o.ociDir);
    } catch (err) {
      if (failedAsJson(err)) return;
      throw err;
    }
  }
  const logger = createLogger(o.json ? 'error' : 'warn');
  const ac = abortOnSignals();
  const password = o.password !== undefined ? resolveSecret(o.password, '--password') : undefined;
  const registry =
    o.registry !== undefined
      ? new RegistryClient({
          host: o.registry,
          tls: o.plainHttp ? 'plain-http' : o.insecure ? 'insecure' : 'verify',
          ...(o.caFile !== undefined ? { caFile: o.caFile } : {}),
          ...(o.username !== undefined && password !== undefined ? { credentials: { username: o.username, password, origin: `--username and --password ${o.password}` } } : {}),
          advice: {
            tls: { trustCa: "pass --ca-file with that CA's PEM certificate", insecure: '--insecure', plainHttp: '--plain-http' },
            noCredentials: 'pass --username USER --password env:NAME (or file:PATH) if the registry needs them',
          },
          logger,
        })
      : undefined;
  const store = o.store !== undefined ? (o.dryRun ? (existsSync(o.store) ? Store.open(o.store, { readonly: true }) : undefined) : Store.open(o.store, { logger })) : undefined;
  const ledger = o.dryRun ? (existsSync(lf) ? Ledger.open(lf, { readonly: true }) : undefined) : Ledger.open(lf);
  try {
    if (o.store !== undefined && !store) throw usage(`ferry import --dry-run: store ${o.store} does not exist yet; a real import would create it`);
    const r = await importBundles({
      bundles,
      trust,
      ...(o.insecureSkipSignature ? { insecureSkipSignature: true } : {}),
      ...(registry ? { registry } : {}),
      ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
      ...(o.gomodDir !== undefined ? { gomodDir: o.gomodDir } : {}),
      ...(store ? { store } : {}),
      ...(o.ociDir !== undefined ? { ociDir: o.ociDir } : {}),
      ...(ledger ? { ledger } : {}),
      ...(o.dryRun ? { dryRun: true } : {}),
      ...(o.prune === false ? { prune: false } : {}),
      ...(o.force ? { force: true } : {}),
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(o.serveUrl !== undefined ? { serveUrl: o.serveUrl } : {}),
      ...(o.plainHttp || o.insecure ? { insecureRegistry: true } : {}),
      logger,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'warning' && !o.json && e.message !== SKIP_SIGNATURE_WARNING) process.stderr.write(`ferry: warning: ${e.message}\n`);
      },
    });
    // Streamed: at tens of thousands of tags the document is megabytes, never built as one string.
    if (o.json) await writeJson({ ...r, ledger: lf });
    else await printResult(r);
    process.exitCode = EXIT_OK;
  } catch (err) {
    if (failedAsJson(err)) return;
    throw err;
  } finally {
    ledger?.close();
    store?.close();
    await registry?.close();
  }
}

/** Registers `ferry import` and `ferry ledger`. */
export function registerImportCommands(program: Command): void {
  program
    .command('import')
    .description('verify bundles and load them into an intranet registry, a Go module tree, a Ferry store and/or an OCI image layout')
    .argument('[bundle...]', 'a bundle .tar, its first part, its .parts.json, or a directory')
    .option('--trust <pub>', 'trusted public key (repeatable)', collect, [])
    .option('--registry <host[:port]>', 'intranet OCI registry to push images to')
    .option('--plain-http', 'the registry speaks plain HTTP')
    .option('--insecure', 'do not verify the registry TLS certificate')
    .option('--ca-file <file>', 'CA certificate(s) to trust for the registry')
    .option('--username <user>', 'registry user')
    .option('--password <ref>', 'registry password from env:NAME or file:PATH')
    .option('--prefix <path>', 'namespace put in front of every image path in the registry')
    .option('--gomod-dir <dir>', 'static GOPROXY tree to write Go modules into')
    .option('--store <dir>', 'Ferry store to load into (for ferry serve, or a further export)')
    .option('--oci-dir <dir>', 'OCI image layout to write images into (skopeo/podman oci:DIR:NAME; a tar of it for ctr image import or k3s/RKE2)')
    .option('--ledger <file>', 'import ledger (default: beside the store, in the Go module tree or the OCI layout, else ./ferry-ledger.db)')
    .option('--dry-run', 'print what would be pushed and written, change nothing')
    .option('--no-prune', 'leave at the registry the tags a bundle removes (pruned upstream)')
    .option('--force', 'import even when the ledger lacks the parent bundle')
    .option('--insecure-skip-signature', 'DANGEROUS: do not check bundle signatures')
    .option('--concurrency <n>', 'concurrent registry blob operations (default 4); tags move twice as many at once')
    .option('--serve-url <url>', 'URL of ferry serve, for the printed GOPROXY')
    .option('--json', 'print one JSON document on stdout')
    .option('--status', 'list what arrived and what the chain is missing (no bundles needed)')
    .action(runImport);

  program
    .command('ledger')
    .description('list imported bundles and what the chain is missing (same as ferry import --status)')
    .option('--ledger <file>', 'import ledger file')
    .option('--gomod-dir <dir>', 'the ledger beside this Go module tree')
    .option('--store <dir>', 'the ledger beside this store')
    .option('--oci-dir <dir>', 'the ledger in this OCI image layout')
    .option('--json', 'print JSON on stdout')
    .action(async (o: LedgerPlace & { json?: boolean }) => {
      await printStatus(await statusLedgerFile(o), o.json);
    });
}
