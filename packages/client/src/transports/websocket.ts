/**
 * WebSocket (`GET /ws`): Herald's JSON protocol, several frames per message separated by `\n`.
 * Uses the WebSocket constructor from the options, else the global one (browsers, Node 22+), else
 * loads the `ws` package (Node 20; an optional peer dependency) on first use.
 */
import { splitFrames } from '@herald/protocol';
import type { HeraldTransport, InFrame, WebSocketLike } from './transport.js';

// A variable keeps bundlers from pulling `ws` into the browser build.
const WS_PACKAGE = 'ws';

async function loadWebSocket(given: WebSocketLike | undefined): Promise<WebSocketLike> {
  if (given !== undefined) return given;
  if (typeof WebSocket === 'function') return WebSocket;
  const mod = (await import(WS_PACKAGE)) as { WebSocket?: WebSocketLike; default?: WebSocketLike };
  const ctor = mod.WebSocket ?? mod.default;
  if (ctor === undefined) throw new Error('the ws package has no WebSocket export');
  return ctor;
}

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
    const token = ctx.token();
    const url =
      ctx.base.replace(/^http/, 'ws') + '/ws' + (token === undefined ? '' : '?token=' + encodeURIComponent(token));
    loadWebSocket(ctx.WebSocket).then(
      (Ctor) => {
        if (done) return;
        const socket = new Ctor(url);
        ws = socket;
        socket.onmessage = (e: MessageEvent) => {
          sink.alive();
          for (const line of splitFrames(String(e.data))) sink.frame(JSON.parse(line) as InFrame);
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
        ws?.send(frames.map((f) => JSON.stringify(f)).join('\n'));
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
