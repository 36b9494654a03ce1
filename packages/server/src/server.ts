/**
 * HeraldServer wires the parts together: engine → hub ← transports, the server API, health, and
 * graceful shutdown. Embeddable: `handleRequest` and `handleUpgrade` serve from any http.Server
 * (under a path prefix with the `basePath` option; `handles` and `middleware` for hosts that serve
 * other paths too: docs/embedding.md); `listen()` makes one.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { Hub } from './core/hub.js';
import { createAuth, type Auth } from './auth/index.js';
import { SessionAuthorizer } from './auth/session-authorizer.js';
import type { Engine, EngineIngestion } from './core/engine.js';
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';
import { MetricsTally, noMetrics, teeMetrics, type Metrics } from './core/metrics.js';
import { NodeStats } from './core/node-stats.js';
import { PrometheusExporter } from './prometheus.js';
import { ApiKeys } from './api/api-keys.js';
import { silentLogger } from './core/logger.js';
import { MemoryEngine } from './engines/memory/memory-engine.js';
import { NatsEngine } from './engines/nats/nats-engine.js';
import { RedisEngine } from './engines/redis/redis-engine.js';
import { WebSocketTransport } from './transports/websocket.js';
import { ServerApi } from './api/server-api.js';
import { Admission, sendJsonError } from './http/admission.js';
import { Cors } from './http/cors.js';
import { HttpListener, SOCKET_METRICS, socketLimit } from './http/listener.js';
import { MAX_PIPELINED, whenCurrent } from './http/pipeline.js';
import { SessionTokens } from './http/session-token.js';
import { StreamingTransport } from './transports/http-streaming.js';
import { sseFormat } from './transports/sse.js';
import { httpStreamFormat } from './transports/http-stream.js';
import { LongPollTransport } from './transports/long-poll.js';
import { SendHandler } from './transports/send.js';
import { namespaceOptions, type HeraldConfig } from './config/config.js';
import { VERSION } from './version.js';
import { loopbackUrl, type DemoHost } from './demo/demos.js';
import { AdminHandler } from './admin/admin.js';
import { AdminQueries } from './admin/admin-queries.js';
import { AmqpIngest } from './ingest/amqp.js';

export interface HeraldServerOptions {
  readonly logger?: Logger;
  /** An engine to use instead of the one the config names (tests, embedding). */
  readonly engine?: Engine;
  /**
   * Also report every metric here (a Prometheus registry, StatsD, ...; see core/metrics.ts). The
   * server always keeps its own tally (`HeraldServer.metrics`) for `GET /api/info`.
   */
  readonly metrics?: Metrics;
  /** The clock of the sessions' timers (token expiry and refresh); the system clock when not given (tests). */
  readonly clock?: Clock;
  /** The demo apps to serve under `/demo/` (`prepareDemos`, what `herald serve` does); none when not given. */
  readonly demos?: DemoHost;
  /**
   * A path prefix for every URL of this server, to embed it in an application that serves other
   * paths (docs/embedding.md): with `/realtime`, `/realtime/ws`, `/realtime/sse`,
   * `/realtime/api/publish`, `/realtime/health`, ... and nothing outside it (`handles` says which
   * requests are Herald's). Starts with `/`, no trailing `/`; the root (none) when not given. The
   * admin page and the demos are served only at the root.
   */
  readonly basePath?: string;
  /**
   * This server is one worker of `herald serve --workers N` (docs/scaling.md): its slot (1..count)
   * and the number of workers, for `/api/info`, and where `GET /metrics` gets the text of the whole
   * server (the supervisor sums every worker's `metricsJson()`).
   */
  readonly worker?: { readonly slot: number; readonly count: number; readonly metrics: () => Promise<string> };
}

export type ServerState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export class HeraldServer {
  readonly config: HeraldConfig;
  readonly logger: Logger;
  readonly engine: Engine;
  readonly hub: Hub;
  readonly auth: Auth;
  readonly ws: WebSocketTransport;
  readonly sse: StreamingTransport;
  readonly stream: StreamingTransport;
  readonly poll: LongPollTransport;
  readonly send: SendHandler;
  readonly api: ServerApi;
  /**
   * Every counter and gauge of this server, in memory (see core/metrics.ts for the names); empty
   * when `metrics.enabled` is off.
   */
  readonly metrics = new MetricsTally();
  /** The tally and the sink given in the options: what every part reports to. */
  private readonly sink: Metrics;
  /** `GET /metrics`, made on the first scrape. */
  private exporter: PrometheusExporter | undefined;
  private readonly metricsKeys: ApiKeys;
  /** Every node's figures over the last minutes, for the admin page; only while the admin page is on. */
  readonly nodeStats: NodeStats | undefined;
  /** `/admin` (admin/admin.ts): only while `admin.password` is set. */
  private readonly admin: AdminHandler | undefined;
  private readonly queries: AdminQueries;
  private readonly cors: Cors;
  state: ServerState = 'created';
  private listener: HttpListener | undefined;
  private stopping: Promise<void> | undefined;
  /** Publishing by Redis PUBLISH (redis.ingestChannel, redis.ingestPlain), when the Redis engine is used. */
  private ingest: EngineIngestion | undefined;
  /** Publishing from a RabbitMQ queue (`amqp.url`), with any engine. */
  private amqp: AmqpIngest | undefined;
  private readonly demos: DemoHost | undefined;
  private readonly worker: HeraldServerOptions['worker'];
  /** The `basePath` option: `''` (the root) or `/a/b`. */
  readonly basePath: string;

  constructor(config: HeraldConfig, opts: HeraldServerOptions = {}) {
    this.config = config;
    this.basePath = checkBasePath(opts.basePath ?? '');
    this.demos = opts.demos;
    this.worker = opts.worker;
    this.logger = opts.logger ?? silentLogger;
    this.engine = opts.engine ?? createEngine(config, this.logger);
    // The admin page's rate charts read the same counters, so they are kept while it is on.
    const own = config.metrics.enabled || config.admin.password !== '' ? this.metrics : noMetrics;
    this.sink = opts.metrics !== undefined ? teeMetrics(own, opts.metrics) : own;
    this.metricsKeys = new ApiKeys(config.apiKeys);
    this.auth = createAuth(config, { logger: this.logger, metrics: this.sink });
    this.hub = new Hub({
      engine: this.engine,
      authorizer: new SessionAuthorizer(this.auth),
      logger: this.logger,
      policy: (ns) => namespaceOptions(config, ns),
      limits: {
        maxSubscriptionsPerConnection: config.limits.maxSubscriptionsPerConnection,
        maxQueueBytes: config.limits.maxQueueBytes,
        maxCommandsInFlight: config.limits.maxCommandsInFlight,
        maxCommandsWaiting: config.limits.maxCommandsWaiting,
        maxReplyBytes: config.limits.maxReplyBytes,
        maxRecoveryBuffer: 10_000,
      },
      idempotencyWindowMs: config.idempotencyWindow,
      metrics: this.sink,
      presence: {
        refreshMs: config.presence.refreshInterval,
        ttlMs: config.presence.ttl,
        // A long-poll client's entry outlives each poll: for a whole poll and an entry's life after it.
        lingerMs: config.http.pollTimeout + config.presence.ttl,
      },
      ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
    });
    const admission = new Admission({
      allowedOrigins: config.allowedOrigins,
      maxConnections: config.limits.maxConnections,
      // Client connections, and sockets not past their first request yet (a half-open request counts
      // from accept; HTTP/2 carries many sessions on one socket, so sockets alone would not do).
      connectionCount: () => this.hub.sessions.size + (this.listener?.pendingCount ?? 0),
      shuttingDown: () => this.state === 'stopping' || this.state === 'stopped',
    });
    this.ws = new WebSocketTransport({
      hub: this.hub,
      logger: this.logger,
      admission,
      maxFrameSize: config.limits.maxFrameSize,
      pingInterval: config.heartbeat.pingInterval,
      pingTimeout: config.heartbeat.pingTimeout,
    });
    const cors = (this.cors = new Cors({
      allowedOrigins: config.allowedOrigins,
      credentials: config.http.corsCredentials,
    }));
    const tokens = new SessionTokens(config.http.sessionSecret);
    const streaming = {
      hub: this.hub,
      admission,
      cors,
      tokens,
      heartbeatInterval: config.http.heartbeatInterval,
      padding: config.http.padding,
      maxChannels: config.http.maxChannelsPerRequest,
    };
    this.sse = new StreamingTransport(sseFormat(config.http.sseRetry), streaming);
    this.stream = new StreamingTransport(httpStreamFormat(), streaming);
    this.poll = new LongPollTransport({
      hub: this.hub,
      admission,
      cors,
      tokens,
      pollTimeout: config.http.pollTimeout,
      maxChannels: config.http.maxChannelsPerRequest,
    });
    this.send = new SendHandler({
      hub: this.hub,
      cors,
      tokens,
      maxBodySize: config.limits.maxFrameSize,
      forwardTimeout: config.http.sendForwardTimeout,
    });
    this.api = new ServerApi({
      hub: this.hub,
      logger: this.logger,
      apiKeys: config.apiKeys,
      maxBodySize: config.limits.maxApiBodySize,
      info: () => this.info(),
      metrics: this.sink,
      disconnect: this.engine.control === undefined ? undefined : (target) => this.queries.disconnect(target),
      socket: {
        pingInterval: config.heartbeat.pingInterval,
        pingTimeout: config.heartbeat.pingTimeout,
        maxQueueBytes: config.limits.maxQueueBytes,
        shuttingDown: () => this.state === 'stopping' || this.state === 'stopped',
      },
    });
    for (const t of [this.ws, this.sse, this.stream, this.poll]) this.hub.trackTransport(t.name);
    this.instrument(this.sink);
    // Every node keeps a list of the others (their latest figures) when the admin page is on, and
    // when the engine spans several nodes or workers: the server API's `disconnect` of a user asks
    // each node on that list.
    this.nodeStats =
      config.admin.password !== '' || (this.engine.nodes !== undefined && this.engine.control !== undefined)
        ? new NodeStats({
            nodeId: this.hub.nodeId,
            intervalMs: config.admin.sampleInterval,
            store: this.engine.nodes,
            logger: this.logger.child({ component: 'node-stats' }),
            source: {
              connectionsByTransport: () => this.connectionsByTransport(),
              subscriptions: () => this.subscriptionCount(),
              streamCounts: () => this.hub.streamCounts(),
              published: () => this.metrics.value('herald_publications_total'),
              delivered: () => this.metrics.value('herald_deliveries_total'),
              bytesOut: () => this.metrics.total('herald_bytes_written_total'),
            },
          })
        : undefined;
    // Serves the other nodes' requests about this node's connections (admin page, API disconnect).
    this.queries = new AdminQueries(this);
    this.queries.serveOtherNodes();
    this.admin = config.admin.password !== '' ? new AdminHandler(this) : undefined;
  }

  /** The server's own gauges (readiness, the engine's reach) and the engine's. */
  private instrument(m: Metrics): void {
    m.gauge('herald_ready', '1 when /ready answers 200 (running, not draining, engine reachable)', () =>
      this.health().ready ? 1 : 0,
    );
    const reach = (): { parts: number; up: number } =>
      this.engine.availability?.() ?? { parts: 1, up: this.engine.ready() ? 1 : 0 };
    m.gauge('herald_engine_parts', 'Parts of the engine store (Redis shards or Cluster masters)', () => reach().parts);
    m.gauge('herald_engine_parts_up', 'Parts of the engine store this node reaches now', () => reach().up);
    m.gauge('herald_uptime_seconds', 'Seconds since this node started', () => (Date.now() - this.hub.startedAt) / 1000);
    this.engine.instrument?.(m);
  }

  private subscriptionCount(): number {
    let n = 0;
    for (const session of this.hub.sessions.values()) n += session.subscriptions.size;
    return n;
  }

  /** Starts the engine (without listening). `listen()` calls it. */
  async start(): Promise<void> {
    if (this.state !== 'created') return;
    this.state = 'starting';
    await this.hub.start();
    // An engine that can take publications from its store's own pub/sub says so (the Redis engine).
    const { ingestChannel, ingestPlain } = this.config.redis;
    if (this.engine.ingestion !== undefined && (ingestChannel !== '' || ingestPlain.length > 0)) {
      this.ingest = this.engine.ingestion({
        channel: ingestChannel,
        plain: ingestPlain,
        publish: (channel, data, idempotencyKey) => this.hub.publish(channel, data, { idempotencyKey }),
        logger: this.logger.child({ component: 'ingest' }),
      });
      await this.ingest.start();
    }
    if (this.config.amqp.url !== '') {
      this.amqp = new AmqpIngest({
        config: this.config.amqp,
        publish: (channel, data, idempotencyKey) => this.hub.publish(channel, data, { idempotencyKey }),
        logger: this.logger.child({ component: 'amqp' }),
        metrics: this.sink,
        connectionName: `herald ${this.hub.nodeId}`,
        drainTimeout: this.config.shutdown.timeout,
      });
      await this.amqp.start();
    }
    await this.nodeStats?.start();
    this.state = 'running';
  }

  /**
   * Starts and listens on config.host:config.port (0 = ephemeral): HTTP/1.1; with `tls`, HTTP/2 and
   * HTTP/1.1 over TLS (ALPN); with `http.h2c`, cleartext HTTP/2 beside HTTP/1.1 (see http/listener.ts).
   */
  async listen(): Promise<AddressInfo> {
    await this.start();
    const { tls } = this.config;
    const listener = new HttpListener({
      tls: tls.cert !== '' ? { cert: await readFile(tls.cert), key: await readFile(tls.key) } : undefined,
      h2c: this.config.http.h2c,
      keepAliveTimeout: this.config.http.keepAliveTimeout,
      headersTimeout: this.config.http.headersTimeout,
      requestTimeout: this.config.http.requestTimeout,
      maxSockets: socketLimit(this.config.limits.maxConnections),
      metrics: this.sink,
      handlers: {
        request: (req, res) => this.handleRequest(req, res),
        upgrade: (req, socket, head) => this.handleUpgrade(req, socket, head),
        // The listener answers (HTTP/1 only) and destroys the socket.
        clientError: (err) => this.logger.debug({ code: err.code }, 'http client error'),
        handlerError: (err) => this.logger.error({ err }, 'http request handler failed'),
      },
    });
    this.listener = listener;
    const address = await listener.listen(this.config.port, this.config.host);
    await this.demos?.start(loopbackUrl(address, tls.cert !== ''));
    return address;
  }

  get address(): AddressInfo | undefined {
    return this.listener?.address;
  }

  /** The server accepting TCP connections once `listen()` ran (it emits `connection` per connection). */
  get httpServer(): NetServer | undefined {
    return this.listener?.server;
  }

  /**
   * Whether `req` is this server's: its path is under `basePath` (always, without one). An
   * application serving other paths too hands these to `handleRequest` or `handleUpgrade`. With a
   * `basePath`, the path is read from `req.originalUrl` when there is one (what Express and Connect
   * keep when a mount path like `app.use('/realtime', ...)` is taken off `req.url`).
   */
  handles(req: IncomingMessage): boolean {
    return this.localPath(req) !== undefined;
  }

  /**
   * Express (or Connect) middleware: serves the requests under `basePath` and passes the others on
   * with `next()`. Use it before any body parser (the server API reads the body itself).
   */
  middleware(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return (req, res, next) => {
      if (this.handles(req)) this.handleRequest(req, res);
      else next();
    };
  }

  /**
   * The path of `req` below `basePath` (`/ws`, `/api/publish`; `/` for the base path itself), or
   * undefined when it is not under `basePath`.
   */
  private localPath(req: IncomingMessage): string | undefined {
    const base = this.basePath;
    const url = (base !== '' ? originalUrl(req) : undefined) ?? req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (base === '') return path;
    if (!path.startsWith(base)) return undefined;
    if (path.length === base.length) return '/';
    return path.charCodeAt(base.length) === 0x2f ? path.slice(base.length) : undefined;
  }

  /**
   * Serves one request. HTTP/1.1 requests pipelined behind another one on the same connection wait
   * for their turn (see http/pipeline.ts) before anything is done for them. A request outside
   * `basePath` gets a 404.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const served = whenCurrent(req, res, () => this.route(req, res));
    if (!served) {
      this.logger.info(
        { code: 'HERALD_ERR_PROTOCOL_PIPELINED', max: MAX_PIPELINED },
        'too many pipelined requests on one connection: closed',
      );
    }
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    try {
      this.routeRequest(req, res);
    } catch (err) {
      // A request run later (pipelined) is outside the listener's guard: answer it here.
      this.logger.error({ err }, 'http request handler failed');
      if (!res.headersSent) sendJsonError(res, 500, { code: 'HERALD_ERR_INTERNAL', message: 'internal error' });
      else res.destroy();
    }
  }

  private routeRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const path = this.localPath(req);
    if (path === undefined) {
      req.resume();
      sendJsonError(
        res,
        404,
        { code: 'HERALD_ERR_API_NOT_FOUND', message: `no route for ${url.split('?')[0]?.slice(0, 100) ?? ''}` },
        this.cors.errorHeaders(req),
      );
      return;
    }
    if (this.state === 'stopped' && path !== '/health' && path !== '/ready') {
      // Embedded, the host may still take requests after `close()`.
      req.resume();
      sendJsonError(res, 503, { code: 'HERALD_ERR_SHUTTING_DOWN', message: 'the server has stopped' });
      return;
    }
    if (path.startsWith('/api/')) {
      this.api.handle(req, res, path.slice(5));
      return;
    }
    const t = this.config.transports;
    switch (path) {
      case '/sse':
        if (t.sse) this.sse.handle(req, res);
        else disabled(req, res, 'sse', this.cors);
        return;
      case '/stream':
        if (t.stream) this.stream.handle(req, res);
        else disabled(req, res, 'stream', this.cors);
        return;
      case '/poll':
        if (t.poll) this.poll.handle(req, res);
        else disabled(req, res, 'poll', this.cors);
        return;
      case '/send':
        this.send.handle(req, res);
        return;
    }
    if (this.demos !== undefined && (path === '/demo' || path.startsWith('/demo/'))) {
      if (this.basePath === '') this.demos.handle(req, res, path);
      else atRootOnly(req, res, 'the demos are');
      return;
    }
    if (path === '/admin' || path.startsWith('/admin/')) {
      // Its pages, cookie and redirects use absolute /admin/ URLs.
      if (this.basePath !== '') atRootOnly(req, res, 'the admin page is');
      else if (this.admin !== undefined) this.admin.handle(req, res, path, url);
      else adminOff(req, res);
      return;
    }
    req.resume();
    switch (path) {
      case '/health':
      case '/ready': {
        const h = this.health();
        const ok = path === '/health' ? h.alive : h.ready;
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
        res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', ...h.body }));
        return;
      }
      case '/metrics':
        this.serveMetrics(req, res);
        return;
      case '/ws':
        sendJsonError(
          res,
          426,
          { code: 'HERALD_ERR_PROTOCOL_BAD_FIELD', message: 'GET /ws must be a WebSocket upgrade' },
          // `Upgrade` is a connection header, forbidden in HTTP/2 (WebSocket goes over HTTP/1.1).
          req.httpVersionMajor === 1 ? { Upgrade: 'websocket' } : {},
        );
        return;
      case '/': {
        const endpoints = [
          '/ws',
          '/sse',
          '/stream',
          '/poll',
          '/send',
          '/api/<method>',
          '/api/ws',
          '/health',
          '/ready',
          '/metrics',
        ];
        const body = JSON.stringify({
          name: 'herald',
          version: VERSION,
          endpoints: endpoints.map((e) => this.basePath + e),
        });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(body);
        return;
      }
      default:
        sendJsonError(
          res,
          404,
          { code: 'HERALD_ERR_API_NOT_FOUND', message: `no route for ${(this.basePath + path).slice(0, 100)}` },
          this.cors.errorHeaders(req),
        );
    }
  }

  /** Serves an HTTP/1.1 upgrade (WebSocket at `/ws` under `basePath`); any other path gets a 404. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroySelf);
    const path = this.localPath(req);
    if (path === '/api/ws') {
      // The server API over a WebSocket (api/api-socket.ts): the API key decides, not transports.*.
      this.api.handleUpgrade(req, socket, head);
      return;
    }
    if (path === '/ws' && this.config.transports.websocket) {
      this.ws.handleUpgrade(req, socket, head);
      return;
    }
    if (path === '/ws') {
      const body = JSON.stringify({
        error: { code: 'HERALD_ERR_TRANSPORT_DISABLED', message: 'WebSocket is switched off on this server' },
      });
      socket.end(
        `HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  }

  /**
   * Liveness and readiness. Alive: the process serves HTTP (running, or draining at shutdown).
   * Ready, what a load balancer needs: running (not draining) and the engine reaches at least half
   * of its store (Redis shards or Cluster masters, and at least one): a node that still serves most
   * namespaces is not taken out of the pool because one shard is down, since every other node shares
   * that shard and would be taken out too.
   */
  health(): { alive: boolean; ready: boolean; body: Record<string, unknown> } {
    const a = this.engine.availability?.() ?? { parts: 1, up: this.engine.ready() ? 1 : 0 };
    const alive = this.state === 'running' || this.state === 'stopping';
    const ready = this.state === 'running' && a.up > 0 && a.up * 2 >= a.parts;
    const engine = a.up === a.parts ? 'ok' : a.up === 0 ? 'unavailable' : 'degraded';
    return {
      alive,
      ready,
      body: { state: this.state, engine: this.engine.name, store: { ...a, status: engine } },
    };
  }

  info(): Record<string, unknown> {
    const m = this.metrics;
    const subscriptions = this.subscriptionCount();
    const mem = process.memoryUsage();
    return {
      version: VERSION,
      engine: this.engine.name,
      ...(this.worker !== undefined ? { workers: this.worker.count, worker: this.worker.slot, pid: process.pid } : {}),
      uptimeSeconds: Math.round((Date.now() - this.hub.startedAt) / 1000),
      connections: this.hub.sessions.size,
      connectionsByTransport: this.connectionsByTransport(),
      subscriptions,
      streams: this.hub.channels().length,
      published: m.value('herald_publications_total'),
      deliveries: m.value('herald_deliveries_total'),
      connectionsTotal: m.value('herald_connections_total'),
      slowDisconnects: m.value('herald_slow_disconnects_total'),
      badFrames: m.value('herald_bad_frames_total'),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      ...(this.listener !== undefined
        ? {
            sockets: {
              open: m.value(SOCKET_METRICS.open),
              pending: m.value(SOCKET_METRICS.pending),
              refused: m.value(SOCKET_METRICS.refused),
              timedOut: m.value(SOCKET_METRICS.timedOut),
            },
          }
        : {}),
      ...(this.hub.control.available
        ? {
            sendForwarding: {
              forwarded: m.value('herald_send_forwarded_total'),
              served: m.value('herald_send_served_total'),
            },
          }
        : {}),
      ...(this.engine.status !== undefined ? { [this.engine.name]: this.engine.status() } : {}),
      ...(this.ingest !== undefined ? { ingest: { ...this.ingest.stats } } : {}),
      ...(this.amqp !== undefined ? { amqp: { ...this.amqp.stats } } : {}),
    };
  }

  /** `GET /metrics`: Prometheus text format (docs/operations.md). */
  private serveMetrics(req: IncomingMessage, res: ServerResponse): void {
    const { enabled, requireApiKey } = this.config.metrics;
    if (!enabled) {
      sendJsonError(res, 404, {
        code: 'HERALD_ERR_API_NOT_FOUND',
        message: 'metrics are switched off (metrics.enabled)',
      });
      return;
    }
    if (requireApiKey && !this.metricsKeys.check(bearerAsApiKey(req.headers.authorization))) {
      sendJsonError(
        res,
        401,
        { code: 'HERALD_ERR_API_UNAUTHORIZED', message: 'send Authorization: apikey <key> (or Bearer <key>)' },
        { 'WWW-Authenticate': 'apikey' },
      );
      return;
    }
    this.exporter ??= new PrometheusExporter(this.metrics);
    const contentType = this.exporter.contentType;
    (this.worker !== undefined ? this.worker.metrics() : this.exporter.text()).then(
      (text) => {
        res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
        res.end(text);
      },
      (err: unknown) => {
        this.logger.error({ err }, 'metrics collection failed');
        if (!res.headersSent)
          sendJsonError(res, 500, { code: 'HERALD_ERR_INTERNAL', message: 'metrics collection failed' });
      },
    );
  }

  /** This process's metrics as prom-client JSON, for a supervisor summing its workers' (`worker`). */
  metricsJson(): Promise<unknown> {
    this.exporter ??= new PrometheusExporter(this.metrics);
    return this.exporter.json();
  }

  connectionsByTransport(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of [this.ws, this.sse, this.stream, this.poll]) out[t.name] = 0;
    for (const s of this.hub.sessions.values()) out[s.transport.name] = (out[s.transport.name] ?? 0) + 1;
    return out;
  }

  /**
   * Graceful shutdown: stop accepting, tell every client to reconnect (code 3001 SHUTDOWN with a
   * `retryAfterMs` hint), wait for them to close up to `shutdown.timeout`, then force the rest.
   */
  close(): Promise<void> {
    this.stopping ??= this.doClose();
    return this.stopping;
  }

  private async doClose(): Promise<void> {
    this.state = 'stopping';
    await this.demos?.close();
    const server = this.listener;
    const closed = server !== undefined ? server.close() : Promise.resolve();
    this.hub.shutdown(this.config.shutdown.reconnectJitter);
    // Backends on /api/ws get their running requests answered, then 3001.
    const apiDrained = this.api.socket.shutdown();
    const deadline = Date.now() + this.config.shutdown.timeout;
    // Every transport's clients were told to go: wait until they have, or until the deadline.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([this.ws.drained(), this.sse.drained(), this.stream.drained(), this.poll.drained(), apiDrained]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.config.shutdown.timeout))),
    ]);
    clearTimeout(timer);
    this.api.socket.close();
    this.ws.close();
    this.sse.close();
    this.stream.close();
    this.poll.close();
    server?.closeIdleConnections();
    const forced = setTimeout(() => server?.closeAllConnections(), Math.max(0, deadline - Date.now()));
    await closed;
    clearTimeout(forced);
    await this.ingest?.close();
    await this.amqp?.close();
    await this.nodeStats?.close();
    this.exporter?.close();
    await this.hub.close();
    await this.engine.close();
    await this.auth.close();
    this.state = 'stopped';
    this.logger.info('stopped');
  }
}

function createEngine(config: HeraldConfig, logger: Logger): Engine {
  switch (config.engine) {
    case 'memory':
      return new MemoryEngine();
    case 'redis':
      return new RedisEngine({
        urls: config.redis.urls,
        cluster: config.redis.cluster,
        prefix: config.redis.prefix,
        connectTimeout: config.redis.connectTimeout,
        commandTimeout: config.redis.commandTimeout,
        logger: logger.child({ component: 'redis' }),
      });
    case 'nats': {
      const n = config.nats;
      const tls = n.tls || n.tlsCaFile !== '' || n.tlsCertFile !== '' || n.tlsKeyFile !== '';
      return new NatsEngine({
        servers: n.servers,
        prefix: n.prefix,
        connectTimeout: n.connectTimeout,
        commandTimeout: n.commandTimeout,
        replicas: n.replicas,
        storage: n.storage,
        ...(n.user !== '' ? { user: n.user, pass: n.pass } : {}),
        ...(n.token !== '' ? { token: n.token } : {}),
        ...(n.credsFile !== '' ? { credsFile: n.credsFile } : {}),
        ...(tls
          ? {
              tls: {
                ...(n.tlsCaFile !== '' ? { caFile: n.tlsCaFile } : {}),
                ...(n.tlsCertFile !== '' ? { certFile: n.tlsCertFile } : {}),
                ...(n.tlsKeyFile !== '' ? { keyFile: n.tlsKeyFile } : {}),
              },
            }
          : {}),
        logger: logger.child({ component: 'nats' }),
      });
    }
    default: {
      const never: never = config.engine;
      throw new Error(`unknown engine ${String(never)}`);
    }
  }
}

function disabled(req: IncomingMessage, res: ServerResponse, name: string, cors: Cors): void {
  sendJsonError(
    res,
    404,
    { code: 'HERALD_ERR_TRANSPORT_DISABLED', message: `the ${name} transport is switched off on this server` },
    cors.errorHeaders(req),
  );
}

/** `/admin` or `/demo` under a `basePath`: they are served at the root only. */
function atRootOnly(req: IncomingMessage, res: ServerResponse, what: string): void {
  req.resume();
  sendJsonError(res, 404, {
    code: 'HERALD_ERR_API_NOT_FOUND',
    message: `${what} served only by a server without basePath`,
  });
}

function adminOff(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  sendJsonError(res, 404, {
    code: 'HERALD_ERR_API_NOT_FOUND',
    message: 'the admin page is off: set admin.password (HERALD_ADMIN_PASSWORD) to turn it on',
  });
}

/** `Bearer <key>` read as `apikey <key>` (Prometheus sends Bearer unless told otherwise). */
function bearerAsApiKey(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^bearer\s+(\S+)\s*$/i.exec(header);
  return m === null ? header : `apikey ${m[1] as string}`;
}

/**
 * The `basePath` option checked: `''` or `/seg/seg` (segments of URL path characters, not `.` or
 * `..`); a trailing `/` is dropped. Throws a TypeError naming the problem.
 */
function checkBasePath(value: string): string {
  const path = value.replace(/\/+$/, '');
  if (path === '') return '';
  const segments = path.split('/');
  const ok =
    segments[0] === '' &&
    segments.slice(1).every((s) => /^[A-Za-z0-9._~!$&'()*+,;=:@%-]+$/.test(s) && s !== '.' && s !== '..');
  if (!ok)
    throw new TypeError(`basePath must be like "/realtime" (a path without query or empty segments); got "${value}"`);
  return path;
}

/** `req.originalUrl`, which Express and Connect set to the whole URL when they take a mount path off `req.url`. */
function originalUrl(req: IncomingMessage): string | undefined {
  const url = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  return typeof url === 'string' ? url : undefined;
}

/** Shared 'error' listener for upgraded sockets (no closure per connection). */
function destroySelf(this: Duplex): void {
  this.destroy();
}
