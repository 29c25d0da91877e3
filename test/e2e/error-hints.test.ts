// Errors a newcomer meets name the fix, through the built CLI against real servers: an https
// registry whose certificate a private CA signed (caFile: / --ca-file, tls: insecure), a
// docker-registry that wants credentials (whether any were sent, and from where: the
// configuration, Docker's config.json, a credential helper; never what they are), and a checksum
// database out of reach (a mirror after the key, or sumdb: off and what that gives up).
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFixture, makeKeys, writeFixture } from '../bundle/fixtures.js';
import { assertBuilt, runFerry, type FerryRun } from '../helpers/ferry-cli.js';
import { buildProxyTree } from '../helpers/goproxy-tree.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry-server.js';

const run = promisify(execFile);
let dir: string;

beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'ferry-hints-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The failures of `ferry sync --json` (exit 1 expected). */
function failures(r: FerryRun): Array<{ source: string; code: string; message: string }> {
  expect(r.code, r.stderr).toBe(1);
  return (JSON.parse(r.stdout) as { failures: Array<{ source: string; code: string; message: string }> }).failures;
}

function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('a certificate signed by a private CA', () => {
  let server: Server;
  let host: string;
  let caFile: string;

  beforeAll(async () => {
    const d = join(dir, 'tls');
    mkdirSync(d);
    caFile = join(d, 'ca.pem');
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await run('openssl', ['req', '-x509', ...ec, '-keyout', join(d, 'ca.key'), '-out', caFile, '-days', '2', '-subj', '/CN=Ferry Test Private CA']);
    await run('openssl', ['req', ...ec, '-keyout', join(d, 'leaf.key'), '-out', join(d, 'leaf.csr'), '-subj', '/CN=127.0.0.1']);
    write('tls/ext.cnf', 'subjectAltName=IP:127.0.0.1\n');
    await run('openssl', [
      'x509', '-req', '-in', join(d, 'leaf.csr'), '-CA', caFile, '-CAkey', join(d, 'ca.key'), '-CAcreateserial',
      '-out', join(d, 'leaf.pem'), '-days', '2', '-extfile', join(d, 'ext.cnf'),
    ]);
    // Enough of a registry to show that the advice works: /v2/ and an empty tag list.
    server = createHttpsServer({ key: readFileSync(join(d, 'leaf.key')), cert: readFileSync(join(d, 'leaf.pem')) }, (req, res) => {
      const body = req.url === '/v2/' ? '{}' : req.url?.startsWith('/v2/lab/app/tags/list') ? '{"name":"lab/app","tags":[]}' : undefined;
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
      res.end(body ?? '{"errors":[{"code":"NAME_UNKNOWN"}]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sync names the registry, caFile: in its registries entry and tls: insecure; with caFile: it works', async () => {
    const cfg = write('tls.yaml', `version: 1\nstore: ./tls-store\nimages:\n  - source: ${host}/lab/app\n`);
    const [f] = failures(await runFerry(['sync', '-c', cfg, '--json']));
    expect(f?.code).toBe('TLS');
    expect(f?.message).toContain(`the certificate of ${host} is not signed by a CA this host trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    expect(f?.message).toContain(`if a private CA signed it, set caFile: in a registries entry for ${host} in ${cfg} to that CA's PEM certificate`);
    expect(f?.message).toContain(`tls: insecure in a registries entry for ${host} in ${cfg} skips verification altogether`);

    // Doing what it says is enough.
    const fixed = write('tls-fixed.yaml', `version: 1\nstore: ./tls-store\nregistries:\n  - host: ${host}\n    caFile: ${caFile}\nimages:\n  - source: ${host}/lab/app\n`);
    const ok = await runFerry(['sync', '-c', fixed, '--json']);
    expect(ok.stderr).not.toContain('TLS');
    expect(ok.code).toBe(0);
  });

  it('import names --ca-file and --insecure', async () => {
    const b = join(dir, 'bundle');
    mkdirSync(b);
    const keys = await makeKeys(b);
    const fx = await makeFixture(b);
    const out = join(b, 'out');
    mkdirSync(out);
    await writeFixture(out, fx, keys.privateKey);
    const r = await runFerry(['import', join(out, 'ferry-20240101-0001.tar'), '--trust', keys.pubPath, '--registry', host, '--ledger', join(b, 'ledger.db')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the certificate of ${host} is not signed by a CA this host trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    expect(r.stderr).toContain("if a private CA signed it, pass --ca-file with that CA's PEM certificate");
    expect(r.stderr).toContain('--insecure skips verification altogether');
  });

  it('a registry that speaks plain HTTP is told apart: tls: plain-http', async () => {
    const plain = createHttpServer((_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const h = `127.0.0.1:${(plain.address() as AddressInfo).port}`;
    try {
      const cfg = write('plain.yaml', `version: 1\nstore: ./plain-store\nregistries:\n  - host: ${h}\nimages:\n  - source: ${h}/lab/app\n`);
      const [f] = failures(await runFerry(['sync', '-c', cfg, '--json']));
      expect(f?.code).toBe('TLS');
      expect(f?.message).toContain(`${h} did not answer in TLS (ERR_SSL_WRONG_VERSION_NUMBER): if it speaks plain HTTP, set tls: plain-http in the registries entry for ${h} in ${cfg}`);
    } finally {
      plain.closeAllConnections();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});

describe('a registry that wants credentials', () => {
  let basic: RunningRegistry;
  let token: RunningRegistry;
  let bin: string;
  const WRONG = 'not-the-password-4711';

  beforeAll(async () => {
    [basic, token] = await Promise.all([startRegistry({ auth: 'htpasswd' }), startRegistry({ auth: 'token' })]);
    bin = join(dir, 'bin');
    mkdirSync(bin);
    // A Docker credential helper that answers with the wrong password.
    writeFileSync(join(bin, 'docker-credential-ferryhint'), `#!/bin/sh\ncat >/dev/null\necho '{"Username":"ferry","Secret":"${WRONG}"}'\n`);
    chmodSync(join(bin, 'docker-credential-ferryhint'), 0o755);
  });
  afterAll(async () => {
    await Promise.all([basic?.stop(), token?.stop()]);
  });

  /** DOCKER_CONFIG holding `config` (none when undefined), PATH with the test helper. */
  function dockerEnv(name: string, config?: unknown): Record<string, string> {
    const d = join(dir, 'docker', name);
    mkdirSync(d, { recursive: true });
    if (config !== undefined) writeFileSync(join(d, 'config.json'), JSON.stringify(config));
    return { DOCKER_CONFIG: d, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, WRONG_PASS: WRONG };
  }

  function config(name: string, host: string, extra = ''): string {
    return write(`${name}.yaml`, `version: 1\nstore: ./${name}-store\nregistries:\n  - host: ${host}\n    tls: plain-http\n${extra}images:\n  - source: ${host}/lab/app\n`);
  }

  it('none sent: says where Ferry looked and how to set them', async () => {
    const cfg = config('anon', basic.host);
    const env = dockerEnv('anon');
    const [f] = failures(await runFerry(['sync', '-c', cfg, '--json'], { env }));
    expect(f?.code).toBe('UNAUTHORIZED');
    expect(f?.message).toContain(
      `no credentials were sent: none are set in the registries entry for ${basic.host} in ${cfg} (username: and password:), ` +
        `and ${join(env.DOCKER_CONFIG!, 'config.json')} holds none for ${basic.host} (docker login ${basic.host} stores them there)`,
    );
  });

  it('from the configuration, from "auths" and from a credential helper: each named, the password never', async () => {
    const fromConfig = config('cfgcreds', basic.host, '    username: ferry\n    password: env:WRONG_PASS\n');
    const auths = { auths: { [basic.host]: { auth: Buffer.from(`ferry:${WRONG}`).toString('base64') } } };
    const cases: Array<[string, string, Record<string, string>]> = [
      [fromConfig, `credentials from the registries entry for ${basic.host} in ${fromConfig} were sent and rejected`, dockerEnv('cfg')],
      [config('auths', basic.host), `credentials from "auths" in ${join(dir, 'docker', 'auths', 'config.json')} were sent and rejected`, dockerEnv('auths', auths)],
      [
        config('helper', basic.host),
        `credentials from the credential helper docker-credential-ferryhint (credHelpers in ${join(dir, 'docker', 'helper', 'config.json')}) were sent and rejected`,
        dockerEnv('helper', { credHelpers: { [basic.host]: 'ferryhint' } }),
      ],
    ];
    for (const [cfg, said, env] of cases) {
      const r = await runFerry(['sync', '-c', cfg, '--json'], { env });
      const [f] = failures(r);
      expect(f?.code).toBe('UNAUTHORIZED');
      expect(f?.message).toContain(said);
      expect(r.stdout + r.stderr).not.toContain(WRONG);
      expect(r.stdout + r.stderr).not.toContain(Buffer.from(`ferry:${WRONG}`).toString('base64'));
    }
  });

  it('a token server that refuses them says the same for the token request', async () => {
    const env = dockerEnv('token', { auths: { [token.host]: { auth: Buffer.from(`ferry:${WRONG}`).toString('base64') } } });
    const r = await runFerry(['sync', '-c', config('token', token.host), '--json'], { env });
    const [f] = failures(r);
    expect(f?.code).toBe('UNAUTHORIZED');
    expect(f?.message).toContain(`(token request: credentials from "auths" in ${join(dir, 'docker', 'token', 'config.json')} were sent and rejected)`);
    expect(r.stdout + r.stderr).not.toContain(WRONG);
  });

  it('403 after credentials were accepted: says whose they were and that the account may lack access', async () => {
    // Registries such as Harbor answer a robot without pull permission with 403; docker-registry
    // never does, so a small server plays that part.
    const srv = createHttpServer((req, res) => {
      if (!req.headers.authorization) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="harbor"', 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}');
        return;
      }
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}');
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const h = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const cfg = config('denied', h, '    username: robot\n    password: env:WRONG_PASS\n');
      const [f] = failures(await runFerry(['sync', '-c', cfg, '--json'], { env: dockerEnv('denied') }));
      expect(f?.code).toBe('DENIED');
      expect(f?.message).toContain(
        `HTTP 403: DENIED: requested access to the resource is denied (credentials from the registries entry for ${h} in ${cfg} were sent, but the account they belong to may not pull from this repository)`,
      );
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});

describe('a checksum database out of reach', () => {
  it('sync says how to name a mirror after the key, or what sumdb: off gives up', async () => {
    const proxy = join(dir, 'goproxy');
    await buildProxyTree(proxy, [{ path: 'example.com/greet', version: 'v1.0.0' }]);
    // sum.golang.org's own key, at a closed loopback port: 1 is privileged and nothing here
    // listens on it (a port found free and released could be taken meanwhile).
    const key = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';
    const port = 1;
    const cfg = write(
      'sumdb.yaml',
      `version: 1\nstore: ./sumdb-store\ngoModules:\n  proxy: file://${proxy}\n  sumdb: "${key} http://127.0.0.1:${port}"\n` +
        `  modules:\n    - path: example.com/greet\n      versions: [v1.0.0]\n`,
    );
    const [f] = failures(await runFerry(['sync', '-c', cfg, '--json']));
    expect(f?.code).toBe('NETWORK');
    expect(f?.message).toContain('ECONNREFUSED');
    expect(f?.message).toContain('the checksum database sum.golang.org cannot be reached from this host');
    expect(f?.message).toContain(`goModules.sumdb: "${key} https://mirror.example/sumdb/sum.golang.org"`);
    expect(f?.message).toContain('Or set goModules.sumdb: off, which gives up checking every module version against the database');
  });
});
