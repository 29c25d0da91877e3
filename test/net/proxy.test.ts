// HTTPS_PROXY / HTTP_PROXY / NO_PROXY: a dispatcher tunnels through the proxy the environment
// names, and goes direct for hosts NO_PROXY lists.
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher, readBody, request } from '../../net/index.js';

const saved = { HTTP_PROXY: process.env['HTTP_PROXY'], HTTPS_PROXY: process.env['HTTPS_PROXY'], NO_PROXY: process.env['NO_PROXY'] };

describe('proxy from the environment', () => {
  let origin: Server;
  let proxy: Server;
  let originUrl = '';
  let proxyUrl = '';
  const tunnels: string[] = [];

  beforeAll(async () => {
    origin = createHttpServer((req, res) => res.end(`hello ${req.url}`));
    await new Promise<void>((ok) => origin.listen(0, '127.0.0.1', ok));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    // A minimal CONNECT proxy that records every tunnel it opens.
    proxy = createHttpServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, socket, head) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const up = connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.on('error', () => socket.destroy());
      socket.on('error', () => up.destroy());
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    tunnels.length = 0;
  });

  afterAll(async () => {
    await new Promise((ok) => origin.close(ok));
    await new Promise((ok) => proxy.close(ok));
  });

  it('tunnels through HTTP_PROXY', async () => {
    process.env['HTTP_PROXY'] = proxyUrl;
    process.env['HTTPS_PROXY'] = proxyUrl;
    delete process.env['NO_PROXY'];
    const dispatcher = createDispatcher({ tls: 'plain-http' });
    const res = await request({ url: `${originUrl}/v2/`, dispatcher });
    expect((await readBody(res.body, 1024)).toString()).toBe('hello /v2/');
    expect(tunnels).toEqual([originUrl.slice('http://'.length)]);
    await dispatcher.close();
  });

  it('goes direct for a host NO_PROXY lists', async () => {
    process.env['HTTP_PROXY'] = proxyUrl;
    process.env['HTTPS_PROXY'] = proxyUrl;
    process.env['NO_PROXY'] = '127.0.0.1';
    const dispatcher = createDispatcher({ tls: 'plain-http' });
    const res = await request({ url: `${originUrl}/v2/`, dispatcher });
    expect((await readBody(res.body, 1024)).toString()).toBe('hello /v2/');
    expect(tunnels).toEqual([]);
    await dispatcher.close();
  });
});
