/**
 * `GET /api/ws`, the server API over a WebSocket: publish/answer/history, idempotency keys, the key
 * checked at the upgrade, bad frames answered with codes (and the connection kept), the frame size
 * limit, the in-flight bound (back-pressure, nothing refused), 10,000 publishes on one connection,
 * a connection that stops answering pings, and a shutdown that answers what runs before closing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { withTimeout } from '@herald/test-support';
import {
  api,
  API_KEY,
  refusedUpgrade,
  startServer,
  WsClient,
  type Frame,
  type TestServer,
} from '@herald/test-support/server';
import { MemoryEngine, type PublishOutcome, type PublishRequest } from '@herald/server';
import { API_SOCKET_MAX_IN_FLIGHT } from '../src/api/api-socket.js';

/** A raw client of /api/ws: every answer kept, requests matched by id. */
class ApiWs {
  readonly answers: Frame[] = [];
  /** Frames received (an answer, or an array of answers). */
  frames = 0;
  private nextId = 1;
  private readonly waiting = new Map<unknown, (f: Frame) => void>();
  private readonly watchers: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      this.frames++;
      const parsed = JSON.parse(data.toString('utf8')) as Frame | Frame[];
      for (const f of Array.isArray(parsed) ? parsed : [parsed]) {
        this.answers.push(f);
        this.waiting.get(f['id'])?.(f);
        this.waiting.delete(f['id']);
      }
      for (const w of this.watchers) w();
    });
  }

  static async connect(srv: TestServer, options: WebSocket.ClientOptions = {}, base = ''): Promise<ApiWs> {
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}${base}/api/ws`, {
      headers: { Authorization: `apikey ${API_KEY}` },
      ...options,
    });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }),
      5000,
      'api socket open',
    );
    return new ApiWs(ws);
  }

  /** Sends one request; resolves with its answer. */
  call(method: string, params?: unknown): Promise<Frame> {
    const id = this.nextId++;
    const answer = this.answerTo(id, `the answer to ${method} #${id}`);
    this.ws.send(JSON.stringify({ id, method, ...(params !== undefined ? { params } : {}) }));
    return answer;
  }

  /** Resolves with the answer whose id is `id` (one already received included). */
  answerTo(id: unknown, what = `the answer to #${String(id)}`): Promise<Frame> {
    const got = this.answers.find((f) => f['id'] === id);
    if (got !== undefined) return Promise.resolve(got);
    return withTimeout(new Promise<Frame>((resolve) => this.waiting.set(id, resolve)), 10_000, what);
  }

  /** Sends a frame as is (text, or binary when `text` is a Buffer). */
  raw(text: string | Buffer): void {
    this.ws.send(text, { binary: typeof text !== 'string' });
  }

  /** Resolves once `n` answers have come. */
  untilAnswers(n: number, timeoutMs = 20_000): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.answers.length >= n) resolve();
        };
        this.watchers.push(check);
        check();
      }),
      timeoutMs,
      `${n} answers (have ${this.answers.length})`,
    );
  }
}

/** Publications to channels under `gate.` wait until `open()`; counts publish calls as they reach it. */
class GatedEngine extends MemoryEngine {
  reached = 0;
  private waiters: Array<() => void> = [];
  private isOpen = false;
  private watch: (() => void) | undefined;

  override async publish(req: PublishRequest): Promise<PublishOutcome> {
    if (req.channel.startsWith('gate.') && !this.isOpen) {
      this.reached++;
      this.watch?.();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return super.publish(req);
  }

  /** Resolves once `n` gated publications have reached the engine. */
  untilReached(n: number): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve) => {
        this.watch = () => {
          if (this.reached >= n) resolve();
        };
        this.watch();
      }),
      10_000,
      `${n} gated publications at the engine (have ${this.reached})`,
    );
  }

  open(): void {
    this.isOpen = true;
    for (const w of this.waiters.splice(0)) w();
  }
}

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxApiBodySize: 100_000 },
    namespaces: { many: { historySize: 10_000 }, big: { historySize: 1000, maxMessageSize: 100_000 } },
  });
});
afterAll(() => srv.close());

describe('GET /api/ws', () => {
  it('publishes: answered with the position once stored, delivered, in history', async () => {
    const sub = await WsClient.subscribed(srv.wsUrl, 'aws.one');
    const c = await ApiWs.connect(srv);
    const a = await c.call('publish', { channel: 'aws.one', data: { text: 'hi' } });
    expect(a['error']).toBeUndefined();
    expect(a['result']).toMatchObject({ channel: 'aws.one', offset: 1, duplicate: false });
    expect(typeof a['result'].epoch).toBe('string');
    const pub = await sub.waitFor((f) => f['push'] === 'pub', 'the publication');
    expect(pub['data']).toEqual({ text: 'hi' });
    const h = await c.call('history', { channel: 'aws.one' });
    expect(h['result'].publications.map((p: Frame) => p['data'])).toEqual([{ text: 'hi' }]);
    // Every other method answers too, as over HTTP.
    const info = await c.call('info');
    expect(info['result'].nodes).toHaveLength(1);
    await sub.close();
    c.ws.close();
  });

  it('states its limits in the 101', async () => {
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/api/ws`, {
      headers: { Authorization: `apikey ${API_KEY}` },
    });
    ws.on('error', () => undefined);
    const headers = await withTimeout(
      new Promise<Record<string, unknown>>((resolve) => ws.once('upgrade', (res) => resolve(res.headers))),
      5000,
      'the 101',
    );
    expect(headers['herald-max-frame-bytes']).toBe('100000');
    expect(headers['herald-max-in-flight']).toBe(String(API_SOCKET_MAX_IN_FLIGHT));
    ws.close();
  });

  it('takes the key as Bearer too, and string ids', async () => {
    const c = await ApiWs.connect(srv, { headers: { Authorization: `Bearer ${API_KEY}` } });
    c.raw(JSON.stringify({ id: 'a-1', method: 'publish', params: { channel: 'aws.bearer', data: 1 } }));
    const a = await c.answerTo('a-1');
    expect(a['result']).toMatchObject({ channel: 'aws.bearer', offset: 1 });
    c.ws.close();
  });

  it('deduplicates by idempotency key, over the socket and across HTTP', async () => {
    const c = await ApiWs.connect(srv);
    const params = { channel: 'aws.idem', data: 'once', idempotencyKey: 'k-1' };
    const first = await c.call('publish', params);
    const second = await c.call('publish', params);
    expect(first['result']).toMatchObject({ offset: 1, duplicate: false });
    expect(second['result']).toMatchObject({ offset: 1, duplicate: true, epoch: first['result'].epoch });
    const viaHttp = await api(srv.url, 'publish', params);
    expect(viaHttp.body).toMatchObject({ offset: 1, duplicate: true });
    const h = await api(srv.url, 'history', { channel: 'aws.idem' });
    expect(h.body.publications).toHaveLength(1);
    c.ws.close();
  });

  it('refuses a missing or wrong key at the upgrade with 401 and a JSON body', async () => {
    const url = `${srv.url.replace('http', 'ws')}/api/ws`;
    const none = await refusedUpgrade(url);
    expect(none.status).toBe(401);
    expect(none.body['error'].code).toBe('HERALD_ERR_API_UNAUTHORIZED');
    expect(none.body['error'].message).toMatch(/apikey <key>/);
    const wrong = await refusedUpgrade(url, { headers: { Authorization: 'apikey nope' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body['error'].code).toBe('HERALD_ERR_API_UNAUTHORIZED');
    // A plain GET says it wants an upgrade.
    const plain = await fetch(`${srv.url}/api/ws`, { headers: { Authorization: `apikey ${API_KEY}` } });
    expect(plain.status).toBe(426);
    expect(((await plain.json()) as Frame)['error'].code).toBe('HERALD_ERR_API_BAD_REQUEST');
  });

  it('is served under a basePath', async () => {
    const s = await startServer({}, { basePath: '/rt' });
    try {
      const c = await ApiWs.connect(s, {}, '/rt');
      expect((await c.call('publish', { channel: 'aws.base', data: 1 }))['result']).toMatchObject({ offset: 1 });
      c.ws.close();
      // Outside the base path: not Herald's.
      const outside = new WebSocket(`${s.url.replace('http', 'ws')}/api/ws`, {
        headers: { Authorization: `apikey ${API_KEY}` },
      });
      outside.on('error', () => undefined);
      const status = await withTimeout(
        new Promise<number>((resolve) =>
          outside.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
        ),
        5000,
        'the upgrade outside the base path to be refused',
      );
      expect(status).toBe(404);
      outside.terminate();
    } finally {
      await s.close();
    }
  });

  it('answers bad frames with codes and keeps the connection', async () => {
    const c = await ApiWs.connect(srv);
    const cases: Array<[string, string]> = [
      ['{not json', 'HERALD_ERR_PROTOCOL_MALFORMED'],
      ['42', 'HERALD_ERR_PROTOCOL_MALFORMED'],
      ['[]', 'HERALD_ERR_PROTOCOL_MALFORMED'],
      ['{"method":"publish","params":{}}', 'HERALD_ERR_PROTOCOL_BAD_FIELD'],
      ['{"id":1.5,"method":"publish"}', 'HERALD_ERR_PROTOCOL_BAD_FIELD'],
      [`{"id":"${'x'.repeat(200)}","method":"info"}`, 'HERALD_ERR_PROTOCOL_BAD_FIELD'],
    ];
    for (const [text] of cases) c.raw(text);
    // Requests with an id are answered under it.
    c.raw('{"id":7,"method":"nosuch"}');
    c.raw('{"id":8,"method":"publish","params":[1]}');
    c.raw('{"id":9,"method":"publish","params":{"channel":"bad channel","data":1}}');
    c.raw('{"id":10,"method":"publish","params":{"channel":"aws.bad","data":1,"idempotencyKey":""}}');
    c.raw('{"id":11,"method":"publish","params":{"channel":"aws.bad"}}');
    c.raw(Buffer.from('{"id":12,"method":"publish","params":{"channel":"aws.bad","data":"binary"}}'));
    const sentinel = await c.call('publish', { channel: 'aws.bad', data: 'sentinel' });
    expect(sentinel['result']).toMatchObject({ channel: 'aws.bad' });
    const anonymous = c.answers.filter((f) => f['id'] === null).map((f) => f['error'].code);
    expect(anonymous).toEqual(cases.map(([, code]) => code));
    const code = async (id: number): Promise<string> => ((await c.answerTo(id))['error'] as Frame)?.['code'];
    expect(await code(7)).toBe('HERALD_ERR_API_NOT_FOUND');
    expect(await code(8)).toBe('HERALD_ERR_API_BAD_REQUEST');
    expect(await code(9)).toBe('HERALD_ERR_CHANNEL_INVALID');
    expect(await code(10)).toBe('HERALD_ERR_API_BAD_REQUEST');
    expect(await code(11)).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD'); // no "data", as over HTTP
    // A binary frame is read as UTF-8 JSON, like a text one.
    expect((await c.answerTo(12))['result']).toMatchObject({ channel: 'aws.bad' });
    c.ws.close();
  });

  it('runs a frame that holds an array of requests, in order', async () => {
    const c = await ApiWs.connect(srv);
    const reqs = Array.from({ length: 5 }, (_, i) => ({
      id: 100 + i,
      method: 'publish',
      params: { channel: 'aws.arr', data: i },
    }));
    c.raw(JSON.stringify(reqs));
    await c.untilAnswers(5);
    const offsets = await Promise.all(reqs.map(async (r) => (await c.answerTo(r.id))['result'].offset as number));
    expect(offsets).toEqual([1, 2, 3, 4, 5]);
    // Answers ready in the same turn of the event loop came in fewer frames than answers.
    expect(c.frames).toBeLessThan(5);
    c.raw(JSON.stringify(Array.from({ length: 1001 }, (_, i) => ({ id: i, method: 'info' }))));
    await c.untilAnswers(6);
    expect(c.answers[5]).toMatchObject({ id: null, error: { code: 'HERALD_ERR_PROTOCOL_MALFORMED' } });
    c.ws.close();
  });

  it('closes the connection with 1009 on a frame larger than limits.maxApiBodySize', async () => {
    const c = await ApiWs.connect(srv);
    c.raw(JSON.stringify({ id: 1, method: 'publish', params: { channel: 'aws.big', data: 'x'.repeat(100_001) } }));
    const closed = await withTimeout(c.closed, 5000, 'the close');
    expect(closed.code).toBe(1009);
    // The server is fine: a new connection publishes.
    const d = await ApiWs.connect(srv);
    expect((await d.call('publish', { channel: 'aws.big', data: 'small' }))['result']).toMatchObject({ offset: 1 });
    d.ws.close();
  });

  it('publishes 10,000 times over one connection: all answered, all in history, in order', async () => {
    const c = await ApiWs.connect(srv);
    const N = 10_000;
    for (let i = 1; i <= N; i++) {
      c.raw(`{"id":${i},"method":"publish","params":{"channel":"many.ten","data":${i},"idempotencyKey":"t${i}"}}`);
    }
    await c.untilAnswers(N, 60_000);
    const errors = c.answers.filter((f) => f['error'] !== undefined);
    expect(errors.slice(0, 3)).toEqual([]);
    const offsetOf = new Map(c.answers.map((f) => [f['id'] as number, f['result'].offset as number]));
    for (let i = 1; i <= N; i++) if (offsetOf.get(i) !== i) expect(offsetOf.get(i), `offset of #${i}`).toBe(i);
    // Fewer frames than answers: answers of one turn go out together.
    expect(c.frames).toBeLessThan(N);
    const h = await api(srv.url, 'history', { channel: 'many.ten', limit: N });
    expect(h.body.offset).toBe(N);
    const data = h.body.publications.map((p: Frame) => p['data']) as number[];
    expect(data).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    c.ws.close();
  }, 90_000);
});

describe('GET /api/ws: bounds', () => {
  it(`runs at most ${API_SOCKET_MAX_IN_FLIGHT} requests at once, and the rest after, none refused`, async () => {
    const engine = new GatedEngine();
    const s = await startServer({ namespaces: { gate: { historySize: 2000 } } }, { engine });
    try {
      const c = await ApiWs.connect(s);
      const N = API_SOCKET_MAX_IN_FLIGHT + 500;
      for (let i = 1; i <= N; i++) c.raw(`{"id":${i},"method":"publish","params":{"channel":"gate.a","data":${i}}}`);
      await engine.untilReached(API_SOCKET_MAX_IN_FLIGHT);
      // Every other request is read (or not) but waits: a sentinel proves nothing more ran.
      const info = await api(s.url, 'info', {});
      expect(info.status).toBe(200);
      expect(engine.reached).toBe(API_SOCKET_MAX_IN_FLIGHT);
      expect(c.answers).toEqual([]);
      engine.open();
      await c.untilAnswers(N);
      expect(c.answers.filter((f) => f['error'] !== undefined)).toEqual([]);
      const offsets = new Map(c.answers.map((f) => [f['id'] as number, f['result'].offset as number]));
      expect([...offsets.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      for (let i = 1; i <= N; i++) if (offsets.get(i) !== i) expect(offsets.get(i), `offset of #${i}`).toBe(i);
      c.ws.close();
    } finally {
      engine.open();
      await s.close();
    }
  }, 30_000);

  it('drops a connection that does not answer pings', async () => {
    const s = await startServer({ heartbeat: { pingInterval: 200, pingTimeout: 200 } });
    try {
      const silent = await ApiWs.connect(s, { autoPong: false });
      const talking = await ApiWs.connect(s);
      const closed = await withTimeout(silent.closed, 5000, 'the silent connection to be dropped');
      expect(closed.code).toBe(1006);
      // The one that answers pings is still served.
      expect((await talking.call('publish', { channel: 'aws.ping', data: 1 }))['result']).toMatchObject({ offset: 1 });
      talking.ws.close();
    } finally {
      await s.close();
    }
  });

  it('closes a connection that does not read its answers (3002), and keeps what it published', async () => {
    const s = await startServer({
      limits: { maxQueueBytes: 256 * 1024 },
      namespaces: { slow: { historySize: 100, maxMessageSize: 100_000 } },
    });
    try {
      const c = await ApiWs.connect(s);
      const data = 'y'.repeat(50_000);
      for (let i = 0; i < 20; i++)
        c.raw(JSON.stringify({ id: i, method: 'publish', params: { channel: 'slow.a', data } }));
      await c.untilAnswers(20);
      // Stop reading; each history answer is ~1 MB.
      (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      for (let i = 0; i < 200; i++)
        c.raw(JSON.stringify({ id: 100 + i, method: 'history', params: { channel: 'slow.a' } }));
      (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      const closed = await withTimeout(c.closed, 15_000, 'the slow connection to be closed');
      expect(closed.code).toBe(3002);
      const h = await api(s.url, 'history', { channel: 'slow.a', limit: 0 });
      expect(h.body.offset).toBe(20);
    } finally {
      await s.close();
    }
  }, 30_000);

  it('at shutdown answers the requests that run, refuses later ones, then closes with 3001', async () => {
    const engine = new GatedEngine();
    const s = await startServer({ namespaces: { gate: { historySize: 100 } } }, { engine });
    const c = await ApiWs.connect(s);
    try {
      for (let i = 1; i <= 5; i++) c.raw(`{"id":"g${i}","method":"publish","params":{"channel":"gate.s","data":${i}}}`);
      await engine.untilReached(5);
      const closing = s.close();
      const late = await c.call('publish', { channel: 'aws.late', data: 'late' });
      expect(late['error'].code).toBe('HERALD_ERR_SHUTTING_DOWN');
      engine.open();
      const closed = await withTimeout(c.closed, 5000, 'the close after the answers');
      expect(closed.code).toBe(3001);
      const answered = c.answers.filter((f) => String(f['id']).startsWith('g'));
      expect(answered.map((f) => f['result']?.offset).sort()).toEqual([1, 2, 3, 4, 5]);
      await closing;
    } finally {
      engine.open();
      await s.close();
    }
  });
});
