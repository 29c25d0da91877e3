// Done-when of issue 15, on real parts: a signed (cosign format, made with openssl), SBOM-carrying,
// multi-platform image synced by the built CLI from one docker-registry 2.8, exported, imported
// into another docker-registry 2.8 (no referrers API: the fallback tag), and the signature found
// there by its digest tag and verified with openssl; the SBOM found through the fallback index.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fallbackTag, parseReferrersIndex, type Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { pushFallbackIndex, pushSbomReferrer, pushSignedImage, signatureAt, SPDX, type CosignKey, type PushedAttachment, type PushedSignature } from '../helpers/cosign.js';
import { runFerry } from '../helpers/ferry-cli.js';
import { type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

describe('signatures cross the air gap', () => {
  let dir: string;
  let up: RunningRegistry;
  let intra: RunningRegistry;
  let upClient: RegistryClient;
  let intraClient: RegistryClient;
  let img: TestImage;
  let key: CosignKey;
  let indexSig: PushedSignature;
  let amdSig: PushedSignature;
  let sbom: PushedAttachment;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-signatures-'));
    [up, intra] = await Promise.all([startRegistry(), startRegistry()]);
    upClient = new RegistryClient({ host: up.host, tls: 'plain-http' });
    intraClient = new RegistryClient({ host: intra.host, tls: 'plain-http' });
    ({ img, key, indexSig, amdSig, sbom } = await pushSignedImage(upClient, up.host, 'signed'));
  });

  afterAll(async () => {
    await upClient?.close();
    await intraClient?.close();
    await key?.remove();
    await img?.layout.remove();
    await Promise.all([up?.stop(), intra?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The signature a registry holds under a cosign digest tag, verified with openssl against what it signs. */
  async function verifyAt(c: RegistryClient, repo: string, subject: string): Promise<void> {
    expect(await signatureAt(c, repo, subject as Digest, key.publicPem)).toEqual({ names: subject, verified: true });
  }

  it('sync, export, import: the signatures verify inside with openssl and the SBOM is listed under the fallback tag', async () => {
    // openssl judges the upstream signatures too: the test's signatures are what cosign writes.
    await verifyAt(upClient, 'team/app', img.top.digest);
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
        `images:\n  - source: ${up.host}/team/app\n    target: mirror/app\nexport:\n  signingKey: ${join(dir, 'ferry.key')}\n  out: ${join(dir, 'out')}\n`,
    );
    for (const args of [['keygen', '--out', join(dir, 'ferry')], ['sync', '-c', cfg], ['export', '-c', cfg]]) {
      const r = await runFerry(args, { cwd: dir });
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    const tar = readdirSync(join(dir, 'out')).find((f) => f.endsWith('.tar'))!;
    const verify = await runFerry(['verify', join(dir, 'out', tar), '--trust', join(dir, 'ferry.pub')], { cwd: dir });
    expect(verify.code, verify.stderr).toBe(0);
    const imp = await runFerry(['import', join(dir, 'out', tar), '--trust', join(dir, 'ferry.pub'), '--registry', intra.host, '--plain-http', '--ledger', join(dir, 'ledger.db')], { cwd: dir });
    expect(imp.code, imp.stderr).toBe(0);

    // The image kept its digest, so the signatures over it verify there.
    expect((await intraClient.manifestHead('mirror/app', 'v1'))?.digest).toBe(img.top.digest);
    await verifyAt(intraClient, 'mirror/app', img.top.digest);
    await verifyAt(intraClient, 'mirror/app', img.images[0]!.digest);
    expect((await intraClient.manifestHead('mirror/app', `${fallbackTag(img.top.digest)}.sig`))?.digest).toBe(indexSig.digest);
    expect((await intraClient.manifestHead('mirror/app', `${fallbackTag(img.images[0]!.digest)}.sig`))?.digest).toBe(amdSig.digest);
    // docker-registry 2.8 has no referrers API: Ferry wrote the fallback tag's index.
    const fb = await intraClient.manifestGet('mirror/app', fallbackTag(img.images[0]!.digest));
    const listed = parseReferrersIndex(fb.bytes, 'fallback');
    expect(listed.map((d) => [d.digest, d.artifactType])).toEqual([[sbom.digest, SPDX]]);
    expect((await intraClient.manifestGet('mirror/app', sbom.digest)).bytes.equals(sbom.bytes)).toBe(true);
  });

  it('a second import merges into the fallback index without dropping entries others wrote', async () => {
    // Another client lists its own referrer under the same fallback tag inside.
    const amd = img.images[0]!;
    const theirs = await pushSbomReferrer(intraClient, 'mirror/app', amd, { spdxVersion: 'SPDX-2.3', name: 'theirs' });
    await pushFallbackIndex(intraClient, 'mirror/app', amd.digest, [{ ...theirs, artifactType: SPDX }]);
    const imp = await runFerry(['import', join(dir, 'out', readdirSync(join(dir, 'out')).find((f) => f.endsWith('.tar'))!), '--trust', join(dir, 'ferry.pub'), '--registry', intra.host, '--plain-http', '--ledger', join(dir, 'ledger2.db')], { cwd: dir });
    expect(imp.code, imp.stderr).toBe(0);
    const fb = await intraClient.manifestGet('mirror/app', fallbackTag(amd.digest));
    expect(parseReferrersIndex(fb.bytes, 'fallback').map((d) => d.digest).sort()).toEqual([sbom.digest, theirs.digest].sort());
  });
});
