/**
 * Commands of one connection on one channel take effect in the order they were sent, whatever
 * asynchronous checks they wait on: random subscribe/unsubscribe sequences in one message, with a
 * subscribe hook answering after a random delay, over WebSocket and over `POST /send` for SSE and
 * HTTP-stream sessions. Each reply must be what the sequence, applied in order, says; and at the end
 * the connection receives the channel's publications exactly when its last command was a subscribe
 * (proved with a sentinel publication on another channel, never by waiting for nothing).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { NdjsonReader, SseReader, send } from './support/http-clients.js';

let backend: Server;
let srv: TestServer;
let run = 0;

beforeAll(async () => {
  // The subscribe hook allows everything, after 0-15 ms: later commands overtake earlier ones unless
  // the server keeps their order.
  backend = createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      setTimeout(
        () => {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end('{"allow":true}');
        },
        Math.floor(Math.random() * 16),
      ),
    );
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  srv = await startServer({
    http: { heartbeatInterval: 30_000 },
    auth: { hooks: { url } },
    namespaces: { ord: { hooks: ['subscribe'] } },
  });
});
afterAll(async () => {
  await srv.close();
  await new Promise((r) => backend.close(r));
});

type Op = 'subscribe' | 'unsubscribe';
const ops = fc.array(fc.constantFrom<Op>('subscribe', 'unsubscribe'), { minLength: 1, maxLength: 8 });

/** The reply each command must get, applying the sequence in order from "not subscribed". */
function expected(seq: readonly Op[]): { codes: (string | undefined)[]; subscribed: boolean } {
  let subscribed = false;
  const codes = seq.map((op) => {
    if (op === 'subscribe') {
      if (subscribed) return 'HERALD_ERR_SUBSCRIBE_ALREADY';
      subscribed = true;
      return undefined;
    }
    if (!subscribed) return 'HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED';
    subscribed = false;
    return undefined;
  });
  return { codes, subscribed };
}

function batch(seq: readonly Op[], channel: string, firstId = 1): string {
  return seq.map((op, i) => JSON.stringify({ id: firstId + i, cmd: op, channel })).join('\n');
}

const codeOf = (f: Record<string, any>): string | undefined => f['error']?.['code'] as string | undefined;

describe('per-channel command order', () => {
  it('over WebSocket: replies and the final state follow the order sent', async () => {
    await fc.assert(
      fc.asyncProperty(ops, async (seq) => {
        run += 1;
        const channel = `ord.ws${run}`;
        const c = await WsClient.subscribed(srv.wsUrl, `sentinel.ws${run}`);
        try {
          c.sendRaw(batch(seq, channel, 100));
          const replies = await Promise.all(
            seq.map((_, i) => c.waitFor((f) => f['id'] === 100 + i, `reply ${100 + i}`)),
          );
          const want = expected(seq);
          expect(replies.map(codeOf)).toEqual(want.codes);
          expect(srv.server.hub.sessions.get(c.clientId)?.subscriptions.has(channel)).toBe(want.subscribed);
          await api(srv.url, 'publish', { channel, data: 'x' });
          await api(srv.url, 'publish', { channel: `sentinel.ws${run}`, data: 'sentinel' });
          await c.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'the sentinel');
          expect(c.pubs(channel)).toHaveLength(want.subscribed ? 1 : 0);
        } finally {
          await c.close();
        }
      }),
      { seed: 15003, numRuns: 40 },
    );
  });

  it.each(['sse', 'stream'] as const)('over POST /send for a %s session', async (kind) => {
    await fc.assert(
      fc.asyncProperty(ops, async (seq) => {
        run += 1;
        const channel = `ord.${kind}${run}`;
        const sentinel = `sentinel.${kind}${run}`;
        const url = `${srv.url}/${kind}?channel=${sentinel}`;
        const reader = kind === 'sse' ? new SseReader(url) : new NdjsonReader(url);
        try {
          let session = '';
          if (reader instanceof SseReader) {
            await reader.waitFor(() => reader.of('subscribed').length === 1, 'subscribed');
            session = reader.of('connected')[0]?.['session'] as string;
          } else {
            await reader.waitFor((items) => items.some((f) => f['push'] === 'subscribed'), 'subscribed');
            session = reader.items.find((f) => f['push'] === 'connected')?.['session'] as string;
          }
          const r = await send(srv.url, session, batch(seq, channel));
          expect(r.status).toBe(200);
          const want = expected(seq);
          const byId = new Map<number, Record<string, any>>(r.lines.map((l: Record<string, any>) => [l['id'], l]));
          expect(seq.map((_, i) => codeOf(byId.get(1 + i) ?? {}))).toEqual(want.codes);
          await api(srv.url, 'publish', { channel, data: 'x' });
          await api(srv.url, 'publish', { channel: sentinel, data: 'sentinel' });
          await reader.waitFor(() => reader.pubs().some((p) => p['data'] === 'sentinel'), 'the sentinel');
          expect(reader.pubs().filter((p) => p['stream'] === channel)).toHaveLength(want.subscribed ? 1 : 0);
        } finally {
          reader.close();
        }
      }),
      { seed: 15004, numRuns: 15 },
    );
  });
});
