/**
 * A scripted in-memory server behind a fake WebSocket constructor (the `WebSocket` option), for
 * what a real server cannot be made to do on cue: expire tokens, stay silent, send duplicates.
 * It speaks the JSON protocol: `connected` on open, answers `ping` and `subscribe` (with the
 * position it holds per stream), and refuses commands it does not know, like the real server.
 */
import type { WebSocketLike } from '../../src/index.js';

type Frame = Record<string, any>;

export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  /** Every command received, in order, with the URL of its connection. */
  readonly commands: { url: string; frame: Frame }[] = [];
  pingInterval = 25_000;
  /** Answer `ping` commands (false: a silent, dead-looking server). */
  answerPings = true;
  /** Known commands besides the protocol's (e.g. `refresh`). */
  extraCommands = new Set<string>();
  /** Per stream: epoch and top offset. */
  readonly streams = new Map<string, { epoch: string; offset: number }>();
  /** Answer for the next command of this name (once), instead of the default. */
  readonly overrides = new Map<string, (f: Frame) => Frame>();

  readonly WebSocket: WebSocketLike;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string) {
        super(server, url);
      }
    } as unknown as WebSocketLike;
  }

  get last(): FakeSocket {
    const s = this.sockets.at(-1);
    if (s === undefined) throw new Error('no socket yet');
    return s;
  }

  urls(): string[] {
    return this.sockets.map((s) => s.url);
  }

  /** Publishes to a stream: every open socket subscribed to it gets the `pub`. */
  publish(stream: string, data: unknown, epoch?: string): number {
    const st = this.streams.get(stream) ?? { epoch: 'e1', offset: 0 };
    if (epoch !== undefined && epoch !== st.epoch) Object.assign(st, { epoch, offset: 0 });
    st.offset += 1;
    this.streams.set(stream, st);
    for (const s of this.sockets) {
      if (s.open && s.subs.has(stream))
        s.push({ push: 'pub', stream, channel: stream, epoch: st.epoch, offset: st.offset, data });
    }
    return st.offset;
  }
}

export class FakeSocket {
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  open = false;
  readonly subs = new Set<string>();
  private static ids = 0;
  readonly client = `fake-${++FakeSocket.ids}`;

  constructor(
    private readonly server: FakeServer,
    readonly url: string,
  ) {
    server.sockets.push(this);
    queueMicrotask(() => {
      this.open = true;
      this.push({ push: 'connected', client: this.client, version: 1, pingInterval: server.pingInterval });
    });
  }

  push(frame: Frame): void {
    if (this.open) queueMicrotask(() => this.onmessage?.({ data: JSON.stringify(frame) }));
  }

  send(text: string): void {
    if (!this.open) throw new Error('send on a closed fake socket');
    for (const line of text.split('\n')) {
      const f = JSON.parse(line) as Frame;
      this.server.commands.push({ url: this.url, frame: f });
      const override = this.server.overrides.get(f['cmd']);
      if (override !== undefined) {
        this.server.overrides.delete(f['cmd']);
        this.push(override(f));
        continue;
      }
      this.answer(f);
    }
  }

  private answer(f: Frame): void {
    const id = f['id'];
    switch (f['cmd']) {
      case 'ping':
        if (this.server.answerPings) this.push({ id, result: {} });
        return;
      case 'subscribe': {
        const st = this.server.streams.get(f['channel']) ?? { epoch: 'e1', offset: 0 };
        this.server.streams.set(f['channel'], st);
        this.subs.add(f['channel']);
        const since = f['since'];
        const recovered =
          since === undefined ? {} : { recovered: since.epoch === st.epoch && since.offset <= st.offset };
        this.push({
          id,
          result: { stream: f['channel'], epoch: st.epoch, offset: st.offset, ...recovered, publications: [] },
        });
        return;
      }
      case 'unsubscribe':
        this.subs.delete(f['channel']);
        this.push({ id, result: {} });
        return;
      default:
        if (this.server.extraCommands.has(f['cmd'])) this.push({ id, result: {} });
        else
          this.push({
            id,
            error: { code: 'HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND', message: `unknown command "${f['cmd']}"` },
          });
    }
  }

  /** The server closes: a `disconnect` push (for codes >= 3000), then the close. */
  serverClose(code: number, reason = 'bye', retryAfterMs?: number): void {
    if (code >= 3000)
      this.push({
        push: 'disconnect',
        code,
        reason,
        reconnect: code < 3500,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
    queueMicrotask(() => queueMicrotask(() => this.close(code, reason)));
  }

  close(code = 1000, reason = ''): void {
    if (!this.open) return;
    this.open = false;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
}
