import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { lineWriter, writeJson } from '../../cli/common.js';

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
