import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { lineWriter, writeJson } from '../../cli/common.js';
import { TagReportList } from '../../importer/import-target.js';

/** A sink that takes writes in small pieces and says "wait" on every other one, as a slow pipe does. */
function slowSink(): { sink: Writable; text: () => string; writes: () => number } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      setImmediate(cb);
    },
  });
  return { sink, text: () => Buffer.concat(chunks).toString('utf8'), writes: () => chunks.length };
}

describe('writeJson', () => {
  it('writes what JSON.stringify(v, null, 2) writes, in pieces, waiting for the sink to drain', async () => {
    const tags = Array.from({ length: 20_000 }, (_, i) => ({
      repository: 'bench/scale',
      tag: `t${String(i).padStart(5, '0')}`,
      digest: `sha256:${String(i % 50).padStart(64, '0')}`,
      upstreamDigest: `sha256:${String(i % 50).padStart(64, '0')}`,
      ...(i % 7 === 0 ? { filteredFrom: 'sha256:f' } : {}),
      ...(i % 11 === 0 ? { skipped: true } : {}),
    }));
    const result = {
      ok: true,
      dryRun: false,
      bundles: [{ id: 'b1', name: 'n "quoted"\nline', signer: null, targets: [{ target: 'registry:x', tags, blobs: { uploaded: 1 }, foreignLayers: [], pruned: undefined }], plan: undefined, alreadyAt: [] }],
      clientConfig: { env: {}, notes: ['a\tb', 'é ✓'], registriesConf: '[[registry]]\nprefix = "x"\n' },
      warnings: [],
      when: new Date(0),
      skipped: [undefined, () => 1, null, 0, -0, 1e21, Number.NaN],
      ledger: '/tmp/ledger.db',
    };
    const { sink, text, writes } = slowSink();
    await writeJson(result, sink);
    expect(text()).toBe(`${JSON.stringify(result, null, 2)}\n`);
    // Streamed: many writes, none holding the whole document.
    expect(writes()).toBeGreaterThan(10);
    const parsed = JSON.parse(text()) as { bundles: Array<{ targets: Array<{ tags: Array<{ tag: string }> }> }> };
    expect(parsed.bundles[0]!.targets[0]!.tags.map((t) => t.tag)).toEqual(tags.map((t) => t.tag));
  });

  it('walks a list that writes itself as its elements (the import tag report) as JSON.stringify writes it', async () => {
    const names = Array.from({ length: 5_000 }, (_, i) => ({ tag: `t${i}` }));
    const list = new TagReportList(names);
    const plain = TagReportList.image('bench/scale', 'sha256:a', 'sha256:a');
    const filtered = TagReportList.image('bench/scale', 'sha256:f', 'sha256:u');
    for (let i = 0; i < names.length; i++) list.add(i, i % 7 === 0 ? filtered : plain, i % 11 === 0);
    const doc = { targets: [{ tags: list, empty: new TagReportList(names), bytes: Buffer.from('ab') }] };
    const { sink, text } = slowSink();
    await writeJson(doc, sink);
    expect(text()).toBe(`${JSON.stringify(doc, null, 2)}\n`);
    const parsed = JSON.parse(text()) as { targets: Array<{ tags: Array<Record<string, unknown>> }> };
    expect(parsed.targets[0]!.tags[7]).toEqual({ repository: 'bench/scale', tag: 't7', digest: 'sha256:f', upstreamDigest: 'sha256:u', filteredFrom: 'sha256:u' });
    expect(parsed.targets[0]!.tags[11]).toEqual({ repository: 'bench/scale', tag: 't11', digest: 'sha256:a', upstreamDigest: 'sha256:a', skipped: true });
  });

  it('writes leaves and empty containers as JSON.stringify does', async () => {
    for (const v of [null, 0, 'x', [], {}, [[]], [{}], { a: [] }, { a: { b: {} } }, { toJSON: () => ({ z: [1, { y: 2 }] }) }]) {
      const { sink, text } = slowSink();
      await writeJson(v, sink);
      expect(text()).toBe(`${JSON.stringify(v, null, 2)}\n`);
    }
  });
});

describe('lineWriter', () => {
  it('writes every line in order, in pieces', async () => {
    const { sink, text, writes } = slowSink();
    const w = lineWriter(sink);
    const lines = Array.from({ length: 30_000 }, (_, i) => `    bench/scale:t${i} → sha256:${i}`);
    for (const l of lines) await w.line(l);
    await w.end();
    expect(text()).toBe(`${lines.join('\n')}\n`);
    expect(writes()).toBeGreaterThan(5);
  });
});
