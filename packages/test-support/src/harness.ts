/**
 * Test support: a Herald server on an ephemeral port, and a raw-protocol WebSocket client that
 * awaits replies and pushes with timeouts that fail the test.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import WebSocket from 'ws';
import {
  DEFAULT_CONFIG,
  HeraldServer,
  type HeraldConfig,
  type HeraldServerOptions,
  type NamespaceOptions,
} from '@herald/server';
import { withTimeout } from './wait.js';

export const API_KEY = 'test-api-key-0123456789';

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export interface TestConfigInput extends Omit<DeepPartial<HeraldConfig>, 'namespaces'> {
  namespaces?: Record<string, Partial<NamespaceOptions>>;
}

export function testConfig(over: TestConfigInput = {}): HeraldConfig {
  const base = structuredClone(DEFAULT_CONFIG) as HeraldConfig;
  const def = { ...base.namespaces['default']!, ...(over.namespaces?.['default'] ?? {}) };
  const namespaces: Record<string, NamespaceOptions> = { default: def };
  for (const [name, ns] of Object.entries(over.namespaces ?? {})) {
    if (name !== 'default') namespaces[name] = { ...def, ...ns };
  }
  return {
    ...base,
    host: '127.0.0.1',
    port: 0,
    apiKeys: [API_KEY],
    logLevel: 'silent',
    ...(over as Partial<HeraldConfig>),
    limits: { ...base.limits, ...(over.limits ?? {}) },
    heartbeat: { ...base.heartbeat, ...(over.heartbeat ?? {}) },
    shutdown: { ...base.shutdown, ...(over.shutdown ?? {}) },
    transports: { ...base.transports, ...(over.transports ?? {}) },
    http: { ...base.http, ...(over.http ?? {}) },
    admin: { ...base.admin, ...(over.admin ?? {}) },
    auth: {
      ...base.auth,
      ...((over.auth ?? {}) as Partial<HeraldConfig['auth']>),
      hooks: { ...base.auth.hooks, ...(over.auth?.hooks ?? {}) },
    },
    namespaces,
  };
}

export interface TestServer {
  server: HeraldServer;
  url: string;
  wsUrl: string;
  close(): Promise<void>;
}

/** `clock`: e.g. a fake one that a test advances (tokens are still verified against the system clock). */
export type TestServerOptions = HeraldServerOptions;

export async function startServer(over: TestConfigInput = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  const server = new HeraldServer(testConfig(over), opts);
  const addr = await server.listen();
  const url = `http://127.0.0.1:${addr.port}`;
  return { server, url, wsUrl: `ws://127.0.0.1:${addr.port}/ws`, close: () => server.close() };
}

/** Calls the server API; returns status and parsed JSON body. */
export async function api(
  base: string,
  method: string,
  body: unknown,
  init: { key?: string | null; headers?: Record<string, string>; raw?: string; httpMethod?: string } = {},
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(init.headers ?? {}) };
  const key = init.key === undefined ? API_KEY : init.key;
  if (key !== null) headers['Authorization'] = `apikey ${key}`;
  const res = await fetch(`${base}/api/${method}`, {
    method: init.httpMethod ?? 'POST',
    headers,
    ...(init.httpMethod === 'GET' ? {} : { body: init.raw ?? JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

export type Frame = Record<string, any>;

interface Waiter {
  match: (f: Frame) => boolean;
  resolve: (f: Frame) => void;
}

/** A raw-protocol client: every frame received is kept in `frames`, in order. */
export class WsClient {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  closeCode: number | undefined;
  closeReason = '';
  private nextId = 1;
  private waiters: Waiter[] = [];
  private readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve({ code, reason: this.closeReason });
      });
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (line === '') continue;
        const f = JSON.parse(line) as Frame;
        this.frames.push(f);
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(f)) return true;
          w.resolve(f);
          return false;
        });
      }
    });
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const c = new WsClient(url, options);
    await withTimeout(c.opened, 5000, 'websocket open');
    await c.waitFor((f) => f['push'] === 'connected', 'connected push');
    return c;
  }

  /** Connects and subscribes to each channel in turn; throws when a subscribe is refused. */
  static async subscribed(url: string, ...channels: string[]): Promise<WsClient> {
    const c = await WsClient.connect(url);
    for (const channel of channels) {
      const r = await c.request({ cmd: 'subscribe', channel });
      if (r['result'] === undefined) throw new Error(`subscribe ${channel} refused: ${JSON.stringify(r['error'])}`);
    }
    return c;
  }

  get clientId(): string {
    return this.frames.find((f) => f['push'] === 'connected')?.['client'] as string;
  }

  /** Waits for the first frame (already received or future) that matches. */
  waitFor(match: (f: Frame) => boolean, what: string, ms = 5000): Promise<Frame> {
    const have = this.frames.find(match);
    if (have !== undefined) return Promise.resolve(have);
    return withTimeout(new Promise<Frame>((resolve) => this.waiters.push({ match, resolve })), ms, what);
  }

  /** Waits until `count` frames match. */
  async waitForCount(match: (f: Frame) => boolean, count: number, what: string, ms = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.frames.filter(match);
      if (got.length >= count) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${count} × ${what} (have ${got.length})`);
      const seen = new Set(got);
      await withTimeout(
        new Promise<Frame>((resolve) => this.waiters.push({ match: (f) => match(f) && !seen.has(f), resolve })),
        left,
        `${count} × ${what} (have ${got.length})`,
      );
    }
  }

  sendRaw(text: string | Buffer, binary = false): void {
    this.ws.send(text, { binary });
  }

  /** Sends a command (id assigned) and resolves with its reply frame. */
  request(cmd: Frame, ms = 5000): Promise<Frame> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, ...cmd }));
    return this.waitFor((f) => f['id'] === id, `reply to ${String(cmd['cmd'])} #${id}`, ms);
  }

  pubs(stream?: string): Frame[] {
    return this.frames.filter((f) => f['push'] === 'pub' && (stream === undefined || f['stream'] === stream));
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await withTimeout(this.closed, 5000, 'websocket close');
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export interface Refused {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Frame;
}

/** Opens a WebSocket that the server must refuse; resolves with the HTTP answer to the upgrade. */
export function refusedUpgrade(url: string, options: WebSocket.ClientOptions = {}): Promise<Refused> {
  const ws = new WebSocket(url, options);
  ws.on('error', () => undefined);
  return withTimeout(
    new Promise<Refused>((resolve, reject) => {
      ws.once('open', () => {
        ws.terminate();
        reject(new Error('the upgrade was accepted'));
      });
      ws.once('unexpected-response', (req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Frame });
        });
      });
    }),
    5000,
    'the upgrade to be refused',
  );
}

/** An HTTP/2 client session to `url` (h2c or TLS), once connected. */
export function connectH2(url: string, options: http2.SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  return withTimeout(
    new Promise<ClientHttp2Session>((resolve, reject) => {
      const session = http2.connect(url, options);
      session.once('connect', () => resolve(session));
      session.once('error', reject);
    }),
    5000,
    `HTTP/2 connection to ${url}`,
  );
}
