/**
 * A TCP proxy in front of a Herald server that breaks chosen HTTP/1.1 requests the way networks and
 * servers do, so that the client's retries can be tested deterministically:
 *
 * - `cut`: the connection is reset as the request arrives; the server never sees it.
 * - `lose-reply`: the request reaches the server (which applies it); the connection is reset when
 *   the answer comes back, so the client never gets it.
 * - `stall`: the request reaches the server; its answer is held forever (the client times out).
 * - `503`: the proxy answers `503` itself (as a load balancer whose backend is down), with a Herald
 *   error body when `heraldBody` is set, an HTML page otherwise.
 *
 * It can also strip the `Keep-Alive: timeout=N` hint from answers (proxies drop it: it is hop-by-hop),
 * so that a client keeps idle connections longer than the server does. A close by the server is
 * passed on to the client.
 *
 * Requests are told apart by their first bytes (`POST /...`): the client sends one request at a
 * time per connection (no pipelining), and a test's requests are small.
 */
import { connect, createServer, type Socket } from 'node:net';

export type Fault = 'forward' | 'cut' | 'lose-reply' | 'stall' | '503';

export interface FaultProxyOptions {
  /** The fault for request number `n` (1 for the first request through the proxy). Default: forward all. */
  readonly plan?: (n: number, requestLine: string) => Fault;
  /** Remove `Keep-Alive` headers from the server's answers. */
  readonly stripKeepAlive?: boolean;
  /** Answer `503` with Herald's JSON error body (`HERALD_ERR_ENGINE_UNAVAILABLE`), not an HTML page. */
  readonly heraldBody?: boolean;
}

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Requests seen so far, with their fault. */
  readonly requests: Array<{ line: string; fault: Fault }>;
  /** The client-side sockets, in the order accepted. */
  readonly clientSockets: Socket[];
  close(): Promise<void>;
}

const REQUEST_START = /^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/;

export async function startFaultProxy(targetPort: number, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
  const requests: Array<{ line: string; fault: Fault }> = [];
  const clientSockets: Socket[] = [];
  const open = new Set<Socket>();
  const server = createServer((client) => {
    clientSockets.push(client);
    const upstream = connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    let current: Fault = 'forward';
    const reset = (): void => {
      client.resetAndDestroy();
      upstream.destroy();
    };
    const done = (): void => {
      open.delete(client);
      open.delete(upstream);
    };
    client.on('close', () => {
      upstream.destroy();
      done();
    });
    upstream.on('close', () => {
      // The server closed (its keep-alive timeout): close the client side the same way.
      if (!client.destroyed) client.end();
      done();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());

    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (REQUEST_START.test(text)) {
        const line = text.slice(0, text.indexOf('\r\n'));
        current = opts.plan?.(requests.length + 1, line) ?? 'forward';
        requests.push({ line, fault: current });
        if (current === 'cut') return reset();
        if (current === '503') return void client.write(unavailable(opts.heraldBody === true));
      }
      if (current !== 'cut' && current !== '503') upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (current === 'lose-reply') return reset();
      if (current === 'stall') return;
      client.write(opts.stripKeepAlive === true ? stripKeepAlive(chunk) : chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    clientSockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function unavailable(herald: boolean): string {
  const body = herald
    ? '{"error":{"code":"HERALD_ERR_ENGINE_UNAVAILABLE","message":"injected by the test proxy"}}'
    : '<html><body><h1>503 Service Unavailable</h1></body></html>';
  const type = herald ? 'application/json' : 'text/html';
  return (
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: keep-alive\r\n\r\n${body}`
  );
}

/** The chunk without `Keep-Alive:` header lines (answers here are small: a head fits in one chunk). */
function stripKeepAlive(chunk: Buffer): Buffer {
  const text = chunk.toString('latin1');
  if (!text.startsWith('HTTP/1.')) return chunk;
  return Buffer.from(text.replace(/\r\nKeep-Alive:[^\r\n]*/i, ''), 'latin1');
}
