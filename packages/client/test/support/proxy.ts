/**
 * A TCP proxy in front of a test server that misbehaves with WebSocket upgrades the way middleboxes
 * do, and passes every other request through untouched:
 * - `refuse`: answers the upgrade with `403`;
 * - `drop`: closes the connection as soon as the upgrade request arrives;
 * - `hang`: never answers the upgrade;
 * - `swallow`: lets the handshake through, then silently drops every frame from the server;
 * - `slow`: passes the upgrade through after `delayMs`.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type UpgradeMode = 'pass' | 'refuse' | 'drop' | 'hang' | 'swallow' | 'slow';

export class Proxy {
  readonly sockets = new Set<Socket>();
  upgrades = 0;
  delayMs = 500;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    public mode: UpgradeMode,
  ) {}

  static async start(target: string, mode: UpgradeMode): Promise<Proxy> {
    const { hostname, port } = new URL(target);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address() as { port: number };
    const proxy = new Proxy(server, `http://127.0.0.1:${addr.port}`, mode);
    server.on('connection', (client) => proxy.accept(client, hostname, Number(port)));
    return proxy;
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
  }

  private accept(client: Socket, host: string, port: number): void {
    this.track(client);
    client.once('data', (first: Buffer) => {
      const upgrade = /^upgrade:\s*websocket/im.test(first.toString('latin1'));
      if (upgrade) this.upgrades += 1;
      const mode = upgrade ? this.mode : 'pass';
      if (mode === 'refuse') {
        client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      if (mode === 'drop') return void client.destroy();
      if (mode === 'hang') return;
      if (mode === 'slow') {
        client.pause();
        setTimeout(() => this.pipe(client, first, host, port, 'pass'), this.delayMs);
        return;
      }
      this.pipe(client, first, host, port, mode);
    });
  }

  private pipe(client: Socket, first: Buffer, host: string, port: number, mode: 'pass' | 'swallow'): void {
    if (client.destroyed) return;
    const upstream = connect(port, host);
    this.track(upstream);
    upstream.write(first);
    client.pipe(upstream);
    if (mode === 'pass') upstream.pipe(client);
    else {
      // swallow: forward the handshake response, then nothing.
      let head = '';
      const onData = (chunk: Buffer): void => {
        const text = chunk.toString('latin1');
        const end = (head + text).indexOf('\r\n\r\n');
        if (end === -1) {
          head += text;
          client.write(chunk);
          return;
        }
        client.write(chunk.subarray(0, end + 4 - head.length));
        upstream.off('data', onData);
        upstream.resume();
      };
      upstream.on('data', onData);
    }
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  }

  /** Cuts every connection (a network failure, without any close frame). */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
