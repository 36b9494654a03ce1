/**
 * Peer: Faye 1.4 (Bayeux pub/sub on Node), its WebSocket transport at `/faye`. Faye channel names
 * allow no dots, so bench channel `a.b` is Faye channel `/a/b`. `POST /publish?channel=X` publishes
 * the parsed body through the server-side client.
 */
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { channelOf, exitWithParent, portArg, readBody } from './http-util.js';

interface FayeClient {
  publish(channel: string, data: unknown): unknown;
}
interface FayeAdapter {
  attach(server: ReturnType<typeof createServer>): void;
  getClient(): FayeClient;
}
interface Faye {
  NodeAdapter: new (options: { mount: string; timeout: number }) => FayeAdapter;
}

const faye = createRequire(import.meta.url)('faye') as Faye;
const port = portArg(process.argv);
const bayeux = new faye.NodeAdapter({ mount: '/faye', timeout: 45 });
const client = bayeux.getClient();
const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/publish')) {
    readBody(req, res, (body) => client.publish(`/${channelOf(req.url).replaceAll('.', '/')}`, JSON.parse(body)));
    return;
  }
  // Faye answers its own mount point (attached below); anything else is not found.
  if (!req.url?.startsWith('/faye')) res.writeHead(404).end();
});
bayeux.attach(http);
http.listen(port, '127.0.0.1');
exitWithParent();
