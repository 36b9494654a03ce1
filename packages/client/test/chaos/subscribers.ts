/**
 * The chaos suite's subscribers. Each is one logical subscriber with a few streams, that records
 * per stream what it was given and when it was told that publications may be missing:
 * - `SdkSubscriber`: the real SDK (`@herald/client`) forced onto one transport (websocket,
 *   http-stream, sse, long-poll). Optionally slow: its WebSocket is paused, or its HTTP response
 *   bodies are not read, for stretches of time (the server's bounded queue must close it with
 *   3002 and the SDK recover from its cursors). `replace()` closes the client and opens a new one
 *   that resubscribes with the saved cursors (a page reload).
 * - `RawSseSubscriber`: no SDK, what a browser's `EventSource` does: `GET /sse`, reconnect with the
 *   last event id as `Last-Event-ID`.
 * - `RawPollSubscriber`: no SDK, a loop of plain `GET /poll` with the answer's cursor.
 * The raw ones also show what the server sends before any client-side filtering (the SDK drops a
 * publication at or before its cursor).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { Herald, type Subscription, type TransportName } from '@herald/client';
import { ErrorCodes } from '@herald/protocol';
import type { StreamEvent, StreamLog } from './history-checker.js';

/** `CHAOS_DEBUG=1`: log what subscribers do, with times. */
const debug =
  process.env['CHAOS_DEBUG'] === '1'
    ? (text: string): void => console.log(`${Date.now() % 100_000} ${text}`)
    : undefined;

export interface Subscriber {
  readonly name: string;
  readonly transport: string;
  readonly logs: readonly StreamLog[];
  /** Close codes / causes of lost connections, counted. */
  readonly drops: Map<string, number>;
  /** Findings that are not about publications (a refused stream, a `reconnect: false`). */
  readonly problems: string[];
  /** Resolves when every stream has its starting position. */
  ready(ms: number): Promise<void>;
  /** Drops the connection from the client's side; the subscriber comes back from its cursors. */
  drop(): void;
  /** Where it stands (connection, streams, cursors), for failure messages. */
  status(): string;
  close(): void;
}

/** Calls every listener after each event, so waits can re-check their condition. */
export class Pulse {
  private readonly listeners = new Set<() => void>();
  beat(): void {
    for (const l of [...this.listeners]) l();
  }
  /** Resolves when `cond()` holds (checked now and after each beat); rejects after `ms`. */
  until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(recheck);
        this.listeners.delete(check);
      };
      const check = (): void => {
        if (!cond()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what()}`));
      }, ms);
      // Conditions may also depend on time-free state changed outside a beat (cheap, rare).
      const recheck = setInterval(check, 250);
      this.listeners.add(check);
    });
  }
}

interface MutableLog extends StreamLog {
  events: StreamEvent[];
}

abstract class BaseSubscriber implements Subscriber {
  readonly logs: MutableLog[];
  readonly drops = new Map<string, number>();
  readonly problems: string[] = [];
  protected closed = false;

  constructor(
    readonly name: string,
    readonly transport: string,
    readonly streams: readonly string[],
    protected readonly pulse: Pulse,
  ) {
    this.logs = streams.map((stream) => ({ subscriber: name, transport, stream, events: [] }));
  }

  protected log(stream: string): MutableLog {
    const l = this.logs.find((x) => x.stream === stream);
    if (l === undefined) throw new Error(`${this.name}: no stream ${stream}`);
    return l;
  }

  protected pub(stream: string, channel: string, data: unknown, epoch: string, offset: number): void {
    const n = (data as { n?: unknown } | null)?.n;
    if (typeof n !== 'number') {
      this.problem(`publication without a number on ${stream}: ${JSON.stringify(data)?.slice(0, 80)}`);
      return;
    }
    this.log(stream).events.push({ kind: 'pub', channel, n, epoch, offset, at: Date.now() });
    this.pulse.beat();
  }

  protected hole(stream: string, detail: string): void {
    this.log(stream).events.push({ kind: 'hole', at: Date.now(), detail });
    this.pulse.beat();
  }

  protected dropped(cause: string): void {
    this.drops.set(cause, (this.drops.get(cause) ?? 0) + 1);
  }

  /**
   * The server ended or refused a stream. A transient code (the engine unavailable, a node
   * unreachable: 5xx) is a temporary refusal the client retries (the cursor keeps the stream's
   * position); any other is a problem.
   */
  protected refused(stream: string, code: unknown, text: string): void {
    const info =
      typeof code === 'string' ? (ErrorCodes as Record<string, { status?: number } | undefined>)[code] : undefined;
    if ((info?.status ?? 0) >= 500) this.dropped(`refused ${code as string}`);
    else this.problem(`${stream} refused or ended: ${text.slice(0, 200)}`);
  }

  protected problem(text: string): void {
    if (this.problems.length < 10) this.problems.push(`${this.name}: ${text}`);
  }

  abstract ready(ms: number): Promise<void>;
  abstract drop(): void;
  abstract status(): string;
  close(): void {
    this.closed = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Slowness

/** Stalls a client's reading for `stallMs`, then lets it read for `freeMs`, over and over. */
export class Slowness {
  private stalled = false;
  private waiters: (() => void)[] = [];
  private readonly sockets = new Set<WebSocket>();
  private timer: NodeJS.Timeout | undefined;
  stalls = 0;

  constructor(
    private readonly stallMs: number,
    private readonly freeMs: number,
  ) {}

  start(): void {
    const phase = (): void => {
      this.stalled = !this.stalled;
      if (this.stalled) {
        this.stalls += 1;
        for (const ws of this.sockets) ws.pause();
      } else {
        for (const ws of this.sockets) ws.resume();
        for (const w of this.waiters.splice(0)) w();
      }
      this.timer = setTimeout(phase, this.stalled ? this.stallMs : this.freeMs);
    };
    this.timer = setTimeout(phase, 500 + 500 * Math.random());
  }

  stop(): void {
    clearTimeout(this.timer);
    this.stalled = false;
    for (const ws of this.sockets) ws.resume();
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when reading is allowed. */
  gate(): Promise<void> {
    return this.stalled ? new Promise((r) => this.waiters.push(r)) : Promise.resolve();
  }

  /** A WebSocket class for the SDK whose sockets stop reading while stalled. */
  webSocket(): new (url: string) => WebSocket {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the class below needs this instance
    const slow = this;
    return class SlowWebSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        this.once('open', () => {
          slow.sockets.add(this);
          if (slow.stalled) this.pause();
        });
        this.once('close', () => slow.sockets.delete(this));
      }
    };
  }

  /** A `fetch` for the SDK whose streamed response bodies are not read while stalled. */
  fetch(): typeof fetch {
    return async (input, init) => {
      const res = await fetch(input, init);
      if (res.body === null) return res;
      const reader = res.body.getReader();
      const body = new ReadableStream<Uint8Array>(
        {
          pull: async (controller) => {
            await this.gate();
            const { value, done } = await reader.read().catch((err: unknown) => {
              controller.error(err);
              return { value: undefined, done: true };
            });
            if (done) controller.close();
            else if (value !== undefined) controller.enqueue(value);
          },
          cancel: (reason) => reader.cancel(reason),
        },
        { highWaterMark: 0 },
      );
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The SDK

export interface SdkOptions {
  slow?: Slowness;
}

export class SdkSubscriber extends BaseSubscriber {
  private herald: Herald | undefined;
  private subs = new Map<string, Subscription>();
  /** Clients replaced (closed and opened again from the cursors). */
  replaced = 0;

  constructor(
    name: string,
    private readonly url: string,
    private readonly sdkTransport: TransportName,
    streams: readonly string[],
    pulse: Pulse,
    private readonly opts: SdkOptions = {},
  ) {
    super(name, opts.slow === undefined ? sdkTransport : `${sdkTransport} slow`, streams, pulse);
    this.open(new Map());
  }

  /** The client id the server gave the current connection. */
  get clientId(): string | undefined {
    return this.herald?.client;
  }

  private open(since: Map<string, { epoch: string; offset: number }>): void {
    const h = new Herald(this.url, {
      transports: [this.sdkTransport],
      // A slow client's liveness check (2 × ping interval + timeout without a byte) must outlast its stalls.
      timeout: this.opts.slow === undefined ? 3000 : 10_000,
      connectTimeout: 3000,
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
      pollTimeout: 5000,
      ...(this.opts.slow === undefined
        ? {}
        : { WebSocket: this.opts.slow.webSocket() as never, fetch: this.opts.slow.fetch() }),
    });
    this.herald = h;
    h.on('state', (s) => {
      debug?.(`${this.name} state ${JSON.stringify(s)}`);
      if (s.prev === 'connected' && s.state !== 'connected')
        this.dropped(s.code === undefined ? s.reason : String(s.code));
    });
    // A failed connect attempt while the fault lasts is reported (an `error` while still
    // `connecting`, with its cause) and retried: expected here. Any other error is a problem.
    h.on('error', (err) => {
      if (h.state === 'connecting') debug?.(`${this.name} attempt failed: ${String(err)}`);
      else this.problem(`client error: ${String(err)}`);
    });
    this.subs = new Map();
    for (const stream of this.streams) {
      const cursor = since.get(stream);
      const sub = h.subscribe(stream, cursor === undefined ? {} : { since: cursor });
      sub.on('publication', (p) => {
        if (this.herald === h) this.pub(stream, p.channel, p.data, p.epoch, p.offset);
      });
      sub.on('unrecovered', (u) => {
        if (this.herald === h)
          this.hole(
            stream,
            `unrecovered ${u.previous.epoch}:${u.previous.offset} → ${u.position.epoch}:${u.position.offset}`,
          );
      });
      sub.on('error', (err) => this.problem(`${stream} ended: ${err.code} ${err.message}`));
      if (debug !== undefined) {
        sub.on('subscribed', (e) => debug(`${this.name} ${stream} subscribed ${JSON.stringify(e)}`));
        sub.on('state', (e) => debug(`${this.name} ${stream} state ${JSON.stringify(e)}`));
      }
      this.subs.set(stream, sub);
    }
  }

  async ready(ms: number): Promise<void> {
    const signal = AbortSignal.timeout(ms);
    await Promise.all([...this.subs.values()].map((s) => s.ready({ signal })));
  }

  /** Closes the client and opens a new one that resubscribes from the cursors (a page reload). */
  replace(): void {
    if (this.closed) return;
    const since = new Map<string, { epoch: string; offset: number }>();
    for (const [stream, sub] of this.subs) if (sub.cursor !== undefined) since.set(stream, sub.cursor);
    this.herald?.close();
    this.replaced += 1;
    this.dropped('replaced');
    this.open(since);
  }

  drop(): void {
    this.replace();
  }

  status(): string {
    const h = this.herald;
    const subs = [...this.subs].map(([k, sub]) => `${k}=${sub.state}@${sub.cursor?.epoch}:${sub.cursor?.offset}`);
    return `${this.name}: client ${h?.state} ${h?.transport ?? ''} ${h?.client ?? ''}; ${subs.join(' ')}`;
  }

  /** Whether every stream is subscribed now. */
  get live(): boolean {
    return [...this.subs.values()].every((s) => s.state === 'subscribed');
  }

  override close(): void {
    super.close();
    this.herald?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Raw SSE (what EventSource does)

export class RawSseSubscriber extends BaseSubscriber {
  private lastId: string | undefined;
  private ctrl: AbortController | undefined;
  private readonly started = new Set<string>();
  private readonly loop: Promise<void>;

  constructor(
    name: string,
    private readonly url: string,
    streams: readonly string[],
    pulse: Pulse,
    private readonly idleMs: number,
  ) {
    super(name, 'raw-sse', streams, pulse);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      let retry = 200;
      try {
        retry = await this.connect(ctrl);
      } catch (err) {
        if (this.closed) return;
        const e = err as Error & { cause?: { code?: string } };
        this.dropped(e.name === 'AbortError' ? 'aborted' : (e.cause?.code ?? e.message.slice(0, 40)));
      }
      await sleep(Math.min(retry, 1000));
    }
  }

  /** One response: reads events until it ends; returns how long to wait before the next. */
  private async connect(ctrl: AbortController): Promise<number> {
    const q = this.streams.map((s) => `channel=${encodeURIComponent(s)}`).join('&');
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (this.lastId !== undefined && this.lastId !== '') headers['Last-Event-ID'] = this.lastId;
    const opening = setTimeout(() => {
      this.dropped('no answer');
      ctrl.abort();
    }, this.idleMs);
    const res = await fetch(`${this.url}/sse?${q}`, { headers, signal: ctrl.signal }).finally(() =>
      clearTimeout(opening),
    );
    if (res.status !== 200 || res.body === null) {
      this.dropped(`http ${res.status}`);
      await res.arrayBuffer().catch(() => undefined);
      return 300;
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let idle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        this.dropped('idle');
        ctrl.abort();
      }, this.idleMs);
    };
    arm();
    let buf = '';
    let event = '';
    let data: string[] = [];
    let id: string | undefined;
    let retry = 200;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          this.dropped('ended');
          return retry;
        }
        arm();
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (id !== undefined) this.lastId = id;
            if (data.length > 0) {
              const r = this.dispatch(event === '' ? 'message' : event, data.join('\n'));
              if (r !== undefined) retry = r;
            }
            event = '';
            data = [];
            id = undefined;
            continue;
          }
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          let val = colon === -1 ? '' : line.slice(colon + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
          else if (field === 'id' && !val.includes('\0')) id = val;
        }
      }
    } finally {
      clearTimeout(idle);
      ctrl.abort();
    }
  }

  /** Handles one event; returns a retry delay when the server asks to come back later. */
  private dispatch(event: string, text: string): number | undefined {
    const body = JSON.parse(text) as Record<string, any>;
    switch (event) {
      case 'message':
        this.pub(body['stream'] as string, body['channel'] as string, body['data'], body['epoch'], body['offset']);
        return undefined;
      case 'subscribed': {
        const stream = body['stream'] as string;
        if (body['recovered'] === false && this.started.has(stream))
          this.hole(stream, `recovered: false → ${body['epoch']}:${body['offset']}`);
        this.started.add(stream);
        this.pulse.beat();
        return undefined;
      }
      case 'unsubscribed':
        this.refused(body['stream'] as string, body['code'], text);
        return undefined;
      case 'disconnect':
        this.dropped(String(body['code']));
        if (body['reconnect'] === false) this.problem(`told not to reconnect: ${text.slice(0, 200)}`);
        return typeof body['retryAfterMs'] === 'number' ? (body['retryAfterMs'] as number) : undefined;
      default:
        return undefined;
    }
  }

  async ready(ms: number): Promise<void> {
    await this.pulse.until(
      () => this.streams.every((s) => this.started.has(s)),
      ms,
      () => `${this.name} to subscribe`,
    );
  }

  drop(): void {
    this.ctrl?.abort();
  }

  status(): string {
    return `${this.name}: last id ${this.lastId}`;
  }

  override close(): void {
    super.close();
    this.ctrl?.abort();
    void this.loop;
  }
}

// ---------------------------------------------------------------------------------------------
// Raw long-polling

export class RawPollSubscriber extends BaseSubscriber {
  private cursor: string | undefined;
  private session: string | undefined;
  private ctrl: AbortController | undefined;
  private readonly loop: Promise<void>;

  constructor(
    name: string,
    private readonly url: () => string,
    streams: readonly string[],
    pulse: Pulse,
    private readonly holdSeconds: number,
  ) {
    super(name, 'raw-poll', streams, pulse);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      const q = new URLSearchParams();
      for (const s of this.streams) q.append('channel', s);
      if (this.cursor !== undefined) q.set('cursor', this.cursor);
      if (this.session !== undefined) q.set('session', this.session);
      q.set('timeout', String(this.holdSeconds));
      let wait = 0;
      // One controller for both the drop and the timeout (signals made by AbortSignal.any can be
      // collected before they fire on Node 20).
      const timer = setTimeout(
        () => ctrl.abort(new DOMException('poll timed out', 'TimeoutError')),
        (this.holdSeconds + 5) * 1000,
      );
      try {
        debug?.(`${this.name} poll ${q.get('cursor')}`);
        const res = await fetch(`${this.url()}/poll?${q}`, { signal: ctrl.signal });
        const answer = (await res.json()) as Record<string, any>;
        if (res.status !== 200) {
          this.dropped(`http ${res.status} ${answer['error']?.code ?? ''}`);
          wait = 200;
        } else {
          wait = this.answer(answer);
        }
      } catch (err) {
        if (this.closed) return;
        const e = err as Error & { cause?: { code?: string } };
        this.dropped(e.name === 'AbortError' || e.name === 'TimeoutError' ? e.name : (e.cause?.code ?? e.name));
        debug?.(`${this.name} poll failed: ${e.name} ${e.message}`);
        wait = 100;
      } finally {
        clearTimeout(timer);
      }
      if (wait > 0) await sleep(Math.min(wait, 1000));
    }
  }

  private lastAnswer = '';

  private answer(a: Record<string, any>): number {
    this.lastAnswer = JSON.stringify({
      ...a,
      publications: (a['publications'] as unknown[] | undefined)?.length,
    }).slice(0, 400);
    debug?.(`${this.name} answer ${this.lastAnswer}`);
    const hadCursor = this.cursor !== undefined;
    let refused = false;
    for (const [stream, s] of Object.entries((a['streams'] ?? {}) as Record<string, Record<string, any>>)) {
      if (s['error'] !== undefined) {
        refused = true;
        this.refused(stream, s['error']['code'], JSON.stringify(s['error']));
      } else if (s['recovered'] === false && hadCursor)
        this.hole(stream, `recovered: false → ${s['epoch']}:${s['offset']}`);
    }
    for (const p of (a['publications'] ?? []) as Record<string, any>[])
      this.pub(p['stream'], p['channel'], p['data'], p['epoch'], p['offset']);
    if (typeof a['cursor'] === 'string') this.cursor = a['cursor'];
    if (typeof a['session'] === 'string') this.session = a['session'];
    this.pulse.beat();
    const d = a['disconnect'] as Record<string, any> | undefined;
    if (d !== undefined) {
      this.dropped(String(d['code']));
      if (d['reconnect'] === false) this.problem(`told not to reconnect: ${JSON.stringify(d)}`);
      return typeof d['retryAfterMs'] === 'number' ? (d['retryAfterMs'] as number) : 100;
    }
    // A stream refused for now: poll again (the cursor keeps its position) after a pause.
    return refused ? 200 : 0;
  }

  async ready(ms: number): Promise<void> {
    await this.pulse.until(
      () => this.cursor !== undefined && this.streams.every((s) => this.cursor?.includes(`${s};`) === true),
      ms,
      () => `${this.name} to get its first cursor`,
    );
  }

  drop(): void {
    this.ctrl?.abort();
  }

  status(): string {
    return `${this.name}: cursor ${this.cursor} last answer ${this.lastAnswer}`;
  }

  override close(): void {
    super.close();
    this.ctrl?.abort();
    void this.loop;
  }
}
