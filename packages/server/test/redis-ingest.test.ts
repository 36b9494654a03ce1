/**
 * Publishing by Redis PUBLISH to the ingestion channel: exactly one node (the lease holder) applies
 * each message; malformed messages are counted, never fatal; leadership moves when the leader leaves.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestStats } from '../src/engines/redis/ingest.js';
import { parseIngest } from '../src/engines/redis/ingest.js';
import { until, withTimeout } from '@herald/test-support';
import { api, WsClient } from '@herald/test-support/server';
import { adminClient, dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const prefix = testPrefix();
const ingestChannel = `${prefix}:ingest`;
let nodes: RedisNode[] = [];
let admin: Redis;

const ingestOf = (n: RedisNode): IngestStats => n.server.info()['ingest'] as IngestStats;

describe('ingestion message format', () => {
  it('accepts {channel, data, idempotencyKey?} and explains everything else', () => {
    expect(parseIngest('{"channel":"a.b","data":{"x":1}}')).toEqual({
      channel: 'a.b',
      data: { x: 1 },
      idempotencyKey: undefined,
    });
    expect(parseIngest('{"channel":"a","data":null,"idempotencyKey":"k"}')).toMatchObject({ idempotencyKey: 'k' });
    expect(parseIngest('nope')).toBe('not JSON');
    expect(parseIngest('[1]')).toBe('not a JSON object');
    expect(parseIngest('{"channel":1,"data":1}')).toBe('"channel" must be a string');
    expect(parseIngest('{"channel":"a"}')).toBe('"data" is required');
    expect(parseIngest('{"channel":"a","data":1,"idempotencyKey":""}')).toMatch(/idempotencyKey/);
    expect(parseIngest('{"channel":"a","data":1,"extra":true}')).toBe('unknown field "extra"');
  });
});

describe.skipIf(skipRedis)('ingestion through Redis PUBLISH', () => {
  beforeAll(async () => {
    admin = await adminClient();
    nodes = [];
    // One after the other, so the first one started is the leader.
    for (let i = 0; i < 3; i++) nodes.push(await startRedisNode(prefix, {}, { ingestChannel }));
  });
  afterAll(async () => {
    admin.disconnect();
    await Promise.all(nodes.map((n) => n.close()));
    await dropPrefix(prefix);
  });

  it('is applied by exactly one node', async () => {
    expect(nodes.map((n) => ingestOf(n).leader)).toEqual([true, false, false]);
    const sub = await WsClient.connect(nodes[2]!.wsUrl);
    await sub.request({ cmd: 'subscribe', channel: 'ing.**' });
    for (let i = 1; i <= 20; i++) {
      // PUBLISH answers how many clients received the message: only the leader listens.
      expect(await admin.publish(ingestChannel, JSON.stringify({ channel: `ing.c${i % 3}`, data: { i } }))).toBe(1);
    }
    await sub.waitForCount((f) => f['push'] === 'pub', 20, 'ingested publications');
    expect(sub.pubs().map((p) => p['data'].i)).toEqual([...Array(20).keys()].map((i) => i + 1));
    const h = await api(nodes[1]!.url, 'history', { channel: 'ing.**' });
    expect(h.body.offset).toBe(20);
    await until(() => ingestOf(nodes[0]!).applied === 20, '20 applied', 8000);
    expect(nodes.map((n) => ingestOf(n).applied)).toEqual([20, 0, 0]);
    await sub.close();
  });

  it('applies a message with an idempotency key once, however often it is published', async () => {
    const msg = JSON.stringify({ channel: 'ingk.x', data: 'once', idempotencyKey: 'job-7' });
    for (let i = 0; i < 3; i++) await admin.publish(ingestChannel, msg);
    await admin.publish(ingestChannel, JSON.stringify({ channel: 'ingk.x', data: 'sentinel' }));
    await until(() => ingestOf(nodes[0]!).applied === 24, 'the sentinel applied', 8000);
    const h = await api(nodes[0]!.url, 'history', { channel: 'ingk.x' });
    expect(h.body.publications.map((p: { data: unknown }) => p.data)).toEqual(['once', 'sentinel']);
  });

  it('counts and logs malformed or refused messages without disturbing the node', async () => {
    const before = ingestOf(nodes[0]!);
    for (const bad of [
      'not json',
      '[]',
      '{"channel":5,"data":1}',
      '{"channel":"ok.x"}',
      '{"channel":"a..b","data":1}',
    ]) {
      await admin.publish(ingestChannel, bad);
    }
    await admin.publish(ingestChannel, JSON.stringify({ channel: 'ingm.x', data: 'after' }));
    await until(() => ingestOf(nodes[0]!).applied === before.applied + 1, 'the good message applied', 8000);
    const after = ingestOf(nodes[0]!);
    expect(after.malformed - before.malformed).toBe(4);
    expect(after.rejected - before.rejected).toBe(1);
    const info = await api(nodes[0]!.url, 'info', {});
    expect(JSON.stringify(info.body)).toContain('"malformed":4');
    expect((await api(nodes[0]!.url, 'history', { channel: 'ingm.x' })).body.offset).toBe(1);
  });

  it('moves to another node when the leader leaves', async () => {
    const leader = nodes[0]!;
    await leader.close();
    nodes = nodes.slice(1);
    await withTimeout(
      until(() => nodes.some((n) => ingestOf(n).leader), 'a new leader', 8000),
      10_000,
      'a new leader',
    );
    expect(nodes.filter((n) => ingestOf(n).leader)).toHaveLength(1);
    expect(await admin.publish(ingestChannel, JSON.stringify({ channel: 'ingl.x', data: 1 }))).toBe(1);
    await until(() => nodes.some((n) => ingestOf(n).applied === 1), 'the message applied by the new leader', 8000);
  });
});
