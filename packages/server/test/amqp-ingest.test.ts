/**
 * Publishing from RabbitMQ (ingest/amqp.ts) against the machine's broker: routing key → channel
 * mapping, JSON and plain bodies, bad messages rejected to the dead-letter queue and logged once,
 * an engine outage (requeued after a backoff, not spun on), a connection closed by the broker
 * mid-stream, draining at close, and 10,000 messages with the Herald node SIGKILLed in the middle
 * (every message reaches resuming WebSocket subscribers exactly once).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type AmqpOptions } from '../src/config/config.js';
import { resolveConfig } from '../src/config/load-config.js';
import type { Logger } from '../src/core/logger.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import type { AmqpIngestStats } from '../src/ingest/amqp.js';
import { parseDelivery, routeChannel, topicMatches, type AmqpDelivery } from '../src/ingest/amqp-message.js';
import { freePort, startTcpProxy, tempDir, until } from '@herald/test-support';
import { api, startChildNode, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import {
  AMQP_URL,
  AmqpPublisher,
  closeConnectionsNamed,
  deleteAmqp,
  skipAmqp,
  skipBrokerClose,
  uniqueName,
} from './support/rabbitmq.js';
import { dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';
import { ResumingClient } from './support/resuming-client.js';

const statsOf = (s: TestServer): AmqpIngestStats => s.server.info()['amqp'] as AmqpIngestStats;

function amqpConfig(over: Partial<AmqpOptions>): AmqpOptions {
  return { ...DEFAULT_CONFIG.amqp, url: AMQP_URL, bindings: [], ...over };
}

/** A logger that keeps the warnings (and passes nothing on). */
function keepingLogger(): { logger: Logger; warnings: Record<string, unknown>[] } {
  const warnings: Record<string, unknown>[] = [];
  const noop = (): void => undefined;
  const logger: Logger = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: (obj: object | string, msg?: string) => {
      warnings.push(typeof obj === 'string' ? { msg: obj } : { ...obj, msg });
    },
    error: noop,
    fatal: noop,
    child: () => logger,
  };
  return { logger, warnings };
}

function delivery(
  body: string,
  over: { exchange?: string; routingKey?: string; messageId?: string; contentType?: string } = {},
): AmqpDelivery {
  return {
    content: Buffer.from(body),
    fields: { exchange: over.exchange ?? 'ex', routingKey: over.routingKey ?? 'a.b' },
    properties: { messageId: over.messageId, contentType: over.contentType },
  };
}

describe('AMQP routing and message format', () => {
  it('matches topic patterns like RabbitMQ', () => {
    expect(topicMatches('orders.#', 'orders')).toBe(true);
    expect(topicMatches('orders.#', 'orders.42.x')).toBe(true);
    expect(topicMatches('orders.*', 'orders.42')).toBe(true);
    expect(topicMatches('orders.*', 'orders.42.x')).toBe(false);
    expect(topicMatches('*.created', 'order.created')).toBe(true);
    expect(topicMatches('#', 'anything.at.all')).toBe(true);
    expect(topicMatches('a.#.z', 'a.z')).toBe(true);
    expect(topicMatches('a.#.z', 'a.b.c.z')).toBe(true);
    expect(topicMatches('alerts', 'alerts.x')).toBe(false);
  });

  it('maps a routing key to a channel through the first matching binding, else the key itself', () => {
    const routes = [
      { exchange: 'ev', routingKey: 'rooms.#', channel: 'chat.*' },
      { exchange: 'ev', routingKey: 'alerts', channel: 'ops.alerts' },
      { exchange: 'ev', routingKey: 'orders.*', channel: '' },
    ];
    expect(routeChannel(routes, 'ev', 'rooms.42')).toBe('chat.42');
    expect(routeChannel(routes, 'ev', 'rooms.42.x')).toBe('chat.42.x');
    expect(routeChannel(routes, 'ev', 'alerts')).toBe('ops.alerts');
    expect(routeChannel(routes, 'ev', 'orders.7')).toBe('orders.7');
    expect(routeChannel(routes, 'other', 'rooms.1')).toBe('rooms.1');
  });

  it('reads JSON envelopes and plain bodies, and explains what it cannot read', () => {
    const routes = [{ exchange: 'ex', routingKey: 'a.*', channel: 'x.*' }];
    expect(parseDelivery(delivery('{"data":{"n":1}}', { messageId: 'm1' }), 'json', routes)).toEqual({
      ok: true,
      channel: 'x.b',
      data: { n: 1 },
      idempotencyKey: 'm1',
    });
    expect(
      parseDelivery(delivery('{"data":1,"channel":"c.d","idempotencyKey":"k"}', { messageId: 'm1' }), 'json', routes),
    ).toEqual({
      ok: true,
      channel: 'c.d',
      data: 1,
      idempotencyKey: 'k',
    });
    expect(parseDelivery(delivery('hello'), 'plain', routes)).toMatchObject({ ok: true, data: 'hello' });
    expect(parseDelivery(delivery('{"a":1}'), 'plain', routes)).toMatchObject({ ok: true, data: '{"a":1}' });
    expect(parseDelivery(delivery('{"a":1}', { contentType: 'application/json' }), 'plain', routes)).toMatchObject({
      ok: true,
      data: { a: 1 },
    });
    const bad = (body: string | Buffer, format: 'json' | 'plain' = 'json', messageId?: string) =>
      parseDelivery(
        { ...delivery(''), content: Buffer.isBuffer(body) ? body : Buffer.from(body), properties: { messageId } },
        format,
        routes,
      );
    expect(bad('nope')).toMatchObject({ ok: false, code: 'HERALD_ERR_PROTOCOL_MALFORMED' });
    expect(bad('[1]')).toMatchObject({ ok: false, code: 'HERALD_ERR_PROTOCOL_MALFORMED' });
    expect(bad('{"channel":"a"}')).toMatchObject({ ok: false, reason: '"data" is required' });
    expect(bad('{"data":1,"extra":1}')).toMatchObject({ ok: false, code: 'HERALD_ERR_PROTOCOL_BAD_FIELD' });
    expect(bad('{"data":1,"channel":5}')).toMatchObject({ ok: false, code: 'HERALD_ERR_PROTOCOL_BAD_FIELD' });
    expect(bad(Buffer.from([0xff, 0xfe]), 'plain')).toMatchObject({ ok: false, reason: 'the body is not UTF-8 text' });
    expect(bad('x', 'plain', 'k'.repeat(129))).toMatchObject({ ok: false, code: 'HERALD_ERR_PROTOCOL_BAD_FIELD' });
  });
});

describe('amqp configuration', () => {
  it('reads bindings from objects and from "exchange/key=channel" strings, and explains mistakes', () => {
    const { config } = resolveConfig({
      amqp: {
        url: 'amqp://guest:guest@127.0.0.1:5672',
        bindings: [
          'events/orders.#',
          'events/rooms.*=chat.*',
          { exchange: 'ops', routingKey: 'alerts', channel: 'ops.alerts' },
        ],
        prefetch: '20',
        retryDelay: '2s',
      },
    });
    expect(config.amqp).toMatchObject({
      queue: 'herald',
      declare: true,
      format: 'json',
      prefetch: 20,
      retryDelay: 2000,
      bindings: [
        { exchange: 'events', routingKey: 'orders.#', channel: '' },
        { exchange: 'events', routingKey: 'rooms.*', channel: 'chat.*' },
        { exchange: 'ops', routingKey: 'alerts', channel: 'ops.alerts' },
      ],
    });
    let message = '';
    try {
      resolveConfig({
        amqp: {
          url: 'amqp://user:secret@host:5672x',
          bindings: ['events/orders.42=o.*', 'nochannel', { exchange: 'e', routingKey: 'a.#', channel: 'bad..x' }],
          format: 'xml',
        },
      });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('amqp.url: must be a URL like');
    expect(message).not.toContain('secret');
    expect(message).toContain('amqp.bindings[0].channel: can end in "*" only when routingKey is a pattern');
    expect(message).toContain('amqp.bindings[1]: must be {exchange, routingKey, channel?}');
    expect(message).toContain('amqp.bindings[2].channel:');
    expect(message).toContain('amqp.format: must be one of json, plain');
  });

  it('warns about settings that would do nothing', () => {
    expect(resolveConfig({ amqp: { queue: 'q' } }).warnings).toEqual([
      'amqp settings (from resolveConfig()) are ignored: amqp.url is empty (set it to consume from RabbitMQ)',
    ]);
    const off = resolveConfig({ amqp: { url: 'amqp://127.0.0.1', declare: false, deadLetterExchange: 'dlx' } });
    expect(off.warnings).toEqual([
      'amqp.deadLetterExchange is ignored with amqp.declare off: set it on the queue where you declare it',
    ]);
  });
});

describe.skipIf(skipAmqp)('publishing from RabbitMQ', () => {
  const exchange = uniqueName('ex');
  const queues: string[] = [];
  const exchanges = [exchange];
  let pub: AmqpPublisher;

  beforeAll(async () => {
    pub = await AmqpPublisher.open();
  });
  afterAll(async () => {
    await pub?.close();
    await deleteAmqp({ queues, exchanges });
  });

  it('maps routing keys to channels and publishes JSON envelopes', async () => {
    const queue = uniqueName('map');
    queues.push(queue);
    const srv = await startServer({
      amqp: amqpConfig({
        queue,
        bindings: [
          { exchange, routingKey: 'orders.#', channel: '' },
          { exchange, routingKey: 'rooms.*', channel: 'chat.*' },
          { exchange, routingKey: 'alerts', channel: 'ops.alerts' },
        ],
      }),
    });
    try {
      expect(statsOf(srv).state).toBe('consuming');
      const sub = await WsClient.subscribed(srv.wsUrl, 'orders.**', 'chat.42', 'ops.alerts', 'other.x');
      await pub.publish(exchange, 'orders.42', JSON.stringify({ data: { total: 9 } }), { messageId: 'o-1' });
      await pub.publish(exchange, 'rooms.42', JSON.stringify({ data: 'hi' }));
      await pub.publish(exchange, 'alerts', JSON.stringify({ data: { level: 'high' } }));
      await pub.publish(exchange, 'orders.43', JSON.stringify({ channel: 'other.x', data: 'named' }));
      // The same message id again: a redelivery of o-1, deduplicated.
      await pub.publish(exchange, 'orders.42', JSON.stringify({ data: { total: 9 } }), { messageId: 'o-1' });
      await pub.publish(exchange, 'alerts', JSON.stringify({ data: 'sentinel' }));
      await sub.waitForCount((f) => f['push'] === 'pub', 5, 'the publications');
      expect(sub.pubs().map((p) => [p['channel'], p['data']])).toEqual([
        ['orders.42', { total: 9 }],
        ['chat.42', 'hi'],
        ['ops.alerts', { level: 'high' }],
        ['other.x', 'named'],
        ['ops.alerts', 'sentinel'],
      ]);
      await until(() => statsOf(srv).published + statsOf(srv).duplicates === 6, 'every message acknowledged');
      expect(statsOf(srv)).toMatchObject({ published: 5, duplicates: 1, rejected: 0, inFlight: 0 });
      expect(await pub.ready(queue)).toBe(0);
      const metrics = await (await fetch(`${srv.url}/metrics`)).text();
      expect(metrics).toMatch(/herald_amqp_messages_total\{outcome="duplicate"\} 1/);
      expect(metrics).toMatch(/herald_amqp_consuming 1/);
      await sub.close();
    } finally {
      await srv.close();
    }
  });

  it('publishes plain bodies as JSON strings, or as the JSON they hold when the content type says so', async () => {
    const queue = uniqueName('plain');
    queues.push(queue);
    const srv = await startServer({
      amqp: amqpConfig({ queue, format: 'plain', bindings: [{ exchange, routingKey: 'news.#', channel: '' }] }),
    });
    try {
      const sub = await WsClient.subscribed(srv.wsUrl, 'news.**');
      await pub.publish(exchange, 'news.a', 'hello');
      await pub.publish(exchange, 'news.b', '{"looks":"like json"}');
      await pub.publish(exchange, 'news.c', '{"is":"json"}', { contentType: 'application/json' });
      await pub.publish(exchange, 'news.d', 'héllo ✓');
      await sub.waitForCount((f) => f['push'] === 'pub', 4, 'the publications');
      expect(sub.pubs().map((p) => p['data'])).toEqual(['hello', '{"looks":"like json"}', { is: 'json' }, 'héllo ✓']);
      await sub.close();
    } finally {
      await srv.close();
    }
  });

  it('rejects bad messages without requeue (to the dead-letter queue), logs each kind once, and goes on', async () => {
    const queue = uniqueName('bad');
    const dlx = uniqueName('dlx');
    const dlq = uniqueName('dlq');
    queues.push(queue, dlq);
    exchanges.push(dlx);
    const ch = await pub.model.createChannel();
    await ch.assertExchange(dlx, 'fanout', { durable: false, autoDelete: false });
    await ch.assertQueue(dlq, { durable: false });
    await ch.bindQueue(dlq, dlx, '');
    await ch.close();
    const { logger, warnings } = keepingLogger();
    const srv = await startServer(
      {
        amqp: amqpConfig({
          queue,
          deadLetterExchange: dlx,
          bindings: [{ exchange, routingKey: 'bad.#', channel: '' }],
        }),
        namespaces: { bad: { maxMessageSize: 100 } },
      },
      { logger },
    );
    try {
      const sub = await WsClient.subscribed(srv.wsUrl, 'bad.**');
      const bodies: [string, string][] = [
        ['bad.a', 'not json'],
        ['bad.a', 'not json either'],
        ['bad.a', JSON.stringify({ data: 1, extra: true })],
        ['bad.a!b', JSON.stringify({ data: 1 })],
        ['bad.a', JSON.stringify({ data: 'x'.repeat(200) })],
      ];
      for (const [key, body] of bodies) await pub.publish(exchange, key, body);
      await pub.publish(exchange, 'bad.ok', JSON.stringify({ data: 'sentinel' }));
      await sub.waitFor((f) => f['push'] === 'pub', 'the sentinel');
      expect(sub.pubs().map((p) => p['data'])).toEqual(['sentinel']);
      await until(async () => (await pub.ready(dlq)) === bodies.length, 'the bad messages dead-lettered', 5000);
      expect(await pub.ready(queue)).toBe(0);
      expect(statsOf(srv)).toMatchObject({ rejected: 5, published: 1 });
      const logged = warnings.filter((w) => w['msg'] === 'amqp: message rejected (not requeued)');
      // The second "not json" is counted, not logged again within 10 s.
      expect(logged.map((w) => w['code']).sort()).toEqual([
        'HERALD_ERR_CHANNEL_INVALID',
        'HERALD_ERR_MESSAGE_TOO_LARGE',
        'HERALD_ERR_PROTOCOL_BAD_FIELD',
        'HERALD_ERR_PROTOCOL_MALFORMED',
      ]);
      expect(logged.find((w) => w['code'] === 'HERALD_ERR_CHANNEL_INVALID')).toMatchObject({ routingKey: 'bad.a!b' });
      await sub.close();
    } finally {
      await srv.close();
    }
  });

  it('drains at close: publishes in flight are acknowledged, the rest stays queued for the next node', async () => {
    const queue = uniqueName('drain');
    queues.push(queue);
    const config = amqpConfig({ queue, prefetch: 50, bindings: [{ exchange, routingKey: 'dr.#', channel: '' }] });
    const total = 3000;
    const first = await startServer({ amqp: config });
    const publishing = pub.publishMany(total, (i) => ({
      exchange,
      routingKey: 'dr.x',
      body: JSON.stringify({ data: i }),
      options: { messageId: `d-${i}` },
    }));
    await until(() => statsOf(first).published >= 200, 'the first node to publish 200', 10_000);
    await first.close();
    await publishing;
    const a = statsOf(first);
    expect(a.state).toBe('closed');
    expect(a.published).toBeLessThan(total);
    // A fresh memory engine knows no idempotency keys: a message published but not acknowledged by
    // the first node would be published again here and the sum would exceed the total.
    const second = await startServer({ amqp: config });
    try {
      await until(
        () => statsOf(second).published >= total - a.published,
        'the second node to publish the rest',
        20_000,
      );
      expect(await pub.ready(queue)).toBe(0);
      expect(a.published + statsOf(second).published).toBe(total);
    } finally {
      await second.close();
    }
  }, 40_000);

  describe.skipIf(skipRedis)('with the engine unavailable', () => {
    const prefix = testPrefix();
    afterAll(() => dropPrefix(prefix));

    it('requeues after a growing backoff instead of spinning, and publishes once the engine is back', async () => {
      const queue = uniqueName('outage');
      queues.push(queue);
      const proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
      const engine = new RedisEngine({ urls: [proxy.url], prefix, commandTimeout: 300, connectTimeout: 300 });
      const srv = await startServer(
        {
          engine: 'redis',
          amqp: amqpConfig({ queue, retryDelay: 200, bindings: [{ exchange, routingKey: 'out.#', channel: '' }] }),
        },
        { engine },
      );
      try {
        const sub = await WsClient.subscribed(srv.wsUrl, 'out.x');
        proxy.switchTo(await freePort()); // Redis unreachable
        await until(() => !engine.ready(), 'the engine to notice', 5000);
        const sent = Date.now();
        await pub.publish(exchange, 'out.x', JSON.stringify({ data: 'late' }), { messageId: 'late-1' });
        await until(() => statsOf(srv).requeued >= 3, 'three requeues', 10_000);
        // Held 200, 200 and 400 ms (as long as the outage so far) before the third requeue: not a busy loop.
        expect(Date.now() - sent).toBeGreaterThanOrEqual(750);
        proxy.switchTo(Number(new URL(REDIS_URL).port || 6379));
        await sub.waitFor((f) => f['push'] === 'pub', 'the publication after the outage', 20_000);
        expect(sub.pubs().map((p) => p['data'])).toEqual(['late']);
        expect(statsOf(srv)).toMatchObject({ published: 1, rejected: 0 });
        expect(statsOf(srv).redelivered).toBeGreaterThanOrEqual(3);
        await sub.close();
      } finally {
        await srv.close();
        await proxy.close();
      }
    }, 40_000);
  });

  it('starts without the broker, and consumes once it can be reached', async () => {
    const queue = uniqueName('late');
    queues.push(queue);
    const amqpPort = Number(new URL(AMQP_URL).port || 5672);
    const proxy = await startTcpProxy(await freePort()); // nothing listens there yet
    const url = new URL(AMQP_URL);
    url.port = String(proxy.port);
    const srv = await startServer({
      amqp: amqpConfig({ url: url.href, queue, bindings: [{ exchange, routingKey: 'late.#', channel: '' }] }),
    });
    try {
      expect(srv.server.state).toBe('running');
      expect(statsOf(srv).state).toBe('reconnecting');
      expect(statsOf(srv).connectionsLost).toBeGreaterThanOrEqual(1);
      proxy.switchTo(amqpPort);
      await until(() => statsOf(srv).state === 'consuming', 'consuming once the broker is reachable', 20_000);
      const sub = await WsClient.subscribed(srv.wsUrl, 'late.x');
      // With message ids: an ack cut off with the link is a redelivery, recognised as a duplicate.
      await pub.publish(exchange, 'late.x', JSON.stringify({ data: 'here' }), { messageId: 'late-1' });
      await sub.waitFor((f) => f['push'] === 'pub', 'the publication');
      // The network drops (not a broker close): the link is re-made as well.
      proxy.switchTo(amqpPort);
      await until(() => statsOf(srv).connectionsLost >= 2, 'the drop to be seen', 10_000);
      await until(() => statsOf(srv).state === 'consuming', 'consuming again', 20_000);
      await pub.publish(exchange, 'late.x', JSON.stringify({ data: 'again' }), { messageId: 'late-2' });
      await sub.waitForCount((f) => f['push'] === 'pub', 2, 'the second publication');
      expect(sub.pubs().map((p) => p['data'])).toEqual(['here', 'again']);
      await sub.close();
    } finally {
      await srv.close();
      await proxy.close();
    }
  }, 60_000);

  describe.skipIf(skipBrokerClose)('when the broker closes the connection', () => {
    it('reconnects and goes on consuming, each message published once', async () => {
      const queue = uniqueName('reconnect');
      queues.push(queue);
      const srv = await startServer({
        amqp: amqpConfig({ queue, bindings: [{ exchange, routingKey: 'rc.#', channel: '' }] }),
      });
      try {
        const sub = await WsClient.subscribed(srv.wsUrl, 'rc.x');
        const total = 400;
        let sent = 0;
        const send = async (n: number): Promise<void> => {
          for (const end = sent + n; sent < end; sent++) {
            await pub.publish(exchange, 'rc.x', JSON.stringify({ data: sent }), { messageId: `rc-${sent}` });
          }
        };
        await send(100);
        await sub.waitForCount((f) => f['push'] === 'pub', 50, 'the first publications');
        const publishing = send(total - 100);
        expect(await closeConnectionsNamed(`herald ${srv.server.hub.nodeId}`)).toBe(1);
        await until(() => statsOf(srv).connectionsLost >= 1, 'the loss to be seen', 10_000);
        await publishing;
        await until(() => statsOf(srv).state === 'consuming', 'consuming again', 20_000);
        await sub.waitForCount((f) => f['push'] === 'pub', total, 'every publication', 20_000);
        const data = sub.pubs().map((p) => p['data'] as number);
        expect(new Set(data).size).toBe(total);
        expect(data.length).toBe(total);
        expect(statsOf(srv).lastError).toMatch(/CONNECTION_FORCED|closed/);
        await sub.close();
      } finally {
        await srv.close();
      }
    }, 60_000);
  });

  describe.skipIf(skipRedis)('10,000 messages with the node killed in the middle', () => {
    const prefix = testPrefix();
    const dir = tempDir('amqp-kill');
    afterAll(async () => {
      dir.remove();
      await dropPrefix(prefix);
    });

    it('every message reaches resuming subscribers exactly once', async () => {
      const queue = uniqueName('kill');
      queues.push(queue);
      const total = 10_000;
      const file = join(dir.path, 'herald.json');
      writeFileSync(
        file,
        JSON.stringify({
          engine: 'redis',
          redis: { urls: [REDIS_URL], prefix },
          amqp: { url: AMQP_URL, queue, bindings: [{ exchange, routingKey: 'k.#' }], prefetch: 100 },
          namespaces: { k: { historySize: 10_000, historyTtl: '10m' } },
          demos: false,
        }),
      );
      const port = await freePort();
      const args = ['--config', file, '--port', String(port)];
      let node = await startChildNode(args);
      const all = new ResumingClient(node.url, 'ws', 'k.**');
      const one = new ResumingClient(node.url, 'ws', 'k.c1');
      const others = [all, one];
      try {
        await Promise.all(others.map((c) => c.start()));
        const publishing = pub.publishMany(total, (i) => ({
          exchange,
          routingKey: `k.c${i % 4}`,
          body: JSON.stringify({ data: { n: i } }),
          options: { messageId: `k-${i}`, persistent: true },
        }));
        await all.until(() => all.offset >= total * 0.3, 30_000, 'a third of the messages');
        await node.kill();
        const atKill = all.offset;
        node = await startChildNode(args);
        await publishing;
        await all.reach(total, 60_000);
        await one.reach(total / 4, 30_000);
        expect(atKill).toBeLessThan(total);
        for (const c of others) expect(c.errors).toEqual([]);
        const ns = all.got.map((a) => (a.data as { n: number }).n);
        expect(ns.length).toBe(total);
        expect(new Set(ns).size).toBe(total);
        expect(one.got.map((a) => (a.data as { n: number }).n).every((n) => n % 4 === 1)).toBe(true);
        expect(all.subscribes).toBeGreaterThanOrEqual(2);
        // Nothing was published twice: the subtree's top offset is the number of messages.
        const h = await api(node.url, 'history', { channel: 'k.**', limit: 0 });
        expect(h.body.offset).toBe(total);
        const amqp = (await api(node.url, 'info', {})).body.nodes[0].amqp as AmqpIngestStats;
        // What the killed node had not acknowledged came again (some of it already published).
        expect(amqp.redelivered).toBeGreaterThan(0);
        console.info(
          `[amqp kill] killed at offset ${atKill}; the restarted node got ${amqp.redelivered} redeliveries, ${amqp.duplicates} of them already published`,
        );
        expect(await pub.ready(queue)).toBe(0);
        // Messages the killed node published, sent again by the backend with their ids: the
        // restarted node recognises them through the engine; only the sentinel is new.
        await pub.publishMany(100, (i) => ({
          exchange,
          routingKey: `k.c${i % 4}`,
          body: JSON.stringify({ data: { n: i } }),
          options: { messageId: `k-${i}` },
        }));
        await pub.publish(exchange, 'k.c0', JSON.stringify({ data: { n: -1 } }), { messageId: 'k-sentinel' });
        await all.reach(total + 1, 10_000);
        expect(all.got.length).toBe(total + 1);
        expect(all.got.at(-1)?.data).toEqual({ n: -1 });
        const after = (await api(node.url, 'info', {})).body.nodes[0].amqp as AmqpIngestStats;
        expect(after.duplicates - amqp.duplicates).toBe(100);
      } finally {
        await Promise.all(others.map((c) => c.stop()));
        await node.kill();
      }
    }, 120_000);
  });
});
