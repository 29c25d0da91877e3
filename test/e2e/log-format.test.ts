// `--log-format` through the built CLI: JSON lines for machines (the default off a terminal),
// text for a person, chosen before or after the command name.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertBuilt, runFerry } from '../helpers/ferry-cli.js';

let dir: string;

beforeAll(() => assertBuilt());
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-log-format-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('--log-format', () => {
  function emptyConfig(): string {
    const f = join(dir, 'ferry.yaml');
    writeFileSync(f, `version: 1\nstore: ${JSON.stringify(join(dir, 'store'))}\n`);
    return f;
  }

  it('logs JSON lines when stderr is not a terminal, by default and with json', async () => {
    const cfg = emptyConfig();
    for (const args of [['sync', '-c', cfg], ['--log-format', 'json', 'sync', '-c', cfg]]) {
      const r = await runFerry(args);
      expect(r.code).toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect(() => JSON.parse(l) as unknown).not.toThrow();
      expect(lines.some((l) => (JSON.parse(l) as { msg?: string }).msg?.startsWith('images: 0 checked'))).toBe(true);
    }
  });

  it('text: human-readable lines and the summary as a plain line, before or after the command name', async () => {
    const cfg = emptyConfig();
    for (const args of [['--log-format', 'text', 'sync', '-c', cfg], ['sync', '-c', cfg, '--log-format', 'text']]) {
      const r = await runFerry(args);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^images: 0 checked, 0 changed/m);
      expect(r.stderr).not.toMatch(/^\{/m);
    }
  });

  it('an unknown format is a usage error (exit 2)', async () => {
    const r = await runFerry(['--log-format', 'yaml', 'sync', '-c', emptyConfig()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("argument 'yaml' is invalid. Allowed choices are json, text");
  });
});
