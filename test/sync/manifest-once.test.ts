// One manifest GET per distinct digest per pass: many tags naming a few manifests (and an index
// whose children they share) against a real docker-registry, requests counted from its access log.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../config/index.js';
import { runSync } from '../../sync/index.js';
import { Store } from '../../store/index.js';
import { OciLayoutBuilder, pushLayout, type Image, type Index } from '../helpers/images.js';
import { startRegistry, type LoggedRequest, type RunningRegistry } from '../helpers/registry-server.js';

const logger = pino({ level: 'silent' });
const REPO = 'team/many';

const manifestGets = (reqs: LoggedRequest[]): string[] =>
  reqs.filter((r) => r.method === 'GET' && r.path.includes('/manifests/')).map((r) => r.path.replace(/^.*\/manifests\//, ''));
const manifestHeads = (reqs: LoggedRequest[]): number => reqs.filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/') && r.status === 200).length;

describe('sync reads each manifest once per pass', () => {
  let dir: string;
  let reg: RunningRegistry;
  let layout: OciLayoutBuilder;
  let a: Image;
  let b: Image;
  let idx: Index;
  let cfg: Config;

  /** Tags `tag` to a manifest already in the repository (a PUT of its exact bytes). */
  async function tagAs(tag: string, m: Image | Index): Promise<void> {
    const r = await fetch(`http://${reg.host}/v2/${REPO}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': m.mediaType }, body: m.bytes });
    expect(r.status, `PUT ${tag}`).toBe(201);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-manifest-once-'));
    reg = await startRegistry({ auth: 'none' });
    layout = await OciLayoutBuilder.create();
    const base = await layout.addLayer({ size: 4000, seed: 'base' });
    a = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'a' })], labels: { img: 'a' } });
    b = await layout.addImage({ layers: [base, await layout.addLayer({ size: 3000, seed: 'b' })], labels: { img: 'b' } });
    const amd = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'amd' })], platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await layout.addImage({ layers: [base, await layout.addLayer({ size: 2000, seed: 'arm' })], platform: { os: 'linux', architecture: 'arm64' } });
    idx = await layout.addIndex([amd, arm]);
    await layout.tag('a', a);
    await layout.tag('b', b);
    await layout.tag('idx', idx);
    for (const t of ['a', 'b', 'idx']) await pushLayout(layout.dir, t, `${reg.host}/${REPO}:${t}-0`);
    for (let i = 1; i < 6; i++) {
      await tagAs(`a-${i}`, a);
      await tagAs(`b-${i}`, b);
      await tagAs(`idx-${i}`, idx);
    }
    const file = join(dir, 'ferry.yaml');
    const text = `version: 1\nstore: ./store\nconcurrency: 8\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\nimages:\n  - name: many\n    source: ${reg.host}/${REPO}\n`;
    writeFileSync(file, text);
    cfg = parseConfig(text, file);
  });

  afterAll(async () => {
    await reg?.stop();
    await layout?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('18 tags over 3 roots and 2 index children: 5 manifest GETs, one HEAD per tag; a new tag naming a stored manifest costs its HEAD only', async () => {
    const store = Store.open(join(dir, 'store'));
    try {
      reg.clearRequests();
      const s = await runSync({ config: cfg, store, logger });
      expect(s.ok, JSON.stringify(s.failures)).toBe(true);
      expect(s.tags).toEqual({ checked: 18, changed: 18, unchanged: 0, failed: 0 });
      await reg.flushLog();
      const gets = manifestGets(reg.requests());
      const distinct = [a.digest, b.digest, idx.digest, ...idx.manifests.map((m) => m.digest)];
      expect([...gets].sort()).toEqual([...distinct].sort());
      expect(s.manifestsFetched).toBe(5);
      expect(manifestHeads(reg.requests())).toBe(18);
      for (let i = 0; i < 6; i++) {
        for (const [t, m] of [['a', a], ['b', b], ['idx', idx]] as const) expect(store.tags.get({ source: 'many', registry: reg.host, repository: REPO, tag: `${t}-${i}` })?.digest).toBe(m.digest);
      }

      await tagAs('a-new', a);
      await tagAs('idx-new', idx);
      reg.clearRequests();
      const again = await runSync({ config: cfg, store, logger });
      expect(again.ok, JSON.stringify(again.failures)).toBe(true);
      expect(again.tags).toEqual({ checked: 20, changed: 2, unchanged: 18, failed: 0 });
      expect(again.manifestsFetched).toBe(0);
      await reg.flushLog();
      expect(manifestGets(reg.requests())).toEqual([]);
      expect(manifestHeads(reg.requests())).toBe(20);
      expect(store.tags.get({ source: 'many', registry: reg.host, repository: REPO, tag: 'idx-new' })?.digest).toBe(idx.digest);
    } finally {
      store.close();
    }
  });
});
