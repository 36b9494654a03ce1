/**
 * The server API for the application backend: `POST /api/<method>` with a JSON body and
 * `Authorization: apikey <key>`. Replies are JSON; errors are `{"error":{"code","message"}}` with
 * the code's HTTP status. `POST /api/batch` runs many methods in one request (see batch.ts);
 * `GET /api/ws` runs them over one WebSocket (see api-socket.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  ErrorCodes,
  HeraldError,
  LATEST_AND_REVERSE,
  copyStreamPosition,
  isValidChannel,
  isStreamPosition,
  parseCursor,
  type ErrorBody,
  type PublishResult,
  type StreamPosition,
} from '@herald/protocol';
import type { Hub } from '../core/hub.js';
import type { Logger } from '../core/logger.js';
import { noMetrics, type Counter, type Histogram, type Metrics } from '../core/metrics.js';
import { withPublications } from '../core/encoder.js';
import { toErrorBody } from '../core/errors.js';
import { bytesOfBase64 } from '../core/payload.js';
import { readBody } from '../http/body.js';
import { sendJsonError } from '../http/admission.js';
import { ApiKeys } from './api-keys.js';
import { runBatch, type ApiMethod, type ApiParams } from './batch.js';
import { ApiSocket } from './api-socket.js';

export interface ServerApiOptions {
  readonly hub: Hub;
  readonly logger: Logger;
  readonly apiKeys: readonly string[];
  readonly maxBodySize: number;
  /** Extra fields for `info` (version, transports, ...). */
  readonly info: () => Record<string, unknown>;
  /** Requests by method and status, and their latency (see core/metrics.ts). */
  readonly metrics?: Metrics;
  /**
   * `disconnect` on every node (the client's own node, or every node for a user); this node alone
   * when absent.
   */
  readonly disconnect?: (target: {
    client?: string | undefined;
    user?: string | undefined;
    reconnect: boolean;
  }) => Promise<{ disconnected: number; nodeErrors: readonly { node: string; error: ErrorBody }[] }>;
  /** `GET /api/ws` (api-socket.ts): the heartbeat, the answer bytes a connection may leave unread. */
  readonly socket?: {
    readonly pingInterval: number;
    readonly pingTimeout: number;
    readonly maxQueueBytes: number;
    readonly maxInFlight?: number;
    readonly shuttingDown: () => boolean;
  };
}

/** Bounds of the API latency histogram, in seconds (0.5 ms to 10 s). */
const API_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Body = ApiParams;

export class ServerApi {
  private readonly keys: ApiKeys;
  private readonly methods: Record<string, ApiMethod>;
  private readonly requests = new Map<string, Map<number, Counter>>();
  private readonly latency = new Map<string, Histogram>();
  /** `GET /api/ws`: the server API over a WebSocket. */
  readonly socket: ApiSocket;

  constructor(private readonly opts: ServerApiOptions) {
    this.keys = new ApiKeys(opts.apiKeys);
    const s = opts.socket;
    this.socket = new ApiSocket({
      methodOf: (name) => this.methodOf(name),
      authorized: (header) => this.keys.check(header, true),
      observe: (name, status, start) => this.observe(name, status, start),
      shuttingDown: s?.shuttingDown ?? (() => false),
      logger: opts.logger,
      maxFrameSize: opts.maxBodySize,
      maxQueueBytes: s?.maxQueueBytes ?? 4 << 20,
      pingInterval: s?.pingInterval ?? 25_000,
      pingTimeout: s?.pingTimeout ?? 10_000,
      ...(s?.maxInFlight !== undefined ? { maxInFlight: s.maxInFlight } : {}),
    });
    const hub = opts.hub;
    const methodOf = (name: string): ApiMethod | undefined => this.methodOf(name);
    const errorBody = (err: unknown) => toErrorBody(err, opts.logger);
    this.methods = {
      // Not `async` (one promise step less per publication); a bad param still rejects, never throws.
      publish: (b) => {
        let stored: Promise<PublishResult>;
        try {
          stored = hub.publish(b['channel'], payloadOf(b), { idempotencyKey: optKey(b) });
        } catch (err) {
          return Promise.reject(err as Error);
        }
        return stored.then(publishAnswer);
      },
      broadcast: async (b) => {
        const channels = b['channels'];
        if (!Array.isArray(channels) || channels.length === 0 || channels.length > 1000) {
          throw bad('"channels" must be an array of 1 to 1000 channel names');
        }
        const key = optKey(b);
        const data = payloadOf(b);
        const results = await Promise.all(
          channels.map(async (channel: unknown) => {
            try {
              return await hub.publish(channel, data, { idempotencyKey: key });
            } catch (err) {
              return { channel, error: toErrorBody(err, opts.logger) };
            }
          }),
        );
        return JSON.stringify({ results });
      },
      history: async (b) => {
        const limit = b['limit'];
        if (limit !== undefined && !(Number.isInteger(limit) && (limit as number) >= 0)) {
          throw bad('"limit" must be an integer >= 0');
        }
        const reverse = b['reverse'];
        if (reverse !== undefined && typeof reverse !== 'boolean') throw bad('"reverse" must be a boolean');
        const latest = b['latest'];
        if (latest !== undefined && typeof latest !== 'boolean') throw bad('"latest" must be a boolean');
        if (latest === true && reverse === true) throw bad(LATEST_AND_REVERSE);
        const { result, publications } = await hub.history(b['channel'], {
          since: optSince(b['since']),
          limit: limit as number | undefined,
          reverse: reverse as boolean | undefined,
          latest: latest as boolean | undefined,
        });
        return withPublications(result, publications);
      },
      channels: async (b) => JSON.stringify({ channels: await channels(hub, b) }),
      presence: async (b) => JSON.stringify(await hub.presenceList(b['channel'])),
      presenceStats: async (b) => JSON.stringify(await hub.presenceStats(b['channel'])),
      info: () => Promise.resolve(JSON.stringify({ nodes: [{ id: hub.nodeId, ...opts.info() }] })),
      disconnect: (b) => {
        const client = b['client'];
        const user = b['user'];
        const reconnect = b['reconnect'] ?? false;
        if (client !== undefined && typeof client !== 'string') throw bad('"client" must be a string');
        if (user !== undefined && (typeof user !== 'string' || user === '')) {
          throw bad('"user" must be a non-empty user id (anonymous clients are disconnected by "client")');
        }
        if (client === undefined && user === undefined) throw bad('give "client" or "user"');
        if (typeof reconnect !== 'boolean') throw bad('"reconnect" must be a boolean');
        if (opts.disconnect === undefined) {
          return Promise.resolve(JSON.stringify({ disconnected: hub.disconnect({ client, user }, reconnect) }));
        }
        // Nodes that did not answer are named, so the caller knows the count may be short.
        return opts
          .disconnect({ client, user, reconnect })
          .then(({ disconnected, nodeErrors }) =>
            JSON.stringify(nodeErrors.length === 0 ? { disconnected } : { disconnected, nodeErrors }),
          );
      },
      batch: (b) => runBatch(b, methodOf, errorBody),
    };
  }

  /** The server API method called `name` (`publish`, `batch`, ...), or undefined. */
  methodOf(name: string): ApiMethod | undefined {
    return Object.prototype.hasOwnProperty.call(this.methods, name) ? this.methods[name] : undefined;
  }

  /** Handles a request whose path starts with `/api/`. */
  handle(req: IncomingMessage, res: ServerResponse, method: string): void {
    const start = performance.now();
    this.run(req, res, method).then(
      () => this.observe(method, res.statusCode, start),
      (err: unknown) => {
        const body = toErrorBody(err, this.opts.logger);
        // RFC 7694: a 415 for a content coding says which codings are accepted.
        const headers: Record<string, string> =
          body.code === 'HERALD_ERR_API_UNSUPPORTED_ENCODING' ? { 'Accept-Encoding': 'identity' } : {};
        if (!res.headersSent) sendJsonError(res, ErrorCodes[body.code].status, body, headers);
        else res.destroy();
        this.observe(method, res.statusCode, start);
      },
    );
  }

  /** Serves the upgrade of `GET /api/ws`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.socket.handleUpgrade(req, socket, head);
  }

  /** Counts a request by method (`unknown` for a name that is none) and status, with its latency. */
  private observe(name: string, status: number, start: number): void {
    const m = this.opts.metrics ?? noMetrics;
    const method = this.methodOf(name) !== undefined ? name : 'unknown';
    // Per method, then per status: no key string is built per request.
    let byStatus = this.requests.get(method);
    if (byStatus === undefined) this.requests.set(method, (byStatus = new Map()));
    let c = byStatus.get(status);
    if (c === undefined) {
      c = m.counter('herald_api_requests_total', 'Server API requests, by method and HTTP status', {
        method,
        status: String(status),
      });
      byStatus.set(status, c);
    }
    c.inc();
    let h = this.latency.get(method);
    if (h === undefined) {
      h = m.histogram('herald_api_request_duration_seconds', 'Server API requests, from head to answer', API_BUCKETS, {
        method,
      });
      this.latency.set(method, h);
    }
    h.observe((performance.now() - start) / 1000);
  }

  private async run(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    if (!this.keys.check(req.headers.authorization)) {
      req.resume();
      this.opts.logger.info(
        { code: 'HERALD_ERR_API_UNAUTHORIZED', method: name, ip: req.socket.remoteAddress },
        'api: unauthorized',
      );
      sendJsonError(
        res,
        401,
        { code: 'HERALD_ERR_API_UNAUTHORIZED', message: 'missing or wrong API key (Authorization: apikey <key>)' },
        { 'WWW-Authenticate': 'apikey' },
      );
      return;
    }
    const method = this.methodOf(name);
    if (method === undefined && name === 'ws') {
      req.resume();
      sendJsonError(
        res,
        426,
        { code: 'HERALD_ERR_API_BAD_REQUEST', message: 'GET /api/ws must be a WebSocket upgrade' },
        req.httpVersionMajor === 1 ? { Upgrade: 'websocket' } : {},
      );
      return;
    }
    if (method === undefined) {
      req.resume();
      sendJsonError(res, 404, { code: 'HERALD_ERR_API_NOT_FOUND', message: `no API method "${name.slice(0, 64)}"` });
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      sendJsonError(res, 405, { code: 'HERALD_ERR_API_METHOD_NOT_ALLOWED', message: 'use POST' }, { Allow: 'POST' });
      return;
    }
    const type = req.headers['content-type'];
    if (type !== undefined && type !== 'application/json' && !/^application\/json\b/i.test(type)) {
      req.resume();
      // Say what came, so that `curl -d` (application/x-www-form-urlencoded) is recognized at once.
      throw new HeraldError(
        'HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE',
        `send Content-Type: application/json (got ${printable(type)})`,
      );
    }
    const raw = await readBody(req, this.opts.maxBodySize);
    let body: unknown;
    try {
      body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
    } catch {
      throw bad('the body is not valid JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object');
    const text = await method(body as Body);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }
}

/** Most channels `channels` lists from the engine's presence when no `limit` is given. */
const CHANNELS_LIMIT = 1000;

interface ChannelEntry {
  stream: string;
  /** Subscribers on this node. */
  subscribers: number;
  /** Clients and users present on every node (channels of namespaces with presence on). */
  presence?: { clients: number; users: number };
}

/**
 * `channels`: the streams with subscribers on this node that match `pattern`, and, when the
 * pattern names a namespace with presence on (`game.*`, `game.42`), the channels of that namespace
 * that have subscribers on any node; each with its presence counts where presence is kept.
 */
async function channels(hub: Hub, b: Body): Promise<ChannelEntry[]> {
  const pattern = b['pattern'];
  if (pattern !== undefined && typeof pattern !== 'string') throw bad('"pattern" must be a string');
  const limit = b['limit'] ?? CHANNELS_LIMIT;
  if (!(Number.isInteger(limit) && (limit as number) >= 1 && (limit as number) <= 10_000)) {
    throw bad('"limit" must be an integer from 1 to 10000');
  }
  const prefix = typeof pattern === 'string' && pattern.endsWith('*') ? pattern.slice(0, -1) : undefined;
  const out = new Map<string, ChannelEntry>();
  for (const c of hub.channels()) {
    if (pattern === undefined || (prefix !== undefined ? c.stream.startsWith(prefix) : c.stream === pattern)) {
      out.set(c.stream, { stream: c.stream, subscribers: c.subscribers });
    }
  }
  // Channels with subscribers on other nodes too, from the presence of the namespace the pattern names.
  const named = prefix ?? pattern;
  const dot = named?.indexOf('.') ?? -1;
  if (named !== undefined && (dot > 0 || (prefix === undefined && isValidChannel(named)))) {
    const namespace = dot > 0 ? named.slice(0, dot) : named;
    const found = await hub.presenceChannels(namespace, named, limit as number);
    for (const c of found) {
      if (prefix === undefined && c.stream !== pattern) continue;
      const entry = out.get(c.stream) ?? { stream: c.stream, subscribers: 0 };
      entry.presence = { clients: c.clients, users: c.users };
      out.set(c.stream, entry);
    }
  }
  const counted = await Promise.all(
    [...out.values()].map(async (entry) => {
      if (entry.presence !== undefined) return entry;
      const counts = await hub.presenceCounts(entry.stream);
      if (counts !== undefined) entry.presence = { clients: counts.clients, users: counts.users };
      return entry;
    }),
  );
  return counted;
}

function bad(message: string): HeraldError {
  return new HeraldError('HERALD_ERR_API_BAD_REQUEST', message);
}

/** A header value as shown in an error message: at most 100 characters, only printable ASCII. */
function printable(value: string): string {
  if (value.trim() === '') return 'an empty value';
  const shown = value.replace(/[^\x20-\x7e]/g, '?');
  return shown.length > 100 ? `${shown.slice(0, 100)}...` : shown;
}

/** JSON.stringify(r) by hand, the field order kept: a checked channel needs no escaping. */
function publishAnswer(r: PublishResult): string {
  return `{"channel":"${r.channel}","epoch":${JSON.stringify(r.epoch)},"offset":${r.offset},"duplicate":${r.duplicate}}`;
}

/** A publish's payload: `data` (any JSON), or `b64data` (bytes, in base64); not both. */
function payloadOf(b: Body): unknown {
  if (b['b64data'] === undefined) return b['data'];
  if (b['data'] !== undefined) throw bad('give "data" or "b64data", not both');
  return bytesOfBase64(b['b64data']);
}

function optKey(b: Body): string | undefined {
  const key = b['idempotencyKey'];
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || key.length === 0 || key.length > 128) {
    throw bad('"idempotencyKey" must be a string of 1-128 characters');
  }
  return key;
}

/** `since` as `{epoch, offset}` or as the text cursor `epoch:offset`. */
function optSince(v: unknown): StreamPosition | undefined {
  if (v === undefined) return undefined;
  if (isStreamPosition(v)) return copyStreamPosition(v);
  const parsed = parseCursor(v);
  if (parsed === undefined)
    throw new HeraldError('HERALD_ERR_CURSOR_INVALID', '"since" must be {"epoch","offset"} or "epoch:offset"');
  return parsed;
}
