/**
 * `herald publish` and `herald subscribe`: small clients for trying and debugging a server.
 * Human output on a terminal, JSON when piped or with `--json` (output.ts).
 */
import WebSocket from 'ws';
import { ErrorCodes, type ErrorCode } from '@herald/protocol';
import { backoffDelay, shouldLogAttempt } from './backoff.js';
import {
  CliError,
  EXIT_OK,
  StatusLine,
  UsageError,
  channelArgument,
  clockTime,
  columns,
  compact,
  describeNetworkError,
  humanOutput,
  intOption,
  isTerminal,
  parseCommandArgs,
  shortDuration,
  truncate,
} from './output.js';
import { callApi, resolveApiKey, resolveTarget, unreachable, type Target } from './server-client.js';

const PUBLISH_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  'idempotency-key': { type: 'string' },
  json: { type: 'boolean' },
} as const;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY === true) throw new UsageError('<data> is "-" but stdin is a terminal: pipe the JSON in');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export async function runPublish(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, PUBLISH_OPTIONS);
  const [channel, raw] = positionals;
  if (channel === undefined || raw === undefined) {
    throw new UsageError(`give a channel and the data, e.g. herald publish chat.room1 '{"text":"hello"}'`);
  }
  if (positionals.length > 2) {
    throw new UsageError(`too many arguments: the data is one JSON argument; quote it, e.g. '{"text":"hi there"}'`);
  }
  channelArgument(channel, false);
  const target = resolveTarget(values.url);
  const key = resolveApiKey(values['api-key']);
  const text = raw === '-' ? await readStdin() : raw;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    const quoted = JSON.stringify(truncate(text, 40));
    throw new UsageError(`<data> is not JSON: ${truncate(text, 60)}; a text needs JSON quotes: '${quoted}'`);
  }
  const body: Record<string, unknown> = { channel, data };
  if (values['idempotency-key'] !== undefined) body['idempotencyKey'] = values['idempotency-key'];
  const reply = await callApi(target, key, 'publish', body);
  if (!humanOutput(values.json)) {
    console.log(reply.text);
    return EXIT_OK;
  }
  const r = reply.value as { channel: string; epoch: string; offset: number; duplicate?: boolean };
  console.log(
    r.duplicate === true
      ? `already published to ${r.channel} at offset ${r.offset} (epoch ${r.epoch}): same idempotency key, nothing sent`
      : `published to ${r.channel} at offset ${r.offset} (epoch ${r.epoch})`,
  );
  return EXIT_OK;
}

const SUBSCRIBE_OPTIONS = {
  url: { type: 'string' },
  backlog: { type: 'string' },
  count: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

interface Position {
  epoch: string;
  offset: number;
}

interface Publication {
  channel: string;
  offset: number;
  data?: unknown;
  /** In place of `data` for a payload of bytes (docs/protocol.md, binary payloads). */
  b64data?: string;
}

/** How one connection ended. */
type Outcome =
  { kind: 'retry'; message: string; retryAfterMs?: number } | { kind: 'fatal'; message: string } | { kind: 'done' };

/** Publications per second over the last few seconds, sampled once a second. */
class RateMeter {
  private readonly samples: { at: number; count: number }[] = [];

  sample(count: number, now: number): void {
    this.samples.push({ at: now, count });
    while (this.samples.length > 6) this.samples.shift();
  }

  rate(count: number, now: number): number {
    const first = this.samples[0];
    if (first === undefined || now - first.at < 500) return 0;
    return ((count - first.count) * 1000) / (now - first.at);
  }
}

/**
 * Subscribes over WebSocket and prints each publication. Reconnects after a failure or a drop,
 * with backoff, and resumes from its position, saying so when publications were missed.
 */
export async function runSubscribe(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, SUBSCRIBE_OPTIONS);
  const [stream] = positionals;
  if (stream === undefined) throw new UsageError(`give a channel or prefix.**, e.g. herald subscribe 'chat.**'`);
  if (positionals.length > 1) throw new UsageError(`one channel at a time; for several, subscribe to prefix.**`);
  channelArgument(stream, true);
  const backlog = intOption('backlog', values.backlog, 0, 1000) ?? 0;
  const count = intOption('count', values.count, 1, Number.MAX_SAFE_INTEGER);
  const target = resolveTarget(values.url);
  const token = values.token ?? (process.env['HERALD_TOKEN'] || undefined);
  const sub = new Subscriber(stream, target, {
    backlog,
    count,
    token,
    human: humanOutput(values.json),
    status: new StatusLine(isTerminal(process.stderr)),
  });
  return sub.run();
}

interface SubscriberOptions {
  backlog: number;
  count: number | undefined;
  token: string | undefined;
  human: boolean;
  status: StatusLine;
}

class Subscriber {
  private readonly wsUrl: string;
  private readonly status: StatusLine;
  private cursor: Position | undefined;
  private received = 0;
  private readonly meter = new RateMeter();
  /** Failed tries in a row. */
  private failures = 0;
  private lastLog = { reason: '', at: 0 };
  private ws: WebSocket | undefined;
  private retryAt = 0;
  private retryReason = '';
  private phase: 'connecting' | 'live' | 'waiting' = 'connecting';
  /** Whether a subscribe succeeded at least once. */
  private subscribed = false;

  constructor(
    private readonly stream: string,
    private readonly target: Target,
    private readonly opts: SubscriberOptions,
  ) {
    this.wsUrl = `${target.base.replace(/^http/, 'ws')}/ws`;
    this.status = opts.status;
  }

  async run(): Promise<number> {
    const ticker = setInterval(() => this.tick(), 1000);
    const onSignal = (signal: NodeJS.Signals): void => this.stop(signal, onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      for (;;) {
        this.phase = 'connecting';
        this.showStatus();
        const outcome = await this.connectOnce();
        if (outcome.kind === 'done') return EXIT_OK;
        if (outcome.kind === 'fatal') throw new CliError(outcome.message);
        this.failures += 1;
        const delay = outcome.retryAfterMs ?? backoffDelay(this.failures);
        this.noteFailure(outcome.message, delay);
        await this.wait(delay);
      }
    } finally {
      clearInterval(ticker);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      this.status.clear();
    }
  }

  /** Ctrl-C: erase the status line, say how many arrived, and die of the signal (as shells expect). */
  private stop(signal: NodeJS.Signals, handler: (s: NodeJS.Signals) => void): void {
    this.ws?.terminate();
    this.status.clear();
    if (this.status.enabled && this.subscribed) {
      process.stderr.write(
        `herald subscribe: received ${this.received} publication${this.received === 1 ? '' : 's'}\n`,
      );
    }
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
    process.kill(process.pid, signal);
  }

  private tick(): void {
    const now = Date.now();
    this.meter.sample(this.received, now);
    this.showStatus();
  }

  private showStatus(): void {
    if (!this.status.enabled) return;
    const where = this.target.base.replace(/^https?:\/\//, '');
    if (this.phase === 'connecting') {
      this.status.set(
        this.failures === 0
          ? `connecting to ${this.wsUrl} …`
          : `${this.retryReason} · trying again (try ${this.failures + 1}) …`,
      );
    } else if (this.phase === 'live') {
      const rate = this.meter.rate(this.received, Date.now());
      this.status.set(
        `${this.stream} at ${where} · received ${this.received} · ${rate.toFixed(rate >= 10 ? 0 : 1)}/s · Ctrl-C to stop`,
      );
    } else {
      const left = Math.max(0, this.retryAt - Date.now());
      this.status.set(`${this.retryReason} · try ${this.failures + 1} in ${Math.ceil(left / 1000)} s`);
    }
  }

  /** After a failed try: the status line on a terminal, else a line on stderr now and then. */
  private noteFailure(reason: string, delay: number): void {
    this.phase = 'waiting';
    this.retryReason = reason;
    this.retryAt = Date.now() + delay;
    if (this.status.enabled) {
      this.showStatus();
      return;
    }
    const now = Date.now();
    if (!shouldLogAttempt(this.failures, reason !== this.lastLog.reason, now - this.lastLog.at)) return;
    this.lastLog = { reason, at: now };
    process.stderr.write(
      `herald subscribe: ${reason}; retrying in ${shortDuration(delay)} (attempt ${this.failures})\n`,
    );
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  private onSubscribed(r: { epoch: string; offset: number; recovered?: boolean; publications?: Publication[] }): void {
    const wasFailing = this.failures > 0;
    this.failures = 0;
    this.subscribed = true;
    this.phase = 'live';
    if (r.recovered === false) {
      this.status.print(
        `herald subscribe: publications were missed while disconnected (the server no longer kept them)`,
        'err',
      );
    } else if (wasFailing && !this.status.enabled) {
      this.lastLog = { reason: '', at: 0 };
      process.stderr.write(`herald subscribe: subscribed to ${this.stream} at ${this.wsUrl}\n`);
    }
    this.cursor = { epoch: r.epoch, offset: r.offset };
  }

  /** Prints a publication; true once `--count` publications were printed. */
  private onPublication(p: Publication, live: boolean): boolean {
    this.received += 1;
    if (this.opts.human) {
      const time = live ? clockTime(new Date()) : 'history     ';
      const head = `${time}  ${p.channel}  #${p.offset}  `;
      const width = isTerminal(process.stdout) ? columns(process.stdout) : Infinity;
      const shown = p.b64data !== undefined ? `bytes ${p.b64data}` : compact(p.data);
      this.status.print(head + truncate(shown, Math.max(20, width - head.length - 1)));
    } else {
      const payload = p.b64data !== undefined ? { b64data: p.b64data } : { data: p.data };
      this.status.print(JSON.stringify({ channel: p.channel, offset: p.offset, ...payload }));
    }
    return this.opts.count !== undefined && this.received >= this.opts.count;
  }

  private connectOnce(): Promise<Outcome> {
    return new Promise((resolve) => {
      const headers: Record<string, string> = { 'User-Agent': 'herald-cli' };
      if (this.opts.token !== undefined) headers['Authorization'] = `Bearer ${this.opts.token}`;
      const ws = new WebSocket(this.wsUrl, { headers, handshakeTimeout: 15_000 });
      this.ws = ws;
      let settled = false;
      let retryAfterMs: number | undefined;
      let closeReason: string | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      let silenceMs = 60_000;
      const done = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
        resolve(o);
      };
      // A server that vanished without closing the TCP connection stops sending pings: reconnect.
      const alive = (): void => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          closeReason = `no heartbeat from the server for ${shortDuration(silenceMs)}`;
          ws.terminate();
        }, silenceMs);
      };
      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(refusal(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), this.wsUrl)));
        res.on('error', () =>
          done({ kind: 'retry', message: `the server refused the connection (HTTP ${res.statusCode})` }),
        );
      });
      ws.on('open', () => {
        alive();
        const cmd: Record<string, unknown> = { id: 1, cmd: 'subscribe', channel: this.stream };
        if (this.cursor !== undefined) cmd['since'] = this.cursor;
        else if (this.opts.backlog > 0) cmd['backlog'] = this.opts.backlog;
        ws.send(JSON.stringify(cmd));
      });
      ws.on('ping', alive);
      ws.on('message', (raw: WebSocket.RawData) => {
        alive();
        const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw);
        for (const line of text.split('\n')) {
          if (line.trim() === '' || settled) continue;
          let f: Record<string, unknown>;
          try {
            f = JSON.parse(line) as Record<string, unknown>;
          } catch {
            done({
              kind: 'fatal',
              message: `the server sent a frame that is not JSON: is ${this.wsUrl} a Herald server?`,
            });
            return;
          }
          if (f['push'] === 'connected' && typeof f['pingInterval'] === 'number' && f['pingInterval'] > 0) {
            silenceMs = 2 * f['pingInterval'] + 10_000;
            alive();
          } else if (f['id'] === 1 && f['error'] !== undefined) {
            done(replyError(f['error']));
            return;
          } else if (f['id'] === 1) {
            const r = f['result'] as {
              epoch: string;
              offset: number;
              recovered?: boolean;
              publications?: Publication[];
            };
            this.onSubscribed(r);
            for (const p of r.publications ?? []) {
              if (this.onPublication(p, false)) return done({ kind: 'done' });
            }
          } else if (f['push'] === 'pub') {
            this.cursor = { epoch: f['epoch'] as string, offset: f['offset'] as number };
            const pub = { channel: f['channel'] as string, offset: f['offset'] as number, data: f['data'] };
            if (this.onPublication(pub, true)) return done({ kind: 'done' });
          } else if (f['push'] === 'disconnect') {
            if (typeof f['retryAfterMs'] === 'number') retryAfterMs = f['retryAfterMs'];
            closeReason = `disconnected by the server: ${String(f['reason'])}`;
            if (f['reconnect'] === false) return done({ kind: 'fatal', message: closeReason });
          }
        }
        this.showStatus();
      });
      ws.on('error', (err) => {
        const message =
          ws.readyState === WebSocket.OPEN
            ? `connection lost: ${describeNetworkError(err)}`
            : unreachable(this.target, err);
        done({ kind: 'retry', message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
      });
      ws.on('close', (code) => {
        const message = closeReason ?? (code === 1006 ? 'connection lost' : `connection closed (code ${code})`);
        done({ kind: 'retry', message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
      });
    });
  }
}

/** An error reply to `subscribe`: worth retrying when the server is in trouble (5xx, 429), else the end. */
function replyError(error: unknown): Outcome {
  const e = error as { code?: string; message?: string };
  const message = `${e.message ?? 'refused'} (${e.code ?? 'no code'})`;
  const status = e.code !== undefined && e.code in ErrorCodes ? ErrorCodes[e.code as ErrorCode].status : 400;
  if (status >= 500 || status === 429) return { kind: 'retry', message: `the server could not subscribe: ${message}` };
  const hint =
    e.code === 'HERALD_ERR_PERMISSION_DENIED'
      ? '; a token may grant it: --token or HERALD_TOKEN'
      : e.code?.startsWith('HERALD_ERR_AUTH_') === true
        ? '; give a token with --token or HERALD_TOKEN'
        : '';
  return { kind: 'fatal', message: `${message}${hint}` };
}

/** The server refused the WebSocket upgrade with HTTP `status`. */
function refusal(status: number, body: string, url: string): Outcome {
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = (JSON.parse(body) as { error?: typeof error }).error;
  } catch {
    error = undefined;
  }
  if (typeof error?.code !== 'string') {
    const message = `HTTP ${status} for ${url}: is it a Herald server?`;
    return status >= 500 ? { kind: 'retry', message } : { kind: 'fatal', message };
  }
  const text = `${typeof error.message === 'string' ? error.message : 'refused'} (${error.code}, HTTP ${status})`;
  if (status >= 500 || status === 429) return { kind: 'retry', message: `the server refused the connection: ${text}` };
  const hint = error.code.startsWith('HERALD_ERR_AUTH_TOKEN') ? '; give a token with --token or HERALD_TOKEN' : '';
  return { kind: 'fatal', message: `${text}${hint}` };
}
