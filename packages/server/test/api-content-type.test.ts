/**
 * The server API's answer to a body that is not `application/json`: 415
 * `HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE`, whose message says what to send and what came (`curl -d`
 * sends `application/x-www-form-urlencoded` unless told otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

async function publish(
  headers: Record<string, string>,
  body: string | Uint8Array = '{"channel":"ct.a","data":1}',
): Promise<{ status: number; body: { error?: { code: string; message: string }; offset?: number } }> {
  const res = await fetch(`${srv.url}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `apikey ${API_KEY}`, ...headers },
    body,
  });
  return { status: res.status, body: (await res.json()) as never };
}

describe('server API: Content-Type', () => {
  it("says what to send and what came for curl -d's default (form-urlencoded)", async () => {
    const r = await publish({ 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(r.status).toBe(415);
    expect(r.body.error).toEqual({
      code: 'HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE',
      message: 'send Content-Type: application/json (got application/x-www-form-urlencoded)',
    });
  });

  it('quotes other types with their parameters', async () => {
    const r = await publish({ 'Content-Type': 'text/plain; charset=utf-8' });
    expect([r.status, r.body.error?.message]).toEqual([
      415,
      'send Content-Type: application/json (got text/plain; charset=utf-8)',
    ]);
    const jsonp = await publish({ 'Content-Type': 'application/jsonp' });
    expect(jsonp.body.error?.message).toBe('send Content-Type: application/json (got application/jsonp)');
  });

  it('cuts a long type to 100 characters, and names an empty one', async () => {
    const long = `application/x-${'y'.repeat(300)}`;
    const r = await publish({ 'Content-Type': long });
    expect(r.status).toBe(415);
    expect(r.body.error?.message).toBe(`send Content-Type: application/json (got ${long.slice(0, 100)}...)`);
    const empty = await publish({ 'Content-Type': '' });
    expect([empty.status, empty.body.error?.message]).toEqual([
      415,
      'send Content-Type: application/json (got an empty value)',
    ]);
  });

  it('still takes application/json (with a charset) and no Content-Type at all', async () => {
    const json = await publish({ 'Content-Type': 'application/json; charset=utf-8' });
    expect([json.status, json.body.offset]).toEqual([200, 1]);
    // A Uint8Array body: fetch sets no Content-Type of its own.
    const none = await publish({}, new TextEncoder().encode('{"channel":"ct.a","data":2}'));
    expect([none.status, none.body.offset]).toEqual([200, 2]);
  });
});
