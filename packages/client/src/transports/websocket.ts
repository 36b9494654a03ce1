/**
 * WebSocket (`GET /ws`): Herald's JSON protocol, several frames per message separated by `\n`, or
 * with `format: 'msgpack'` its MessagePack protocol (subprotocol `herald.msgpack`; the codec is
 * imported on first use, see msgpack.ts). Uses the WebSocket constructor from the options, else the
 * global one (browsers, Node 22+), else loads the `ws` package (Node 20; an optional peer
 * dependency) on first use.
 */
import { splitFrames } from '@herald/protocol';
import { buildUrl, type HeraldTransport, type InFrame, type OutFrame, type WebSocketLike } from './transport.js';

// A variable keeps bundlers from pulling `ws` into the browser build.
const WS_PACKAGE = 'ws';

const loadWebSocket = async (given: WebSocketLike | undefined): Promise<WebSocketLike> =>
  given ?? globalThis.WebSocket ?? ((await import(WS_PACKAGE)) as { WebSocket: WebSocketLike }).WebSocket;

/** How frames travel in messages: JSON here, MessagePack in msgpack.ts (loaded on first use). */
interface Codec {
  decode(data: unknown): unknown[];
  encode(frames: readonly OutFrame[]): string | Uint8Array;
}

const json: Codec = {
  decode: (data) => splitFrames(String(data)).map((l) => JSON.parse(l) as unknown),
  encode: (frames) => frames.map((f) => JSON.stringify(f)).join('\n'),
};

export const websocket: HeraldTransport = {
  name: 'websocket',
  open: (ctx, sink) => {
    let ws: WebSocket | undefined;
    let done = false;
    const end = (code: number, reason: string): void => {
      if (done) return;
      done = true;
      sink.closed(code, reason);
    };
    const url = buildUrl(ctx, '/ws').replace(/^http/, 'ws');
    let codec: Codec = json;
    Promise.all([loadWebSocket(ctx.WebSocket), ctx.format === 'msgpack' && import('./msgpack.js')]).then(
      ([Ctor, mp]) => {
        if (done) return;
        const socket = mp ? (codec = mp).open(Ctor, url) : new Ctor(url);
        ws = socket;
        socket.onmessage = (e: MessageEvent) => {
          sink.alive();
          for (const f of codec.decode(e.data)) sink.frame(f as InFrame);
        };
        // A close event follows an error. Browsers tell nothing more (1006); Node's `ws` says why.
        let why = '';
        socket.onerror = (e: Event) => (why = (e as { message?: string }).message ?? '');
        socket.onclose = (e: CloseEvent) => end(e.code, e.reason || why);
      },
      (err: unknown) => end(1006, `no WebSocket: install the ws package (${String(err)})`),
    );

    return {
      send(frames) {
        ws?.send(codec.encode(frames));
      },
      close() {
        done = true;
        if (ws === undefined) return;
        ws.onmessage = ws.onclose = null;
        ws.close(1000);
      },
    };
  },
};
