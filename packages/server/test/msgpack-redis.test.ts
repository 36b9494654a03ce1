/**
 * Binary payloads and MessagePack on the Redis engine: the stored form of bytes (a leading U+0000
 * and base64) goes through Redis (publish, the node's stream subscription, history) unchanged, so
 * a MessagePack subscriber gets the bytes and a JSON one `b64data`, live and from history.
 */
import { decodeMulti, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inbox, withTimeout } from '@herald/test-support';
import { api, WsClient, type Frame } from '@herald/test-support/server';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const prefix = testPrefix();
const BYTES = Uint8Array.from([0, 1, 2, 250, 255]);
const B64 = Buffer.from(BYTES).toString('base64');

describe.skipIf(skipRedis)('binary payloads on the Redis engine', () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedisNode(prefix, { namespaces: { rbin: { historySize: 100 } } });
  });
  afterAll(async () => {
    await node.close();
    await dropPrefix(prefix);
  });

  it('delivers bytes live and from history, as bin on MessagePack and b64data on JSON', async () => {
    const frames = new Inbox<Frame>();
    const ws = new WebSocket(node.wsUrl, 'herald.msgpack');
    ws.on('message', (d: Buffer) => {
      for (const v of decodeMulti(new Uint8Array(d.buffer, d.byteOffset, d.byteLength))) frames.push(v as Frame);
    });
    await frames.waitFor((f) => f['push'] === 'connected', 'connected');
    ws.send(encode({ id: 1, cmd: 'subscribe', channel: 'rbin.x' }));
    await frames.waitFor((f) => f['id'] === 1, 'subscribed');
    const json = await WsClient.subscribed(node.wsUrl, 'rbin.x');
    expect((await api(node.url, 'publish', { channel: 'rbin.x', b64data: B64 })).status).toBe(200);
    await api(node.url, 'publish', { channel: 'rbin.x', data: { after: true } });
    const live = await frames.waitForCount((f) => f['push'] === 'pub', 2, 'msgpack pubs');
    expect(live.map((p) => p['data'])).toEqual([BYTES, { after: true }]);
    const jsonLive = await json.waitForCount((f) => f['push'] === 'pub', 2, 'json pubs');
    expect(jsonLive[0]!['b64data']).toBe(B64);
    ws.send(encode({ id: 2, cmd: 'history', channel: 'rbin.x' }));
    const h = await frames.waitFor((f) => f['id'] === 2, 'history');
    expect(h['result']['publications'][0]['data']).toEqual(BYTES);
    const viaApi = await api(node.url, 'history', { channel: 'rbin.x' });
    expect(viaApi.body.publications[0]).toMatchObject({ offset: 1, b64data: B64 });
    ws.close();
    await withTimeout(new Promise((r) => ws.once('close', r)), 5000, 'close');
    await json.close();
  });
});
