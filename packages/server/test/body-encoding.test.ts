/**
 * Compressed request bodies (issue 14, section 5): Herald reads uncompressed bodies only, so a body
 * with a `Content-Encoding` other than `identity` (server API and `POST /send`) gets 415
 * HERALD_ERR_API_UNSUPPORTED_ENCODING instead of being parsed as JSON; `identity` is accepted.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

/** The first JSON value of a response (a server API body, or the first NDJSON line of /send). */
interface Answer {
  error?: { code: string; message: string };
  [field: string]: unknown;
}

async function post(
  path: string,
  body: string | Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Headers; body: Answer | undefined }> {
  const res = await fetch(`${srv.url}${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === '' ? undefined : (JSON.parse(text.split('\n')[0] ?? '') as Answer),
  };
}

const apiHeaders = { 'Content-Type': 'application/json', Authorization: `apikey ${API_KEY}` };
const publish = JSON.stringify({ channel: 'enc.x', data: { n: 1 } });

describe('Content-Encoding of request bodies', () => {
  it.each(['gzip', 'deflate', 'br', 'x-custom', 'identity, gzip'])(
    'the server API answers %s with 415 HERALD_ERR_API_UNSUPPORTED_ENCODING and publishes nothing',
    async (encoding) => {
      const before = srv.server.metrics.value('herald_publications_total');
      const r = await post('/api/publish', gzipSync(publish), { ...apiHeaders, 'Content-Encoding': encoding });
      expect(r.status).toBe(415);
      expect(r.body).toEqual({
        error: { code: 'HERALD_ERR_API_UNSUPPORTED_ENCODING', message: expect.stringContaining(encoding) },
      });
      expect(r.headers.get('accept-encoding')).toBe('identity');
      expect(srv.server.metrics.value('herald_publications_total')).toBe(before);
    },
  );

  it.each(['identity', 'IDENTITY', ' identity '])('the server API accepts Content-Encoding %j', async (encoding) => {
    const r = await post('/api/publish', publish, { ...apiHeaders, 'Content-Encoding': encoding });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ channel: 'enc.x' });
  });

  it('POST /send answers a gzip body with 415, and takes the same commands uncompressed', async () => {
    const hello = (await (await fetch(`${srv.url}/poll?timeout=1`)).json()) as { session: string };
    const ping = JSON.stringify({ id: 1, cmd: 'ping' });
    const refused = await post('/send', gzipSync(ping), {
      'X-Herald-Session': hello.session,
      'Content-Encoding': 'gzip',
    });
    expect(refused.status).toBe(415);
    expect(refused.body?.error?.code).toBe('HERALD_ERR_API_UNSUPPORTED_ENCODING');
    const ok = await post('/send', ping, { 'X-Herald-Session': hello.session });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ id: 1, result: {} });
  });
});
