// Benchmark helper: a local docker-registry (CNCF distribution) on 127.0.0.1 with filesystem
// storage under the bench dir, and a minimal OCI distribution push client over node:http.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent, createServer, request } from 'node:http';
import { join } from 'node:path';

/** The registry binary (Debian's docker-registry package, distribution 2.8). */
export const REGISTRY_BIN = '/usr/bin/docker-registry';

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = srv.address().port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * One HTTP request. `body` may be a Buffer, a string or an async iterable of Buffers (streamed
 * with chunked encoding). Resolves { status, headers, body: Buffer }.
 */
export function http(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    void (async () => {
      try {
        for await (const chunk of body) {
          // Respect backpressure: wait for drain when the socket buffer is full.
          if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      } catch (err) {
        req.destroy(err);
      }
    })();
  });
}

/**
 * Starts docker-registry serving `dir/data` on a free port; resolves { host, url, stop } once
 * /v2/ answers. The access log is off: the benchmark measures clients, not logging.
 */
export async function startRegistry(dir) {
  await mkdir(dir, { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config =
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n` +
      `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n` +
      `http:\n  addr: ${host}\n  secret: ferry-bench-secret\n`;
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, config);
    const log = createWriteStream(join(dir, 'registry.log'), { flags: 'a' });
    const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr = (stderr + d).slice(-8000);
      log.write(d);
    });
    let exited = false;
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.on('exit', () => {
      exited = true;
      process.removeListener('exit', reap);
    });
    let ready = false;
    for (let i = 0; i < 200 && !exited; i++) {
      try {
        const r = await http('GET', `http://${host}/v2/`);
        if (r.status === 200) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const stop = async () => {
      if (exited) return;
      await new Promise((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.kill('SIGTERM');
      });
    };
    if (ready) return { host, url: `http://${host}`, dataDir: join(dir, 'data'), stop };
    await stop();
    if (/address already in use/.test(stderr)) continue;
    throw new Error(`docker-registry did not start on ${host}:\n${stderr}`);
  }
  throw new Error('docker-registry: no free port after 5 attempts');
}

function absolute(base, location) {
  return new URL(location, base).toString();
}

/** True when the registry already holds the blob in `repo`. */
export async function blobExists(reg, repo, digest) {
  const r = await http('HEAD', `${reg.url}/v2/${repo}/blobs/${digest}`);
  return r.status === 200;
}

/**
 * Pushes a blob given as a Buffer or as a factory of an async iterable of Buffers, streaming it
 * in one PATCH and hashing on the way, so no blob is ever held whole. Returns { digest, size }.
 * `knownDigest` lets a shared blob be skipped when present (HEAD first).
 */
export async function pushBlob(reg, repo, source, knownDigest) {
  if (knownDigest && (await blobExists(reg, repo, knownDigest))) return { digest: knownDigest, size: -1, skipped: true };
  const start = await http('POST', `${reg.url}/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': '0' } });
  if (start.status !== 202) throw new Error(`POST upload ${repo}: HTTP ${start.status} ${start.body.toString().slice(0, 300)}`);
  const loc = absolute(reg.url, start.headers.location);
  const hash = createHash('sha256');
  let size = 0;
  const iterable = Buffer.isBuffer(source) ? [source] : source();
  async function* counted() {
    for await (const chunk of iterable) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  }
  const patch = await http('PATCH', loc, { headers: { 'content-type': 'application/octet-stream' }, body: counted() });
  if (patch.status !== 202) throw new Error(`PATCH upload ${repo}: HTTP ${patch.status} ${patch.body.toString().slice(0, 300)}`);
  const digest = `sha256:${hash.digest('hex')}`;
  const put = new URL(absolute(reg.url, patch.headers.location));
  put.searchParams.set('digest', digest);
  const done = await http('PUT', put.toString(), { headers: { 'content-length': '0' } });
  if (done.status !== 201) throw new Error(`PUT upload ${repo} ${digest}: HTTP ${done.status} ${done.body.toString().slice(0, 300)}`);
  return { digest, size, skipped: false };
}

/** PUTs a manifest (Buffer) under `reference` (tag or digest). */
export async function putManifest(reg, repo, reference, bytes, mediaType) {
  const r = await http('PUT', `${reg.url}/v2/${repo}/manifests/${reference}`, {
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: bytes,
  });
  if (r.status !== 201) throw new Error(`PUT manifest ${repo}:${reference}: HTTP ${r.status} ${r.body.toString().slice(0, 300)}`);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
