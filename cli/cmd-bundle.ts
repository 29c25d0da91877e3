/** `ferry keygen`, `ferry export`, `ferry verify`. */
import { dirname } from 'node:path';
// Option definitions are static; each action loads what it runs (`--help` stays cheap).
import type { Command } from 'commander';
import { FerryError } from '../errors/index.js';
import { abortOnSignals, collect, EXIT_FAILED, loadConfigOption, logFormat, printJson } from './common.js';
import { ByteProgress, formatBytes } from './progress.js';

/** Registers keygen, export and verify. */
export function registerBundleCommands(program: Command): void {
  program
    .command('keygen')
    .description('create an ECDSA P-256 signing key pair: PREFIX.key (PKCS#8, mode 0600) and PREFIX.pub')
    .requiredOption('--out <prefix>', 'path prefix of the key files')
    .option('--passphrase <ref>', 'encrypt the private key with the passphrase from env:NAME or file:PATH')
    .action(async (o: { out: string; passphrase?: string }) => {
      const [{ writeKeyPair }, { resolveSecret }] = await Promise.all([import('../bundle/index.js'), import('../config/index.js')]);
      const passphrase = o.passphrase !== undefined ? resolveSecret(o.passphrase, '--passphrase') : undefined;
      if (o.passphrase !== undefined && !/^(env|file):/.test(o.passphrase)) {
        throw new FerryError('USAGE', '--passphrase takes env:NAME or file:PATH, never the passphrase itself');
      }
      const r = await writeKeyPair(o.out, passphrase !== undefined ? { passphrase } : {});
      process.stdout.write(`private key: ${r.privateKeyPath} (keep it on the DMZ host)\npublic key:  ${r.publicKeyPath} (carry it inside)\nfingerprint: ${r.fingerprint}\n`);
    });

  program
    .command('export')
    .description('write a signed bundle (incremental since the last one by default)')
    .option('-c, --config <file>', 'configuration file')
    .option('--out <dir>', 'output directory (default: export.out)')
    .option('--full', 'carry everything, not only what changed since the last bundle')
    .option('--since <bundle>', 'parent bundle, by id or sequence (to replace a lost disc)')
    .option('--split-size <size>', 'split the tar into parts of at most this size (e.g. 4GiB, 700MB)')
    .option('--key <file>', 'signing key (default: export.signingKey)')
    .option('--only <name>', 'only this source (repeatable)', collect, [])
    .option('--json', 'print one JSON summary on stdout')
    .action(async (o: { config?: string; out?: string; full?: boolean; since?: string; splitSize?: string; key?: string; only: string[]; json?: boolean }) => {
      if (o.full && o.since !== undefined) throw new FerryError('USAGE', '--full and --since exclude each other');
      const config = await loadConfigOption(o.config);
      const [{ exportBundle }, { inactiveSources, parseByteSize, resolveSecret }, { Store }, { createLogger }, { checkOnly }] = await Promise.all([
        import('../bundle/index.js'),
        import('../config/index.js'),
        import('../store/index.js'),
        import('./logger.js'),
        import('../sync/index.js'),
      ]);
      checkOnly(config, o.only);
      const out = o.out ?? config.export?.out;
      if (!out) throw new FerryError('USAGE', 'no output directory: pass --out DIR or set export.out');
      const key = o.key ?? config.export?.signingKey;
      if (!key) throw new FerryError('USAGE', 'no signing key: pass --key FILE or set export.signingKey (create one with ferry keygen)');
      const splitRaw = o.splitSize ?? config.export?.splitSize;
      const splitSize = splitRaw !== undefined ? parseByteSize(splitRaw) : undefined;
      const passRef = config.export?.signingKeyPassphrase;
      const passphrase = passRef ? resolveSecret(passRef, 'export.signingKeyPassphrase', dirname(config.file)) : undefined;
      // In text for a person, the summary below says what the info record "bundle exported" would.
      const logger = createLogger(logFormat() === 'text' && !o.json && config.logLevel === 'info' ? 'warn' : config.logLevel);
      const ac = abortOnSignals();
      const store = Store.open(config.store, { logger, create: false });
      const progress = new ByteProgress('export', process.stderr.isTTY === true && !o.json);
      try {
        const r = await exportBundle({
          store,
          outDir: out,
          signingKey: key,
          ...(passphrase !== undefined ? { passphrase } : {}),
          ...(o.full ? { full: true } : {}),
          ...(o.since !== undefined ? { since: o.since } : {}),
          ...(splitSize !== undefined ? { splitSize } : {}),
          only: o.only,
          lifecycle: inactiveSources(config),
          logger,
          signal: ac.signal,
          onProgress: (p) => progress.update(p.done, p.total),
        });
        if (o.json) printJson(r);
        else {
          process.stdout.write(
            `bundle ${r.name} (sequence ${r.sequence}, ${r.parent ? `since ${r.parent}` : 'full'}${r.sources ? `, only ${r.sources.join(', ')}` : ''}): ${r.images} images, ${r.modules} module versions, ${r.pruned ? `${r.pruned} tags removed, ` : ''}${r.blobs} blobs, ${formatBytes(r.bytes)}${r.requires ? `; requires ${r.requires} blobs from earlier bundles` : ''}\n`,
          );
          for (const f of r.files) process.stdout.write(`  ${f}\n`);
          for (const d of r.foreignLayers) process.stdout.write(`  not carried: foreign layer ${d} (non-distributable, left out at sync)\n`);
        }
      } finally {
        progress.stop();
        store.close();
      }
    });

  program
    .command('verify')
    .description('check a bundle: signature, parts, every file, OCI references, and every Go module check import runs')
    .argument('<bundle>', 'the .tar, its first part, or a directory')
    .requiredOption('--trust <pub>', 'trusted public key (repeatable)', collect, [])
    .option('--json', 'print JSON on stdout')
    .action(async (bundle: string, o: { trust: string[]; json?: boolean }) => {
      const { loadTrustedKey, verifyBundle } = await import('../bundle/index.js');
      const trust = await Promise.all(o.trust.map((p) => loadTrustedKey(p)));
      const progress = new ByteProgress('verify', process.stderr.isTTY === true && !o.json);
      try {
        const r = await verifyBundle(bundle, { trust, onProgress: (p) => progress.update(p.bytes) }).finally(() => progress.stop());
        if (o.json) {
          printJson({ ok: true, id: r.manifest.id, sequence: r.manifest.sequence, parent: r.manifest.parent, signer: r.signer, files: r.files, bytes: r.bytes, foreignLayers: r.foreignLayers });
        } else {
          process.stdout.write(`${bundle}: ok — bundle ${r.manifest.id} (sequence ${r.manifest.sequence}), signed by ${r.signer}, ${r.files} files, ${formatBytes(r.bytes)} verified\n`);
          for (const d of r.foreignLayers) process.stdout.write(`  not carried: foreign layer ${d} (non-distributable; clients fetch it from its urls)\n`);
        }
      } catch (err) {
        if (o.json && err instanceof FerryError) {
          printJson({ ok: false, code: err.code, message: err.message, file: err.details.file });
          process.exitCode = EXIT_FAILED;
          return;
        }
        throw err;
      }
    });
}
