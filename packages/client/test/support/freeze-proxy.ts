/**
 * A TCP proxy in front of a test server that can freeze connections the way a dead network does:
 * nothing is forwarded any more, in either direction, and nothing is closed (no FIN, no RST), so
 * both ends wait for bytes that never come. It reads the request line of every HTTP request that
 * goes through, so a test can freeze just the connection that carries a long-poll, or cut the
 * network: every connection freezes and new ones fail, until `thaw()`.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

interface Link {
  client: Socket;
  upstream: Socket;
  /** The request line of the last request sent on this connection (`GET /poll?... HTTP/1.1`). */
  request: string;
  frozen: boolean;
}

const REQUEST_LINE = /^(?:GET|POST|OPTIONS|HEAD) \S+ HTTP\/1\.[01]$/gm;

export class FreezeProxy {
  readonly links = new Set<Link>();
  /** Every request line that went through, in order. */
  readonly requests: string[] = [];
  /** While true, new connections fail at once (the network is down). */
  private down = false;

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:<port>`: the address to give the client. */
    readonly url: string,
  ) {}

  static async start(target: string): Promise<FreezeProxy> {
    const { hostname, port } = new URL(target);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new FreezeProxy(server, `http://127.0.0.1:${(server.address() as { port: number }).port}`);
    server.on('connection', (client) => proxy.accept(client, hostname, Number(port)));
    return proxy;
  }

  private accept(client: Socket, host: string, port: number): void {
    client.on('error', () => client.destroy());
    if (this.down) return void client.destroy();
    const upstream = connect(port, host);
    upstream.on('error', () => upstream.destroy());
    const link: Link = { client, upstream, request: '', frozen: false };
    this.links.add(link);
    client.on('data', (chunk: Buffer) => {
      if (link.frozen) return;
      for (const m of chunk.toString('latin1').matchAll(REQUEST_LINE)) this.requests.push((link.request = m[0]));
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!link.frozen) client.write(chunk);
    });
    const end = (): void => {
      this.links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
  }

  /** Freezes every open connection whose last request line matches; returns how many it froze. */
  freeze(match: (request: string) => boolean = () => true): number {
    let n = 0;
    for (const link of this.links) {
      if (link.frozen || !match(link.request)) continue;
      link.frozen = true;
      link.client.pause();
      link.upstream.pause();
      n += 1;
    }
    return n;
  }

  /**
   * The network goes down: new connections fail at once, and every open one freezes, except those whose
   * last request was a POST (idle keep-alive connections that carried commands): those are closed,
   * as a browser closes its idle connections when the network changes. What is left open and dead
   * is what carries the server's frames: the WebSocket, the stream, the held poll.
   */
  cut(): void {
    this.down = true;
    for (const link of this.links) {
      if (!link.request.startsWith('POST ')) continue;
      link.client.destroy();
      link.upstream.destroy();
    }
    this.freeze();
  }

  /** The network is back for new connections (frozen ones stay frozen, as after a real outage). */
  thaw(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    for (const link of this.links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
