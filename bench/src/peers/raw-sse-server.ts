/**
 * Peer: a minimal raw Node SSE server. `GET /sse?channel=X` opens an event stream; `POST
 * /publish?channel=X` writes `data: <body>\n\n` (built once as one Buffer) to every stream of X.
 */
import { createServer, type ServerResponse } from 'node:http';
import { Rooms, channelOf, exitWithParent, portArg, readBody } from './http-util.js';

const port = portArg(process.argv);
const rooms = new Rooms<ServerResponse>();

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/publish')) {
    readBody(req, res, (body) => {
      const room = rooms.members(channelOf(req.url));
      if (room === undefined) return;
      const event = Buffer.from(`data: ${body}\n\n`);
      for (const r of room) r.write(event);
    });
    return;
  }
  if (req.method === 'GET' && req.url?.startsWith('/sse')) {
    const channel = channelOf(req.url);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write(':ok\n\n');
    rooms.join(channel, res);
    res.on('close', () => rooms.leave(channel, res));
    return;
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
exitWithParent();
