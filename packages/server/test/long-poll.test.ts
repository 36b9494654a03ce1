import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { send } from './support/http-clients.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    http: { pollTimeout: 2000 },
    namespaces: { chat: { clientPublish: true }, closed: { anonymousSubscribe: false } },
  });
});
afterAll(async () => {
  await srv.close();
});

async function poll(query: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${srv.url}/poll?${query}`);
  return { status: res.status, body: await res.json() };
}

function pollSessions(): Promise<number> {
  return until(() => srv.server.connectionsByTransport()['long-poll'] !== 0, 'the poll to reach the server');
}

describe('GET /poll', () => {
  it('answers a first poll at once with the position, then holds until a publication arrives', async () => {
    const first = await poll('channel=lp.a');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ publications: [], streams: { 'lp.a': { stream: 'lp.a', offset: 0 } } });
    expect(first.body.cursor).toBe(`lp.a;${first.body.streams['lp.a'].epoch};0`);
    const waiting = poll(`channel=lp.a&cursor=${encodeURIComponent(first.body.cursor)}&session=${first.body.session}`);
    await pollSessions();
    await api(srv.url, 'publish', { channel: 'lp.a', data: { n: 1 } });
    const second = await withTimeout(waiting, 5000, 'held poll to answer');
    expect(second.body.publications).toMatchObject([{ stream: 'lp.a', offset: 1, data: { n: 1 } }]);
    expect(second.body.client).toBe(first.body.client);
    expect(second.body.cursor).toBe(`lp.a;${first.body.streams['lp.a'].epoch};1`);
    expect(srv.server.connectionsByTransport()['long-poll']).toBe(0);
  });

  it('delivers what was published between polls from history, subtree streams included', async () => {
    const first = await poll('channel=lp2.**&channel=lp2.x');
    await api(srv.url, 'publish', { channel: 'lp2.x', data: 1 });
    await api(srv.url, 'publish', { channel: 'lp2.y', data: 2 });
    const next = await poll(`channel=lp2.**&channel=lp2.x&cursor=${encodeURIComponent(first.body.cursor)}`);
    expect(next.body.publications.map((p: any) => [p.stream, p.offset, p.data])).toEqual([
      ['lp2.**', 1, 1],
      ['lp2.**', 2, 2],
      ['lp2.x', 1, 1],
    ]);
    expect(next.body.streams['lp2.**'].recovered).toBe(true);
  });

  it('keeps a refused stream in the answer cursor at the position it came with', async () => {
    const first = await poll('channel=lp.ok');
    const cursor = `${first.body.cursor},closed.x;E0;5`;
    const next = await poll(`cursor=${encodeURIComponent(cursor)}&timeout=0`);
    expect(next.body.streams['closed.x'].error.code).toBe('HERALD_ERR_AUTH_TOKEN_REQUIRED');
    expect(next.body.cursor).toBe(cursor);
  });

  it('answers empty with the same cursor at the timeout', async () => {
    const first = await poll('channel=lp.quiet');
    const again = await poll(`channel=lp.quiet&timeout=0.2&cursor=${encodeURIComponent(first.body.cursor)}`);
    expect(again.body.publications).toEqual([]);
    expect(again.body.cursor).toBe(first.body.cursor);
  });

  it('says recovered: false for a cursor outside history and answers at once', async () => {
    const r = await poll('channel=lp.old&cursor=oldEpoch:7');
    expect(r.body.streams['lp.old']).toMatchObject({ recovered: false });
  });

  it('lets a newer poll of the same client take over an older one', async () => {
    const first = await poll('channel=lp.t');
    const q = `channel=lp.t&cursor=${encodeURIComponent(first.body.cursor)}&session=${first.body.session}`;
    const older = poll(q);
    await pollSessions();
    const newer = poll(q);
    const o = await withTimeout(older, 5000, 'older poll answered');
    expect(o.body.publications).toEqual([]);
    await api(srv.url, 'publish', { channel: 'lp.t', data: 'x' });
    const n = await withTimeout(newer, 5000, 'newer poll');
    expect(n.body.publications).toHaveLength(1);
  });

  it('answers a poll without channels at once: a handshake that gives a session id for /send', async () => {
    const hello = await poll('timeout=5');
    expect(hello.status).toBe(200);
    expect(hello.body).toMatchObject({ cursor: '', streams: {}, publications: [] });
    expect(typeof hello.body.session).toBe('string');
    const r = await send(srv.url, hello.body.session, JSON.stringify({ id: 1, cmd: 'ping' }));
    expect(r.lines).toEqual([{ id: 1, result: {} }]);
  });

  it('refuses bad input with codes', async () => {
    expect((await poll('channel=a&backlog=x')).body.error.code).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD');
    expect((await poll('channel=a&session=forged.abc')).body.error.code).toBe('HERALD_ERR_SESSION_NOT_FOUND');
    expect((await poll('channel=a&cursor=zzz')).body.error.code).toBe('HERALD_ERR_CURSOR_INVALID');
    expect((await poll('channel=a&timeout=abc')).body.error.code).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD');
  });

  it('runs /send commands for a poll session: publish, history, subscribe as a snapshot', async () => {
    const first = await poll('channel=chat.lp');
    const session = first.body.session as string;
    const r = await send(
      srv.url,
      session,
      [
        JSON.stringify({ id: 1, cmd: 'publish', channel: 'chat.lp', data: 'hello' }),
        JSON.stringify({ id: 2, cmd: 'ping' }),
      ].join('\n'),
    );
    expect(r.lines.find((l) => l.id === 1).result).toMatchObject({ channel: 'chat.lp', offset: 1 });
    const snap = await send(
      srv.url,
      session,
      JSON.stringify({ id: 3, cmd: 'subscribe', channel: 'chat.lp', backlog: 5 }),
    );
    expect(snap.lines[0].result).toMatchObject({
      stream: 'chat.lp',
      offset: 1,
      publications: [{ offset: 1, data: 'hello' }],
    });
    const bad = await send(srv.url, session, '{oops\n{"id":9,"cmd":"nope"}');
    expect(bad.lines.map((l) => l.error.code)).toEqual([
      'HERALD_ERR_PROTOCOL_MALFORMED',
      'HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND',
    ]);
    const forged = await send(
      srv.url,
      `${first.body.client}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`,
      '{"id":1,"cmd":"ping"}',
    );
    expect(forged.status).toBe(404);
    expect(forged.lines[0].error.code).toBe('HERALD_ERR_SESSION_NOT_FOUND');
    const none = await fetch(`${srv.url}/send`, { method: 'POST', body: '{"id":1,"cmd":"ping"}' });
    expect(none.status).toBe(404);
  });
});
