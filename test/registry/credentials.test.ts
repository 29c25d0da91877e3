// Docker's stored credentials: config.json and real credential helper scripts
// (`docker-credential-NAME get`, run as child processes) against a real docker-registry with
// htpasswd auth.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/index.js';
import { RegistryClients } from '../../sync/clients.js';
import { isFerryError } from '../../errors/index.js';
import { dockerConfigPath, dockerCredentials, planDockerCredentials } from '../../registry/index.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const USER = 'helper-user';
const PASS = 'helper pass: from the helper';

describe('Docker credentials and credential helpers', () => {
  let dir: string;
  let bin: string;
  let reg: RunningRegistry;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-creds-'));
    bin = join(dir, 'bin');
    mkdirSync(bin);
    reg = await startRegistry({ auth: 'htpasswd', users: { [USER]: PASS } });
    // Answers every server from the environment, and logs what it was asked for.
    helper(
      'ferrytest',
      `read -r server || true\nprintf '%s\\n' "$server" >> "$FERRY_HELPER_LOG"\nprintf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\\n' "$server" "$HELPER_USER" "$HELPER_PASS"\n`,
    );
    // Answers only once the test opens the gate: the lookup cannot end unless the event loop ran the test's callback.
    helper('gated', `read -r server || true\nwhile [ ! -e "$FERRY_GATE" ]; do sleep 0.01; done\nprintf '{"Username":"gated","Secret":"opened"}\\n'\n`);
    // Never answers in any time a test waits; writes its pid first (exec keeps it: the helper becomes the sleep).
    helper('stuck', 'echo $$ > "$FERRY_HELPER_PID.tmp" && mv "$FERRY_HELPER_PID.tmp" "$FERRY_HELPER_PID"\nexec sleep 600\n');
    // What docker-credential-helpers print when they hold nothing for a server.
    helper('empty', "echo 'credentials not found in native keychain'\nexit 1\n");
    helper('broken', "echo 'the keychain is locked' >&2\nexit 3\n");
  });

  afterAll(async () => {
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function helper(name: string, body: string): void {
    const file = join(bin, `docker-credential-${name}`);
    writeFileSync(file, `#!/bin/sh\n${body}`);
    chmodSync(file, 0o755);
  }

  /** An environment whose DOCKER_CONFIG holds `config` and whose PATH finds the test helpers. */
  function dockerEnv(name: string, config: unknown, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'config.json'), JSON.stringify(config));
    return {
      ...process.env,
      PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
      DOCKER_CONFIG: d,
      FERRY_HELPER_LOG: join(d, 'helper.log'),
      FERRY_HELPER_PID: join(d, 'helper.pid'),
      ...extra,
    };
  }

  /** The pid a stuck helper wrote, once it has written it. */
  async function helperPid(env: NodeJS.ProcessEnv): Promise<number> {
    const file = env['FERRY_HELPER_PID']!;
    while (!existsSync(file)) await new Promise((r) => setTimeout(r, 10));
    return Number(readFileSync(file, 'utf8').trim());
  }

  /** Resolves once `pid` no longer runs (gone, or a zombie its parent has yet to reap). */
  async function ended(pid: number): Promise<void> {
    for (;;) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        return;
      }
      if (/^\d+ \(.*\) [ZX]/.test(stat)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  function clients(env: NodeJS.ProcessEnv, helperTimeoutMs?: number): RegistryClients {
    const file = join(dir, 'ferry.yaml');
    const config = parseConfig(`version: 1\nregistries:\n  - host: ${reg.host}\n    tls: plain-http\n`, file);
    return new RegistryClients({ config, env, retry: { retries: 0 }, ...(helperTimeoutMs !== undefined ? { helperTimeoutMs } : {}) });
  }

  it('reads auths entries and finds config.json through DOCKER_CONFIG', async () => {
    const env = dockerEnv('auths', {
      auths: {
        '127.0.0.1:5001': { auth: Buffer.from('alice:pw:with:colons').toString('base64') },
        'https://index.docker.io/v1/': { auth: Buffer.from('bob:hub').toString('base64') },
      },
    });
    expect(dockerConfigPath(env)).toBe(join(dir, 'auths', 'config.json'));
    const origin = `"auths" in ${join(dir, 'auths', 'config.json')}`;
    expect(await dockerCredentials('127.0.0.1:5001', { env })).toEqual({ username: 'alice', password: 'pw:with:colons', origin });
    expect(await dockerCredentials('registry-1.docker.io', { env })).toEqual({ username: 'bob', password: 'hub', origin });
    expect(await dockerCredentials('ghcr.io', { env })).toBeUndefined();
    expect(await dockerCredentials('ghcr.io', { env: { ...env, DOCKER_CONFIG: join(dir, 'none') } })).toBeUndefined();
  });

  it('plans which helper to ask: credHelpers for the host over credsStore, server names in the order docker uses', () => {
    const cfg = { credsStore: 'desktop', credHelpers: { 'ghcr.io': 'gh' }, auths: { 'ghcr.io': { auth: Buffer.from('u:p').toString('base64') } } };
    expect(planDockerCredentials(cfg, 'ghcr.io')).toEqual({
      helper: { name: 'gh', servers: ['ghcr.io', 'https://ghcr.io'], via: 'credHelpers' },
      stored: { username: 'u', password: 'p' },
    });
    expect(planDockerCredentials(cfg, 'docker.io').helper).toEqual({ name: 'desktop', servers: ['https://index.docker.io/v1/', 'index.docker.io'], via: 'credsStore' });
    expect(planDockerCredentials({}, 'quay.io')).toEqual({});
  });

  it('a real helper script supplies the credentials that reach the registry (htpasswd)', async () => {
    const env = dockerEnv('helper', { credHelpers: { [reg.host]: 'ferrytest' } }, { HELPER_USER: USER, HELPER_PASS: PASS });
    expect(await dockerCredentials(reg.host, { env })).toEqual({
      username: USER,
      password: PASS,
      origin: `the credential helper docker-credential-ferrytest (credHelpers in ${join(dir, 'helper', 'config.json')})`,
    });
    const c = clients(env);
    try {
      await c.get(reg.host).ping();
    } finally {
      await c.close();
    }
    expect(readFileSync(join(dir, 'helper', 'helper.log'), 'utf8').split('\n')).toContain(reg.host);
    // Without the helper the same registry refuses: the credentials above came from it.
    const anon = clients(dockerEnv('no-helper', {}));
    try {
      await expect(anon.get(reg.host).ping()).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    } finally {
      await anon.close();
    }
  });

  it('the event loop runs while a helper works: a callback runs before the lookup ends', async () => {
    const gate = join(dir, 'gate');
    const env = dockerEnv('gated', { credHelpers: { [reg.host]: 'gated' } }, { FERRY_GATE: gate });
    const order: string[] = [];
    const lookup = dockerCredentials(reg.host, { env, timeoutMs: 120_000 }).then((c) => {
      order.push('lookup resolved');
      return c;
    });
    // Only this callback opens the gate: a lookup that blocked the loop could end only by timing out.
    setImmediate(() => {
      order.push('callback ran');
      writeFileSync(gate, '');
    });
    expect(await lookup).toMatchObject({ username: 'gated', password: 'opened' });
    expect(order).toEqual(['callback ran', 'lookup resolved']);
  });

  it('a helper that does not answer in time is stopped with an error naming the helper and the host', async () => {
    const env = dockerEnv('stuck', { credHelpers: { [reg.host]: 'stuck' } });
    const err = await dockerCredentials(reg.host, { env, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(isFerryError(err, 'TIMEOUT')).toBe(true);
    expect((err as Error).message).toContain('docker-credential-stuck');
    expect((err as Error).message).toContain(`credHelpers in ${join(dir, 'stuck', 'config.json')} for ${reg.host}`);
    expect((err as Error).message).toContain('did not answer within 0.2 s');
    // On a loaded machine the helper may be stopped before it wrote its pid; when it did, it is gone.
    if (existsSync(env['FERRY_HELPER_PID']!)) await ended(await helperPid(env));
    // Through the registry client: the request fails with the same explanation, not as anonymous.
    const c = clients(env, 200);
    try {
      const e2 = await c.get(reg.host).ping().catch((e: unknown) => e);
      expect(isFerryError(e2, 'SECRET_UNRESOLVED')).toBe(true);
      expect((e2 as Error).message).toMatch(new RegExp(`credentials for ${reg.host.replace(/\./g, '\\.')} could not be resolved: credential helper docker-credential-stuck`));
    } finally {
      await c.close();
    }
  });

  it('an abort stops a helper that is running', async () => {
    const env = dockerEnv('stuck-abort', { credHelpers: { [reg.host]: 'stuck' } });
    const ac = new AbortController();
    const lookup = dockerCredentials(reg.host, { env, signal: ac.signal, timeoutMs: 120_000 }).catch((e: unknown) => e);
    const pid = await helperPid(env);
    ac.abort();
    expect(await lookup).toMatchObject({ code: 'ABORTED', message: expect.stringContaining('docker-credential-stuck') });
    await ended(pid);
  });

  it('"credentials not found" falls back to auths; a failing or missing helper is an error naming it', async () => {
    const stored = { auths: { [reg.host]: { auth: Buffer.from('stored:pw').toString('base64') } } };
    expect(await dockerCredentials(reg.host, { env: dockerEnv('empty', { ...stored, credHelpers: { [reg.host]: 'empty' } }) })).toEqual({
      username: 'stored',
      password: 'pw',
      origin: `"auths" in ${join(dir, 'empty', 'config.json')}`,
    });
    expect(await dockerCredentials(reg.host, { env: dockerEnv('empty2', { credsStore: 'empty' }) })).toBeUndefined();
    const broken = await dockerCredentials(reg.host, { env: dockerEnv('broken', { credHelpers: { [reg.host]: 'broken' } }) }).catch((e: unknown) => e);
    expect(broken).toMatchObject({ code: 'SECRET_UNRESOLVED', message: expect.stringMatching(/docker-credential-broken .* failed for 127\.0\.0\.1:\d+ \(exit 3\): the keychain is locked/) });
    const missing = await dockerCredentials(reg.host, { env: dockerEnv('missing', { credsStore: 'nosuchhelper' }) }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'SECRET_UNRESOLVED', message: expect.stringContaining('docker-credential-nosuchhelper is not on PATH') });
    const evil = await dockerCredentials(reg.host, { env: dockerEnv('evil', { credsStore: '../../bin/sh' }) }).catch((e: unknown) => e);
    expect(evil).toMatchObject({ code: 'SECRET_UNRESOLVED', message: expect.stringContaining('credsStore is not a helper name') });
    expect(existsSync(join(dir, 'evil', 'helper.log'))).toBe(false);
  });
});
