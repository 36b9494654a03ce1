/**
 * Peer: Socket.IO 4.8 with rooms, WebSocket transport only (no long-polling, no compression).
 * A client emits `subscribe` with a channel name (acknowledged once it joined the room);
 * `POST /publish?channel=X` emits `pub` with the parsed body to room X.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { channelOf, exitWithParent, portArg, readBody } from './http-util.js';

const port = portArg(process.argv);
const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/publish')) {
    readBody(req, res, (body) => io.to(channelOf(req.url)).emit('pub', JSON.parse(body) as unknown));
    return;
  }
  // Socket.IO answers its own path; anything else is not found.
  if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
});
const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });
io.on('connection', (socket) => {
  socket.on('subscribe', (channel: unknown, ack: unknown) => {
    if (typeof channel === 'string') void socket.join(channel);
    if (typeof ack === 'function') (ack as () => void)();
  });
});
http.listen(port, '127.0.0.1');
exitWithParent();
