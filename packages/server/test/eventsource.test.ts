/**
 * `GET /sse` with a client nobody here wrote: the `eventsource` npm package (WHATWG EventSource for
 * Node). The server drops the connection mid-stream, messages are published while the client is
 * away, and the client's own reconnect (after `retry:`, with `Last-Event-ID`) must bring exactly the
 * missed ones: no gap, no duplicate.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inbox, until } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';

interface Pub {
  stream: string;
  channel: string;
  epoch: string;
  offset: number;
  data: unknown;
}

/** An EventSource whose events are kept in inboxes. */
function open(url: string) {
  const es = new EventSource(url);
  const pubs = new Inbox<{ pub: Pub; id: string }>();
  const connected = new Inbox<{ client: string; session: string }>();
  const subscribed = new Inbox<Record<string, unknown>>();
  const disconnects = new Inbox<Record<string, unknown>>();
  const errors = new Inbox<number>();
  es.addEventListener('message', (e) => pubs.push({ pub: JSON.parse(e.data) as Pub, id: e.lastEventId }));
  es.addEventListener('connected', (e) => connected.push(JSON.parse(e.data) as { client: string; session: string }));
  es.addEventListener('subscribed', (e) => subscribed.push(JSON.parse(e.data) as Record<string, unknown>));
  es.addEventListener('disconnect', (e) => disconnects.push(JSON.parse(e.data) as Record<string, unknown>));
  es.addEventListener('error', () => errors.push(es.readyState));
  return { es, pubs, connected, subscribed, disconnects, errors };
}

describe('eventsource (npm) against /sse', () => {
  let ts: TestServer;
  const lastEventIds: Array<string | undefined> = [];

  beforeAll(async () => {
    // retry 3 s: long enough that the publishes below happen while the client is away (checked), even on a busy machine.
    ts = await startServer({ http: { sseRetry: 3000, heartbeatInterval: 30_000 } });
    ts.server.httpServer?.on('request', (req: IncomingMessage) => {
      if (req.url?.startsWith('/sse')) lastEventIds.push(req.headers['last-event-id'] as string | undefined);
    });
  });
  afterAll(() => ts.close());

  async function publish(channel: string, data: unknown): Promise<void> {
    const r = await api(ts.url, 'publish', { channel, data });
    expect(r.status).toBe(200);
  }

  function sseSessions(): number {
    return ts.server.connectionsByTransport()['sse'] ?? 0;
  }

  /** Publishes 1..3, drops the connection with `drop`, publishes 4..8 while away, 9 once back. */
  async function dropAndResume(channel: string, drop: (client: string) => Promise<void>) {
    lastEventIds.length = 0;
    const c = open(`${ts.url}/sse?channel=${channel}`);
    try {
      const first = await c.connected.waitFor(() => true, 'connected');
      await c.subscribed.waitFor(() => true, 'subscribed');
      for (let i = 1; i <= 3; i++) await publish(channel, i);
      const before = await c.pubs.waitForCount(() => true, 3, 'publications 1-3');
      await drop(first.client);
      await c.errors.waitFor(() => true, 'the error event of the dropped connection');
      await until(() => sseSessions() === 0, 'the server freed the dropped session');
      for (let i = 4; i <= 8; i++) await publish(channel, i);
      expect(sseSessions()).toBe(0); // all five were published while the client was away
      const again = await c.connected.waitForCount(() => true, 2, 'connected after the reconnect', 10_000);
      expect(again[1]?.client).not.toBe(first.client);
      const resumed = await c.subscribed.waitForCount(() => true, 2, 'subscribed after the reconnect');
      expect(resumed[1]).toMatchObject({ stream: channel, recovered: true });
      await publish(channel, 9);
      const all = await c.pubs.waitForCount(() => true, 9, 'publications 1-9');
      // The sentinel (9) came after the recovered ones: nothing more is on its way.
      expect(all.map((p) => p.pub.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(all.map((p) => p.pub.offset)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const epoch = all[0]?.pub.epoch;
      expect(all.every((p) => p.pub.epoch === epoch && p.id === `${channel};${epoch};${p.pub.offset}`)).toBe(true);
      // The reconnect carried the id of the last event seen before the drop.
      expect(lastEventIds).toEqual([undefined, before[2]?.id]);
    } finally {
      c.es.close();
    }
  }

  it('resumes exactly after the server resets the connection mid-stream', async () => {
    await dropAndResume('es.reset', (client) => {
      const session = ts.server.hub.sessions.get(client);
      // An HTTP/1.1 stream holds its socket itself (detached from node:http); through Node it has `res`.
      const t = session?.transport as { socket?: Socket; res?: ServerResponse } | undefined;
      const socket = t?.socket ?? t?.res?.socket;
      expect(socket).toBeDefined();
      socket?.destroy();
      return Promise.resolve();
    });
  });

  it('resumes exactly after POST /api/disconnect {client, reconnect: true}', async () => {
    await dropAndResume('es.api', async (client) => {
      const r = await api(ts.url, 'disconnect', { client, reconnect: true });
      expect(r.body).toEqual({ disconnected: 1 });
    });
  });
});
