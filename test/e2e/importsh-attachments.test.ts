// import.sh carries attachments as ferry import does, on real parts: a signed (cosign format, made
// with openssl), SBOM-carrying, multi-platform image synced and exported by the built CLI from one
// docker-registry 2.8; import.sh (this source's, run with dash) into another docker-registry 2.8
// (no referrers API, so the fallback tag) and ferry import into a third. The signatures are found
// under their digest tags and verified with openssl; the SBOM is listed under the fallback tag, in
// the same bytes ferry import writes; a second import keeps another client's entry there; an
// existing fallback index import.sh cannot merge is refused, not overwritten, and no tag moves.
// ferry import --oci-dir names the digest tags in index.json, so skopeo copies a signature out.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMPORT_SCRIPT, writeKeyPair } from '../../bundle/index.js';
import { fallbackTag, MediaType, parseReferrersIndex, type Digest } from '../../oci/index.js';
import { RegistryClient } from '../../registry/index.js';
import { pushFallbackIndex, pushSbomReferrer, pushSignedImage, signatureAt, SPDX, type CosignKey, type PushedAttachment, type PushedSignature } from '../helpers/cosign.js';
import { assertBuilt, collectRun, runFerry, type FerryRun } from '../helpers/ferry-cli.js';
import { type TestImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const execFileP = promisify(execFile);

describe('import.sh pushes signatures, SBOMs and referrers', () => {
  let dir: string;
  let up: RunningRegistry;
  let bySh: RunningRegistry;
  let byFerry: RunningRegistry;
  let odd: RunningRegistry;
  const clients: RegistryClient[] = [];
  let img: TestImage;
  let key: CosignKey;
  let pub: string;
  let script: string;
  let tar: string;
  let indexSig: PushedSignature;
  let amdSig: PushedSignature;
  let sbom: PushedAttachment;

  const client = (r: RunningRegistry): RegistryClient => {
    const c = new RegistryClient({ host: r.host, tls: 'plain-http' });
    clients.push(c);
    return c;
  };

  function importSh(registry: RunningRegistry): Promise<FerryRun> {
    return collectRun(spawn('dash', [script, '--trust', pub, '--registry', registry.host, '--plain-http', tar], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ferry-importsh-attachments-'));
    [up, bySh, byFerry, odd] = await Promise.all([startRegistry(), startRegistry(), startRegistry(), startRegistry()]);
    ({ img, key, indexSig, amdSig, sbom } = await pushSignedImage(client(up), up.host, 'importsh-signed'));

    const k = await writeKeyPair(join(dir, 'ferry'));
    pub = k.publicKeyPath;
    script = join(dir, 'import.sh');
    writeFileSync(script, IMPORT_SCRIPT);
    const cfg = join(dir, 'ferry.yaml');
    writeFileSync(
      cfg,
      `version: 1\nstore: ${join(dir, 'store')}\nregistries:\n  - host: ${up.host}\n    tls: plain-http\n` +
        `images:\n  - source: ${up.host}/team/app\n    target: mirror/app\nexport:\n  signingKey: ${k.privateKeyPath}\n  out: ${join(dir, 'out')}\n`,
    );
    for (const args of [['sync', '-c', cfg], ['export', '-c', cfg]]) {
      const r = await runFerry(args, { cwd: dir });
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
    }
    tar = join(dir, 'out', readdirSync(join(dir, 'out')).find((f) => f.endsWith('.tar'))!);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await key?.remove();
    await img?.layout.remove();
    await Promise.all([up?.stop(), bySh?.stop(), byFerry?.stop(), odd?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The signature a registry holds under a cosign digest tag, verified with openssl against what it signs. */
  async function verifyAt(c: RegistryClient, repo: string, subject: string): Promise<void> {
    expect(await signatureAt(c, repo, subject as Digest, key.publicPem)).toEqual({ names: subject, verified: true });
  }

  it('pushes digest tags and the fallback index as ferry import does; the signatures verify inside with openssl', async () => {
    const sh = await importSh(bySh);
    expect(sh.code, sh.stderr).toBe(0);
    expect(sh.stdout).toMatch(/attachments: 2 digest tag\(s\) pushed; 1 fallback tag index\(es\) written/);
    const imp = await runFerry(['import', tar, '--trust', pub, '--registry', byFerry.host, '--plain-http', '--ledger', join(dir, 'ledger.db')], { cwd: dir });
    expect(imp.code, imp.stderr).toBe(0);

    const shClient = client(bySh);
    const ferryClient = client(byFerry);
    const amd = img.images[0]!.digest;
    expect((await shClient.manifestHead('mirror/app', 'v1'))?.digest).toBe(img.top.digest);
    await verifyAt(shClient, 'mirror/app', img.top.digest);
    await verifyAt(shClient, 'mirror/app', amd);
    expect((await shClient.manifestHead('mirror/app', `${fallbackTag(img.top.digest)}.sig`))?.digest).toBe(indexSig.digest);
    expect((await shClient.manifestHead('mirror/app', `${fallbackTag(amd)}.sig`))?.digest).toBe(amdSig.digest);
    const fb = await shClient.manifestGet('mirror/app', fallbackTag(amd));
    expect(parseReferrersIndex(fb.bytes, 'fallback').map((d) => [d.digest, d.artifactType])).toEqual([[sbom.digest, SPDX]]);
    expect((await shClient.manifestGet('mirror/app', sbom.digest)).bytes.equals(sbom.bytes)).toBe(true);
    // The same bytes under every tag as ferry import pushed.
    for (const tag of ['v1', `${fallbackTag(img.top.digest)}.sig`, `${fallbackTag(amd)}.sig`, fallbackTag(amd)]) {
      expect((await shClient.manifestGet('mirror/app', tag)).bytes.equals((await ferryClient.manifestGet('mirror/app', tag)).bytes), tag).toBe(true);
    }

    // Run again: nothing to add, the digest tags and the index stay as they are.
    const again = await importSh(bySh);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/attachments: 0 digest tag\(s\) pushed; 0 fallback tag index\(es\) written/);
    expect((await shClient.manifestGet('mirror/app', fallbackTag(amd))).bytes.equals(fb.bytes)).toBe(true);
  });

  it('merges into a fallback index another client wrote, keeping its entry', async () => {
    const c = client(bySh);
    const amd = img.images[0]!;
    const theirs = await pushSbomReferrer(c, 'mirror/app', amd, { spdxVersion: 'SPDX-2.3', name: 'theirs' });
    await pushFallbackIndex(c, 'mirror/app', amd.digest, [{ ...theirs, artifactType: SPDX }]);
    const sh = await importSh(bySh);
    expect(sh.code, sh.stderr).toBe(0);
    const listed = parseReferrersIndex((await c.manifestGet('mirror/app', fallbackTag(amd.digest))).bytes, 'fallback');
    expect(listed.map((d) => d.digest).sort()).toEqual([sbom.digest, theirs.digest].sort());
  });

  it('refuses to overwrite a fallback index it cannot merge, and moves no tag', async () => {
    const c = client(odd);
    const amd = img.images[0]!;
    const theirs = await pushSbomReferrer(c, 'mirror/app', amd, { spdxVersion: 'SPDX-2.3', name: 'pretty' });
    // Pretty-printed, as some clients write it: import.sh does not parse JSON, so it leaves it alone.
    const pretty = Buffer.from(`${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ mediaType: theirs.mediaType, digest: theirs.digest, size: theirs.bytes.length, artifactType: SPDX }] }, null, 2)}\n`);
    await c.manifestPut('mirror/app', fallbackTag(amd.digest), pretty, MediaType.OciIndex);
    const sh = await importSh(odd);
    expect(sh.code).toBe(1);
    expect(sh.stderr).toMatch(new RegExp(`mirror/app:${fallbackTag(amd.digest)} .*refusing to overwrite it and drop its entries, nothing was tagged`));
    expect((await c.manifestGet('mirror/app', fallbackTag(amd.digest))).bytes.equals(pretty)).toBe(true);
    expect(await c.manifestHead('mirror/app', 'v1')).toBeUndefined();
  });

  it('ferry import --oci-dir names the digest tags: skopeo copies the signature out, and it verifies with openssl', async () => {
    const oci = join(dir, 'layout');
    const imp = await runFerry(['import', tar, '--trust', pub, '--oci-dir', oci, '--ledger', join(dir, 'ledger-oci.db')], { cwd: dir });
    expect(imp.code, imp.stderr).toBe(0);
    const amd = img.images[0]!.digest;
    for (const [subject, sig] of [[img.top.digest, indexSig], [amd, amdSig]] as const) {
      const name = `${up.host}/team/app:${fallbackTag(subject)}.sig`;
      const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci:${oci}:${name}`], { encoding: 'buffer', maxBuffer: 1 << 24 });
      expect(Buffer.from(stdout).equals(sig.bytes), name).toBe(true);
      await execFileP('skopeo', ['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${oci}:${name}`, `docker://${byFerry.host}/copied/app:${fallbackTag(subject)}.sig`]);
      await verifyAt(client(byFerry), 'copied/app', subject);
    }
  });
});
