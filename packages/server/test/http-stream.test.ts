/**
 * `GET /stream`: HTTP streaming of newline-delimited JSON (transports/http-stream.ts), one frame per
 * line: `connected`, `subscribed` (with the publications recovered from the cursor), then `pub`.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { NdjsonReader } from './support/http-clients.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

describe('GET /stream', () => {
  it('streams NDJSON lines: connected, subscribed with recovered publications, then pubs', async () => {
    await api(srv.url, 'publish', { channel: 'st.a', data: 1 });
    const pos = await api(srv.url, 'history', { channel: 'st.a', limit: 0 });
    await api(srv.url, 'publish', { channel: 'st.a', data: 2 });
    const r = new NdjsonReader(`${srv.url}/stream?channel=st.a&cursor=${pos.body.epoch}:1`);
    await r.waitFor((l) => l.some((f) => f['push'] === 'subscribed'), 'subscribed line');
    expect(r.headers?.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    expect(r.items[0]).toMatchObject({ push: 'connected' });
    expect(r.items[1]).toMatchObject({
      push: 'subscribed',
      stream: 'st.a',
      recovered: true,
      offset: 2,
      publications: [{ offset: 2, data: 2 }],
    });
    await api(srv.url, 'publish', { channel: 'st.a', data: 3 });
    await r.waitFor((l) => l.some((f) => f['push'] === 'pub'), 'pub line');
    expect(r.pubs()[0]).toMatchObject({ stream: 'st.a', offset: 3, data: 3 });
    r.close();
  });

  it('works with curl -N', async () => {
    const child = spawn('curl', ['-sN', `${srv.url}/stream?channel=st.curl`]);
    let out = '';
    const got = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('"push":"subscribed"') && !out.includes('published')) {
          out += ' published';
          void api(srv.url, 'publish', { channel: 'st.curl', data: 'via curl' });
        }
        if (out.includes('"data":"via curl"')) resolve();
      });
    });
    await withTimeout(got, 10_000, 'curl to print the publication');
    child.kill();
  });
});
