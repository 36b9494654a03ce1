/**
 * A gap reported by the engine (its link to Redis dropped) puts live subscriptions back into
 * recovery: they re-read history and go on without gap or duplicate, with the memory engine too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_BUFFER } from '../src/core/subscription.js';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  await srv.close();
});

describe('hub gap recovery', () => {
  it('re-reads history after onGap and delivers everything once', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    await c.request({ cmd: 'subscribe', channel: 'gap.x' });
    await api(srv.url, 'publish', { channel: 'gap.x', data: 1 });
    await c.waitFor((f) => f['push'] === 'pub' && f['offset'] === 1, 'first');
    srv.server.hub.onGap(undefined);
    // Publications that race with the recovery land in the subscription's own buffer.
    await Promise.all([2, 3, 4].map((n) => api(srv.url, 'publish', { channel: 'gap.x', data: n })));
    const pubs = await c.waitForCount((f) => f['push'] === 'pub', 4, 'four publications');
    expect(pubs.map((p) => p['offset'])).toEqual([1, 2, 3, 4]);
    expect(NO_BUFFER).toEqual([]); // the buffer live subscriptions share stays empty
    await c.close();
  });
});
