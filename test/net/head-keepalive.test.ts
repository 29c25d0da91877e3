// HEAD requests keep their connection (a tag check per HEAD must not cost a new connection),
// and a response made unparsable by a server's stray HEAD body is retried for reads.
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { discardBody, request } from '../../net/index.js';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

describe('HEAD keep-alive', () => {
  it('sequential HEADs reuse their connections', async () => {
    let connections = 0;
    const server = createServer((req, res) => {
      res.writeHead(200, { 'docker-content-digest': 'sha256:x', 'content-length': '10' });
      res.end();
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dispatcher = new Agent();
    stops.push(async () => {
      await dispatcher.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/r/manifests/t`;
    for (let i = 0; i < 6; i++) {
      const res = await request({ url, method: 'HEAD', dispatcher });
      expect(res.statusCode).toBe(200);
      await discardBody(res.body);
    }
    // undici frees a connection one event-loop turn after a response, so the second request may
    // open another; after that they alternate. Closing after every HEAD would make six.
    expect(connections).toBeLessThanOrEqual(2);
  });

  it('a GET whose response a stray HEAD body garbled is retried on a fresh connection', async () => {
    // A raw server that sends its HEAD body late: just before the next response on that connection.
    let late: string | undefined;
    let connections = 0;
    const server = createTcpServer((sock: Socket) => {
      connections++;
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        let i;
        while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
          const head = buf.slice(0, i);
          buf = buf.slice(i + 4);
          if (head.startsWith('HEAD')) {
            sock.write('HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: keep-alive\r\n\r\n');
            late = 'HEAD-BODY';
          } else {
            sock.write(`${late ?? ''}HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok`);
            late = undefined;
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dispatcher = new Agent();
    stops.push(async () => {
      await dispatcher.close();
      await new Promise((r) => server.close(r));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
    const h = await request({ url, method: 'HEAD', dispatcher });
    await discardBody(h.body);
    const g = await request({ url, dispatcher, retry: { retries: 2, sleep: async () => {} } });
    expect(g.statusCode).toBe(200);
    const chunks: Buffer[] = [];
    for await (const c of g.body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('ok');
    expect(connections).toBe(2);
  });
});
