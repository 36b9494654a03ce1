/**
 * The subscriber link's own RESP2 handling, against a scripted fake server (no Redis needed):
 * replies cut anywhere across chunks; an unsubscribe that Redis sends by itself (a Cluster slot
 * moved) while a subscribe of another channel waits for its reply; a MOVED refusal; channels added
 * while connecting; everything subscribed again after a reconnect; a subscribe Redis does not
 * answer drops the connection after the command timeout.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { until } from '@herald/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/core/logger.js';
import { encodeCommand, RespError, RespReader, type RespValue } from '../src/engines/redis/resp.js';
import { SubscriberLink } from '../src/engines/redis/subscriber-link.js';

function bulk(s: string): string {
  return `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
}

function push(...parts: (string | number)[]): string {
  return `*${parts.length}\r\n${parts.map((p) => (typeof p === 'number' ? `:${p}\r\n` : bulk(p))).join('')}`;
}

/** A fake Redis: records commands, answers them with `answer` (or not, when it returns undefined). */
class FakeRedis {
  readonly commands: string[][] = [];
  readonly sockets: Socket[] = [];
  answer: (cmd: string[], socket: Socket) => string | undefined = (cmd) => defaultAnswer(cmd);
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeRedis> {
    const holder: { fake?: FakeRedis } = {};
    const server = createServer((socket) => holder.fake?.accept(socket));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    holder.fake = new FakeRedis(server, typeof addr === 'object' && addr !== null ? addr.port : 0);
    return holder.fake;
  }

  private accept(socket: Socket): void {
    this.sockets.push(socket);
    socket.on('error', () => undefined);
    const reader = new RespReader((v) => {
      const cmd = (v as string[]).map(String);
      this.commands.push(cmd);
      const out = this.answer(cmd, socket);
      if (out !== undefined) socket.write(out);
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
  }

  of(name: string): string[] {
    return this.commands.filter((c) => c[0]?.toLowerCase() === name).map((c) => c[1] as string);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function defaultAnswer(cmd: string[]): string {
  const name = (cmd[0] ?? '').toLowerCase();
  if (name === 'ssubscribe' || name === 'sunsubscribe') return push(name, cmd[1] ?? '', 1);
  return '+OK\r\n';
}

interface Events {
  subscribed: string[];
  dropped: string[];
  refused: [string, string][];
  messages: [string, string][];
  lost: number;
}

function link(port: number, commandTimeout = 2000): { link: SubscriberLink; events: Events } {
  const events: Events = { subscribed: [], dropped: [], refused: [], messages: [], lost: 0 };
  const l = new SubscriberLink({
    target: {
      host: '127.0.0.1',
      port,
      password: 'secret',
      connectionName: 'herald:test:sub',
      connectTimeout: 1000,
      commandTimeout,
      retryStrategy: () => 20,
    },
    mode: 'sharded',
    label: `fake ${port}`,
    logger: silentLogger,
    onMessage: (c, p) => events.messages.push([c, p]),
    onSubscribed: (_l, c) => events.subscribed.push(c),
    onDropped: (_l, c) => events.dropped.push(c),
    onRefused: (_l, c, err) => events.refused.push([c, err.message]),
    onLost: () => (events.lost += 1),
  });
  return { link: l, events };
}

describe('RESP reader', () => {
  it('reads replies cut at every byte, and a large bulk string in many chunks', () => {
    const wire = Buffer.from(
      '+OK\r\n-MOVED 12 127.0.0.1:7001\r\n:42\r\n$-1\r\n*-1\r\n' +
        push('smessage', 'a{x}', 'héllo\r\nworld') +
        push('sunsubscribe', 'b', 0) +
        bulk('x'.repeat(100_000)),
    );
    const want: RespValue[] = [
      'OK',
      new RespError('MOVED 12 127.0.0.1:7001'),
      42,
      null,
      null,
      ['smessage', 'a{x}', 'héllo\r\nworld'],
      ['sunsubscribe', 'b', 0],
      'x'.repeat(100_000),
    ];
    for (const size of [1, 2, 3, 7, 64, 4096, wire.length]) {
      const got: RespValue[] = [];
      const r = new RespReader((v) => got.push(v));
      for (let i = 0; i < wire.length; i += size) r.push(wire.subarray(i, i + size));
      expect(got.map((v) => (v instanceof RespError ? `ERR:${v.message}` : v))).toEqual(
        want.map((v) => (v instanceof RespError ? `ERR:${v.message}` : v)),
      );
    }
  });

  it('encodes a command as an array of bulk strings', () => {
    expect(encodeCommand(['ssubscribe', 'é']).toString()).toBe('*2\r\n$10\r\nssubscribe\r\n$2\r\né\r\n');
  });
});

describe('subscriber link', () => {
  let fake: FakeRedis;
  const links: SubscriberLink[] = [];
  afterEach(async () => {
    for (const l of links.splice(0)) l.close();
    await fake?.close();
  });

  it('authenticates, names itself, subscribes what was added while connecting, and delivers messages', async () => {
    fake = await FakeRedis.start();
    const { link: l, events } = link(fake.port);
    links.push(l);
    const started = l.start();
    l.add('a{1}');
    l.add('b{2}');
    await started;
    await until(() => events.subscribed.length === 2, 'both confirmed');
    expect(l.ready()).toBe(true);
    expect(fake.commands.slice(0, 2)).toEqual([
      ['auth', 'secret'],
      ['client', 'setname', 'herald:test:sub'],
    ]);
    expect(fake.of('ssubscribe')).toEqual(['a{1}', 'b{2}']);
    fake.sockets[0]?.write(push('smessage', 'a{1}', 'payload'));
    await until(() => events.messages.length === 1, 'a message');
    expect(events.messages).toEqual([['a{1}', 'payload']]);
  });

  it('tells an unsubscribe Redis sent by itself from the reply to its own commands', async () => {
    fake = await FakeRedis.start();
    const { link: l, events } = link(fake.port);
    links.push(l);
    await l.start();
    l.add('a{1}');
    await until(() => events.subscribed.length === 1, 'a confirmed');
    // The slot of a{1} moves away while the subscribe of b{2} waits for its reply: Redis sends the
    // unsubscribe push first, then the reply.
    fake.answer = (cmd, socket) => {
      if (cmd[0] === 'ssubscribe' && cmd[1] === 'b{2}') {
        socket.write(push('sunsubscribe', 'a{1}', 0));
        return push('ssubscribe', 'b{2}', 1);
      }
      return defaultAnswer(cmd);
    };
    l.add('b{2}');
    await until(() => events.subscribed.length === 2, 'b confirmed');
    expect(events.dropped).toEqual(['a{1}']);
    expect([...l.channels]).toEqual(['b{2}']);
    expect(l.holds('b{2}')).toBe(true);
    expect(l.holds('a{1}')).toBe(false);
    // The link's own unsubscribe is a reply, not a drop.
    l.remove('b{2}');
    await until(() => fake.of('sunsubscribe').length === 1, 'the unsubscribe');
    // A barrier: replies come in order, so once a later subscribe is confirmed, the link has read
    // the reply to its unsubscribe.
    l.add('z{9}');
    await until(() => events.subscribed.includes('z{9}'), 'a later subscribe confirmed');
    expect(events.dropped).toEqual(['a{1}']);
  });

  it('reports a MOVED refusal and forgets the channel', async () => {
    fake = await FakeRedis.start();
    fake.answer = (cmd) =>
      cmd[0] === 'ssubscribe' && cmd[1] === 'm{3}' ? '-MOVED 9 127.0.0.1:7009\r\n' : defaultAnswer(cmd);
    const { link: l, events } = link(fake.port);
    links.push(l);
    await l.start();
    l.add('m{3}');
    l.add('ok{4}');
    await until(() => events.subscribed.length === 1 && events.refused.length === 1, 'answers');
    expect(events.refused).toEqual([['m{3}', 'MOVED 9 127.0.0.1:7009']]);
    expect(events.subscribed).toEqual(['ok{4}']);
    expect([...l.channels]).toEqual(['ok{4}']);
  });

  it('confirms a channel only once its last command in flight is answered', async () => {
    fake = await FakeRedis.start();
    const { link: l, events } = link(fake.port);
    links.push(l);
    await l.start();
    l.add('c{5}');
    l.remove('c{5}');
    l.add('c{5}');
    await until(() => fake.of('ssubscribe').length === 2 && events.subscribed.length === 1, 'the answers');
    // A barrier: once a later subscribe is confirmed, every earlier reply has been read.
    l.add('d{6}');
    await until(() => events.subscribed.includes('d{6}'), 'a later subscribe confirmed');
    expect(fake.commands.slice(2).map((c) => c[0])).toEqual(['ssubscribe', 'sunsubscribe', 'ssubscribe', 'ssubscribe']);
    expect(events.subscribed).toEqual(['c{5}', 'd{6}']);
    expect(l.holds('c{5}')).toBe(true);
  });

  it('subscribes everything again after a reconnect, and reports each confirmation', async () => {
    fake = await FakeRedis.start();
    const { link: l, events } = link(fake.port);
    links.push(l);
    await l.start();
    for (const c of ['a{1}', 'b{2}', 'c{3}']) l.add(c);
    await until(() => events.subscribed.length === 3, 'three confirmed');
    fake.sockets[0]?.destroy();
    await until(() => events.lost === 1, 'the loss');
    expect(l.ready()).toBe(false);
    await until(() => events.subscribed.length === 6 && l.ready(), 'resubscribed');
    expect(fake.of('ssubscribe')).toEqual(['a{1}', 'b{2}', 'c{3}', 'a{1}', 'b{2}', 'c{3}']);
    expect(fake.commands.filter((c) => c[0] === 'auth')).toHaveLength(2);
  });

  it('drops a connection on which Redis does not answer a subscribe within the command timeout', async () => {
    fake = await FakeRedis.start();
    let silent = true;
    fake.answer = (cmd) => (cmd[0] === 'ssubscribe' && silent ? undefined : defaultAnswer(cmd));
    const { link: l, events } = link(fake.port, 200);
    links.push(l);
    await l.start();
    l.add('h{1}');
    await until(() => events.lost === 1, 'the link to give up on the silent connection', 2000);
    silent = false;
    await until(() => events.subscribed.length === 1, 'subscribed on the next connection');
    expect(fake.sockets.length).toBe(2);
  });
});
