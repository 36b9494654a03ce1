/**
 * The SDK against a Herald embedded under a path prefix (`basePath: '/realtime'`) in an
 * application's own node:http server (docs/embedding.md): a base URL with a path works on every
 * transport (`/realtime/ws`, `/realtime/sse`, `/realtime/stream`, `/realtime/poll`,
 * `/realtime/send`), and `history` takes the `latest` option.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '@herald/server';
import { withTimeout } from '@herald/test-support';
import { API_KEY, testConfig } from '@herald/test-support/server';
import { Herald, HeraldError, type TransportName } from '@herald/client';

const BASE = '/realtime';
const TRANSPORTS: TransportName[] = ['websocket', 'sse', 'http-stream', 'long-poll'];

let herald: HeraldServer;
let server: http.Server;
let url: string;

beforeAll(async () => {
  herald = new HeraldServer(testConfig(), { basePath: BASE });
  await herald.start();
  server = http.createServer((req, res) => {
    if (herald.handles(req)) herald.handleRequest(req, res);
    else res.writeHead(404).end('host: not found');
  });
  server.on('upgrade', (req, socket, head) => {
    if (herald.handles(req)) herald.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await herald.close();
  await new Promise((resolve) => server.close(resolve));
});

async function publish(channel: string, data: unknown): Promise<void> {
  const res = await fetch(`${url}${BASE}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  expect(res.status).toBe(200);
}

describe('SDK with a base URL that has a path', () => {
  for (const transport of TRANSPORTS) {
    it(`connects, subscribes and sends commands under the prefix over ${transport}`, async () => {
      const channel = `bp.${transport.replace('-', '')}`;
      // A trailing slash is fine too.
      const h = new Herald(`${url}${BASE}${transport === 'sse' ? '/' : ''}`, {
        transports: [transport],
        timeout: 5000,
      });
      try {
        const sub = h.subscribe<{ n: number }>(channel);
        await sub.ready();
        expect(h.transport).toBe(transport);
        const got: number[] = [];
        const three = new Promise<void>((resolve) =>
          sub.on('publication', (p) => {
            got.push(p.data.n);
            if (got.length === 3) resolve();
          }),
        );
        for (const n of [1, 2, 3]) await publish(channel, { n });
        await withTimeout(three, 5000, `three publications over ${transport}`);
        expect(got).toEqual([1, 2, 3]);
        // Commands: over the socket, or POST /realtime/send.
        const latest = await h.history<{ n: number }>(channel, { limit: 2, latest: true });
        expect(latest.publications.map((p) => p.data.n)).toEqual([2, 3]);
        const oldest = await h.history<{ n: number }>(channel, { limit: 2 });
        expect(oldest.publications.map((p) => p.data.n)).toEqual([1, 2]);
        const since = await sub.history({ limit: 5, latest: true, since: { epoch: latest.epoch, offset: 1 } });
        expect(since.publications.map((p) => p.offset)).toEqual([2, 3]);
        const refused = await h.history(channel, { latest: true, reverse: true }).catch((err: unknown) => err);
        expect(refused).toBeInstanceOf(HeraldError);
        expect((refused as HeraldError).code).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD');
      } finally {
        h.close();
      }
    });
  }
});
