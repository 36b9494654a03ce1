/**
 * Peer: the floor of Node for WebSocket fan-out, on `ws` with no protocol of its own. Clients connect
 * to `/ws?channel=X`; `POST /publish?channel=X` with a body sends the body to every client of X as one
 * text message.
 * - `--mode naive`: `ws.send(text)` per client (each send converts and frames the text again);
 * - `--mode prebuilt`: the frame is built once (`WebSocket.Sender.frame`) and the same bytes are
 *   written to every client's socket.
 */
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import * as wsModule from 'ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { Rooms, channelOf, exitWithParent, portArg, readBody } from './http-util.js';

interface SenderStatics {
  frame(
    data: Buffer,
    options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
  ): Buffer[];
}
/** `ws` exports its Sender (framing) class, which its type definitions leave out. */
const Sender = (wsModule as unknown as { Sender: SenderStatics }).Sender;

const port = portArg(process.argv);
const prebuilt = process.argv.includes('prebuilt');
const rooms = new Rooms<WebSocket>();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });

function fanOut(channel: string, body: string): void {
  const room = rooms.members(channel);
  if (room === undefined) return;
  if (!prebuilt) {
    for (const ws of room) ws.send(body);
    return;
  }
  const frame = Buffer.concat(
    Sender.frame(Buffer.from(body), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }),
  );
  for (const ws of room) (ws as unknown as { _socket: Socket })._socket.write(frame);
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/publish')) {
    readBody(req, res, (body) => fanOut(channelOf(req.url), body));
    return;
  }
  res.writeHead(404).end();
});
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    const channel = channelOf(req.url);
    rooms.join(channel, ws);
    ws.on('close', () => rooms.leave(channel, ws));
    ws.on('error', () => undefined);
  });
});
server.listen(port, '127.0.0.1');
exitWithParent();
