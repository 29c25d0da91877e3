// The signature policy at the DMZ, against a real docker-registry 2.8: a tag is mirrored only
// when a cosign signature of its digest (made with openssl, ECDSA P-256 or RSA, as cosign writes
// it) verifies with a configured key; unsigned, wrongly signed or signed-for-another-digest tags
// fail with their own codes, are not stored, and the other tags go on.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../config/index.js';
import { RegistryClient } from '../../registry/index.js';
import { Store } from '../../store/index.js';
import { runSync } from '../../sync/index.js';
import { makeCosignKey, pushCosignSignature, type CosignKey } from '../helpers/cosign.js';
import { OciLayoutBuilder, pushLayout, type Image } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';
import { runFerry } from '../helpers/ferry-cli.js';

const execFileP = promisify(execFile);
const logger = pino({ level: 'silent' });

describe('verify: {keys}: only signed tags are mirrored', () => {
  let dir: string;
  let reg: RunningRegistry;
  let client: RegistryClient;
  let layout: OciLayoutBuilder;
  let trusted: CosignKey;
  let stranger: CosignKey;
  let rsa: CosignKey;
  const images = new Map<string, Image>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sync-policy-'));
    reg = await startRegistry();
    client = new RegistryClient({ host: reg.host, tls: 'plain-http' });
    layout = await OciLayoutBuilder.create();
    for (const t of ['signed', 'unsigned', 'stranger', 'elsewhere', 'rsa']) {
      const img = await layout.addImage({ layers: [await layout.addLayer({ size: 1500, seed: `policy-${t}` })] });
      images.set(t, img);
      await layout.tag(t, img);
      await pushLayout(layout.dir, t, `${reg.host}/team/app:${t}`);
    }
    [trusted, stranger] = await Promise.all([makeCosignKey(), makeCosignKey()]);
    // An RSA key pair, as `cosign generate-key-pair` can import: PKCS#1 v1.5 over SHA-256.
    const rsaDir = mkdtempSync(join(tmpdir(), 'ferry-rsa-'));
    await execFileP('openssl', ['genrsa', '-out', join(rsaDir, 'rsa.key'), '2048']);
    await execFileP('openssl', ['rsa', '-in', join(rsaDir, 'rsa.key'), '-pubout', '-out', join(rsaDir, 'rsa.pub')]);
    rsa = { dir: rsaDir, privatePem: join(rsaDir, 'rsa.key'), publicPem: join(rsaDir, 'rsa.pub'), remove: async () => rmSync(rsaDir, { recursive: true, force: true }) };
    const ref = `${reg.host}/team/app`;
    await pushCosignSignature(client, 'team/app', images.get('signed')!.digest, trusted, ref);
    await pushCosignSignature(client, 'team/app', images.get('stranger')!.digest, stranger, ref);
    await pushCosignSignature(client, 'team/app', images.get('rsa')!.digest, rsa, ref);
    // A good signature, by the trusted key, of another digest, under this digest's tag.
    const other = await pushCosignSignature(client, 'team/app', images.get('signed')!.digest, trusted, ref);
    await client.manifestPut('team/app', `sha256-${images.get('elsewhere')!.digest.slice(7)}.sig`, other.bytes, other.mediaType);
  });

  afterAll(async () => {
    await client?.close();
    await Promise.all([trusted?.remove(), stranger?.remove(), rsa?.remove()]);
    await layout?.remove();
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function config(name: string, keys: string[]): { cfg: Config; file: string } {
    const file = join(dir, `${name}.yaml`);
    const text =
      `version: 1\nstore: ./${name}-store\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\n` +
      `images:\n  - name: app\n    source: ${reg.host}/team/app\n    verify:\n      keys: [${keys.join(', ')}]\n`;
    writeFileSync(file, text);
    return { cfg: parseConfig(text, file), file };
  }

  it('stores the tags whose signature verifies; the others fail with SIGNATURE_MISSING or SIGNATURE_INVALID', async () => {
    const { cfg } = config('policy', [trusted.publicPem, rsa.publicPem]);
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(s.ok).toBe(false);
      const codes = Object.fromEntries(s.failures.map((f) => [f.tag, f.code]));
      expect(codes).toEqual({ unsigned: 'SIGNATURE_MISSING', stranger: 'SIGNATURE_INVALID', elsewhere: 'SIGNATURE_INVALID' });
      expect(s.failures.find((f) => f.tag === 'elsewhere')!.message).toContain(`signs ${images.get('signed')!.digest}`);
      expect(store.tags.list().map((t) => t.tag).sort()).toEqual(['rsa', 'signed']);
      for (const t of ['unsigned', 'stranger', 'elsewhere']) expect(store.content.hasManifest(images.get(t)!.digest)).toBe(false);
      // The signature travels with the image it admitted.
      expect(store.attachments.of(images.get('signed')!.digest)).toHaveLength(1);
    } finally {
      store.close();
    }
  });

  it('the CLI exits 1 and names each refused tag with its code; a key that is not a public key is KEY_INVALID', async () => {
    const { file } = config('cli', [trusted.publicPem]);
    const r = await runFerry(['sync', '-c', file], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('app:unsigned');
    expect(r.stderr).toMatch(/has no cosign signature/);
    writeFileSync(join(dir, 'bad.pub'), 'not a key\n');
    const { cfg } = config('badkey', [join(dir, 'bad.pub')]);
    const store = Store.open(cfg.store);
    try {
      const s = await runSync({ config: cfg, store, logger });
      expect(new Set(s.failures.map((f) => f.code))).toEqual(new Set(['KEY_INVALID']));
      expect(store.tags.list()).toEqual([]);
    } finally {
      store.close();
    }
  });
});
