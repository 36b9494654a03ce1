/**
 * TCP plumbing of the chaos suite, on free loopback ports:
 * - `LoadBalancer`: what clients connect to, in front of the Herald nodes — round robin over the
 *   nodes whose `GET /ready` answered 200 within 400 ms at the last check (every 250 ms), like an
 *   nginx or HAProxy with active health checks; a refused connection is tried on the next node. A
 *   connection stays on its node until either side ends it (a SIGSTOPped node keeps its connections
 *   hanging, as in production).
 * (The one address the Herald nodes use for Redis, switched at a failover, is the server tests'
 * `startTcpProxy`.)
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  return typeof addr === 'object' && addr !== null ? addr.port : 0;
}

function pipeBoth(client: Socket, upstream: Socket, open: Set<Socket>): void {
  const end = (): void => {
    client.destroy();
    upstream.destroy();
    open.delete(client);
    open.delete(upstream);
  };
  for (const s of [client, upstream]) {
    s.on('error', end);
    s.on('close', end);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}

function closeServer(server: Server, open: Set<Socket>): Promise<void> {
  for (const s of [...open]) s.destroy();
  open.clear();
  return new Promise((resolve) => server.close(() => resolve()));
}

export class LoadBalancer {
  private readonly open = new Set<Socket>();
  private readonly healthy = new Set<number>();
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  /** Connections accepted, per backend port. */
  readonly accepted = new Map<number, number>();

  private readonly server = createServer((client) => this.accept(client));
  port = 0;

  private constructor(private readonly backends: number[]) {}

  static async start(backends: number[]): Promise<LoadBalancer> {
    const lb = new LoadBalancer(backends);
    lb.port = await listen(lb.server);
    await lb.check();
    lb.timer = setInterval(() => void lb.check(), 250);
    return lb;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Whether the backend on `port` passed its last health check. */
  isHealthy(port: number): boolean {
    return this.healthy.has(port);
  }

  /** Checks the backends now (the suite calls it to learn about a node it just killed or restarted). */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await Promise.all(
        this.backends.map(async (port) => {
          const ok = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(400) }).then(
            async (r) => {
              await r.arrayBuffer();
              return r.status === 200;
            },
            () => false,
          );
          if (ok !== this.healthy.has(port) && process.env['CHAOS_DEBUG'] === '1')
            console.log(`${Date.now() % 100_000} lb: node ${port} ${ok ? 'healthy' : 'unhealthy'}`);
          if (ok) this.healthy.add(port);
          else this.healthy.delete(port);
        }),
      );
    } finally {
      this.checking = false;
    }
  }

  private accept(client: Socket, tried: Set<number> = new Set()): void {
    if (tried.size === 0) client.on('error', () => client.destroy());
    const candidates = this.backends.filter((p) => this.healthy.has(p) && !tried.has(p));
    if (candidates.length === 0) {
      client.destroy();
      return;
    }
    const port = candidates[this.next++ % candidates.length] as number;
    tried.add(port);
    client.pause();
    const upstream = connect(port, '127.0.0.1');
    const refused = (): void => {
      upstream.destroy();
      if (!client.destroyed) this.accept(client, tried);
    };
    upstream.once('error', refused);
    upstream.once('connect', () => {
      upstream.off('error', refused);
      this.accepted.set(port, (this.accepted.get(port) ?? 0) + 1);
      this.open.add(client);
      this.open.add(upstream);
      pipeBoth(client, upstream, this.open);
      client.resume();
    });
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return closeServer(this.server, this.open);
  }
}
