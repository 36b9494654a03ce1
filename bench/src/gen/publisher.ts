/**
 * The publisher side of the load generator, run as its own process. Publishes at a fixed rate over
 * HTTP/1.1 keep-alive connections (hand-rolled, like the subscriber clients, so that the generator's
 * core measures the server and not Node's HTTP client), one request in flight per connection.
 *
 * Channel `c` always goes through connection `c % sockets`: publications to one channel therefore
 * reach the server in sequence-number order (one after the other, or pipelined on that connection),
 * which the subscribers' lost/duplicate accounting relies on. Each payload gets its sequence number and its
 * `process.hrtime.bigint()` timestamp when its request is written (so latency does not include time
 * spent queued in the publisher; a publisher that falls behind shows as `achievedRate` < rate).
 *
 * With the `herald-batch` style, a connection that becomes free sends everything queued for it (up to
 * the spec's `batch`) as one `POST /api/batch`: batches grow only when publications wait, as they
 * would in a backend that publishes through a small pool of connections.
 *
 * With the `herald-apiws` style, every publication is one frame on one `GET /api/ws` WebSocket
 * (api-socket-client.ts), at most `STREAM_WINDOW` unanswered: one connection keeps every channel's
 * order.
 */
import { connect, type Socket } from 'node:net';
import { channelName, type Envelope, type PublisherReply, type PublisherRequest, type PubSpec } from './messages.js';
import type { PublishResult } from './messages.js';
import { payload } from './scan.js';
import { ApiSocketClient } from './api-socket-client.js';

const HOST = '127.0.0.1';
/** Publications waiting in the publisher beyond which the scheduler stops adding more. */
const MAX_QUEUED = 20_000;
/** Publications unanswered at once on the `/api/ws` connection (the server runs up to 1000). */
const STREAM_WINDOW = 500;

class Connection {
  inFlight = 0;
  readonly queue: number[] = [];
  /** Publications carried by each request in flight, oldest first (responses come back in order). */
  private readonly counts: number[] = [];
  private socket: Socket | undefined;
  private buf = '';

  constructor(
    private readonly port: number,
    /** Requests in flight at once (HTTP/1.1 pipelining; responses come back in request order). */
    private readonly depth: number,
    private readonly done: (conn: Connection, status: number, body: string, count: number) => void,
  ) {}

  get free(): boolean {
    return this.inFlight < this.depth;
  }

  send(request: string, count: number): void {
    this.inFlight++;
    this.counts.push(count);
    if (this.socket === undefined || this.socket.destroyed) this.open();
    this.socket!.write(request);
  }

  close(): void {
    this.socket?.destroy();
  }

  private open(): void {
    const socket = connect({ host: HOST, port: this.port });
    socket.setNoDelay(true);
    this.buf = '';
    socket.on('data', (chunk: Buffer) => this.data(chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
      while (this.inFlight > 0) this.finish(0, 'connection closed');
    });
    this.socket = socket;
  }

  private data(text: string): void {
    this.buf += text;
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.buf.slice(0, end).toLowerCase();
      const m = /content-length: *(\d+)/.exec(head);
      let bodyEnd: number;
      if (m !== null) {
        bodyEnd = end + 4 + Number(m[1]);
        if (this.buf.length < bodyEnd) return;
      } else if (head.includes('transfer-encoding: chunked')) {
        const empty = this.buf.startsWith('0\r\n\r\n', end + 4);
        const term = empty ? -1 : this.buf.indexOf('\r\n0\r\n\r\n', end);
        if (term === -1 && !empty) return;
        bodyEnd = empty ? end + 9 : term + 7;
      } else bodyEnd = end + 4;
      const body = this.buf.slice(end + 4, bodyEnd);
      this.buf = this.buf.slice(bodyEnd);
      this.finish(Number(head.slice(9, 12)), body);
    }
  }

  private finish(status: number, body: string): void {
    this.inFlight--;
    this.done(this, status, body, this.counts.shift() ?? 1);
  }
}

class Publisher {
  private spec: PubSpec | undefined;
  private seqs: number[] = [];
  private conns: Connection[] = [];
  /** `herald-apiws`: the one WebSocket, and the publications waiting for its window. */
  private stream: ApiSocketClient | undefined;
  private readonly streamQueue: number[] = [];
  private padding = '';
  private sent = 0;
  private failed = 0;
  private inFlight = 0;
  private queued = 0;
  private errors: string[] = [];
  private idle: (() => void) | undefined;
  private wake: (() => void) | undefined;

  configure(spec: PubSpec, channels: number, sockets: number, pipeline: number, payloadBytes: number): void {
    this.spec = spec;
    this.seqs = new Array<number>(channels).fill(0);
    for (const c of this.conns) c.close();
    this.stream?.close();
    this.stream = undefined;
    if (spec.style === 'herald-apiws') {
      this.conns = [];
      this.stream = new ApiSocketClient(spec.port, spec.path, spec.headers, {
        answers: (ok, failed, sample) => this.onStreamAnswers(ok, failed, sample),
        closed: (lost) => this.onStreamAnswers(0, lost, lost > 0 ? 'the /api/ws connection closed' : undefined),
      });
      this.padding = 'x'.repeat(Math.max(0, payloadBytes - 40));
      return;
    }
    this.conns = Array.from({ length: Math.max(1, Math.min(sockets, channels)) }, () => {
      return new Connection(spec.port, pipeline, (conn, status, body, count) =>
        this.onResponse(conn, status, body, count),
      );
    });
    this.padding = 'x'.repeat(Math.max(0, payloadBytes - 40));
  }

  private command(ch: number): string {
    const seq = ++this.seqs[ch]!;
    const data = payload(seq, process.hrtime.bigint(), this.padding);
    return `{"channel":"${channelName(ch)}","data":${data}}`;
  }

  private request(chs: readonly number[]): string {
    const spec = this.spec!;
    let body: string;
    let path = spec.path;
    if (spec.style === 'herald-batch') {
      body = `{"commands":[${chs.map((ch) => `{"publish":${this.command(ch)}}`).join(',')}]}`;
    } else if (spec.style === 'herald') {
      body = this.command(chs[0]!);
    } else {
      const ch = chs[0]!;
      body = payload(++this.seqs[ch]!, process.hrtime.bigint(), this.padding);
      path = path.replace('{ch}', channelName(ch));
    }
    let headers = '';
    for (const [k, v] of Object.entries(spec.headers)) headers += `${k}: ${v}\r\n`;
    return (
      `POST ${path} HTTP/1.1\r\nHost: ${HOST}:${spec.port}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`
    );
  }

  private enqueue(ch: number): void {
    if (this.stream !== undefined) {
      this.queued++;
      this.streamQueue.push(ch);
      this.pumpStream(this.stream);
      return;
    }
    const conn = this.conns[ch % this.conns.length]!;
    this.queued++;
    conn.queue.push(ch);
    if (conn.free) this.dispatch(conn);
  }

  /** Sends the connection's next request: one queued publication, or a batch of them. */
  private dispatch(conn: Connection): void {
    const n = this.spec!.style === 'herald-batch' ? Math.min(conn.queue.length, this.spec!.batch ?? 100) : 1;
    const chs = conn.queue.splice(0, n);
    this.queued -= chs.length;
    this.inFlight++;
    conn.send(this.request(chs), chs.length);
  }

  private pumpStream(stream: ApiSocketClient): void {
    while (stream.inFlight < STREAM_WINDOW && this.streamQueue.length > 0) {
      const ch = this.streamQueue.shift()!;
      this.queued--;
      this.inFlight++;
      stream.publish(this.command(ch));
    }
  }

  private onStreamAnswers(ok: number, failed: number, sample: string | undefined): void {
    this.inFlight -= ok + failed;
    this.sent += ok;
    this.failed += failed;
    if (sample !== undefined && this.errors.length < 5 && !this.errors.includes(sample)) this.errors.push(sample);
    if (this.stream !== undefined) this.pumpStream(this.stream);
    this.wake?.();
    if (this.inFlight === 0 && this.queued === 0) this.idle?.();
  }

  private onResponse(conn: Connection, status: number, body: string, count: number): void {
    this.inFlight--;
    // A batch answers 200 with one reply per command; a refused command is an `error` reply.
    const failed =
      status >= 200 && status < 300 ? (this.spec!.style === 'herald-batch' ? countErrors(body) : 0) : count;
    this.sent += count - failed;
    this.failed += failed;
    if (failed > 0) {
      const e = `HTTP ${status}: ${body.slice(0, 160)}`;
      if (this.errors.length < 5 && !this.errors.includes(e)) this.errors.push(e);
    }
    while (conn.free && conn.queue.length > 0) this.dispatch(conn);
    this.wake?.();
    if (this.inFlight === 0 && this.queued === 0) this.idle?.();
  }

  private async settle(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0 && this.queued === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.idle = undefined;
  }

  private result(t0: number, cpu0: NodeJS.CpuUsage, durationMs: number): PublishResult {
    const cpu = process.cpuUsage(cpu0);
    const ms = performance.now() - t0;
    return {
      sent: this.sent,
      failed: this.failed,
      ms,
      achievedRate: (this.sent + this.failed) / (Math.max(durationMs, 1) / 1000),
      final: this.seqs.slice(),
      cpuMs: (cpu.user + cpu.system) / 1000,
      errors: this.errors.splice(0),
    };
  }

  /** Publishes `rate` per second for `durationMs`, channels in round-robin order. */
  async run(rate: number, durationMs: number): Promise<PublishResult> {
    this.sent = 0;
    this.failed = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const channels = this.seqs.length;
    const total = Math.floor((rate * durationMs) / 1000);
    let scheduled = 0;
    let rr = 0;
    while (scheduled < total) {
      const elapsed = performance.now() - t0;
      if (elapsed >= durationMs) break;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (scheduled < due && this.queued < MAX_QUEUED) {
        this.enqueue(rr);
        rr = (rr + 1) % channels;
        scheduled++;
      }
      const nextAt = (scheduled * 1000) / rate;
      const wait = Math.max(0, Math.min(20, nextAt - (performance.now() - t0)));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        if (this.queued >= MAX_QUEUED) {
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        }
      });
      this.wake = undefined;
    }
    // Publications the publisher could not even queue in time are not sent.
    for (const c of this.conns) this.queued -= c.queue.splice(0).length;
    this.queued -= this.streamQueue.splice(0).length;
    await this.settle(10_000);
    return this.result(t0, cpu0, durationMs);
  }

  /** `count` publications to each of channels 0..channels-1, as fast as the connections allow. */
  async burst(count: number, channels: number): Promise<PublishResult> {
    this.sent = 0;
    this.failed = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < count; i++) for (let ch = 0; ch < channels; ch++) this.enqueue(ch);
    await this.settle(120_000);
    const ms = performance.now() - t0;
    return this.result(t0, cpu0, ms);
  }

  close(): void {
    for (const c of this.conns) c.close();
    this.stream?.close();
  }
}

function countErrors(body: string): number {
  let n = 0;
  for (let i = body.indexOf('{"error":'); i !== -1; i = body.indexOf('{"error":', i + 1)) n++;
  return n;
}

const pub = new Publisher();

async function handle(req: PublisherRequest): Promise<PublisherReply> {
  switch (req.type) {
    case 'config':
      pub.configure(req.spec, req.channels, req.sockets, req.pipeline, req.payloadBytes);
      return { done: true };
    case 'run':
      return pub.run(req.rate, req.durationMs);
    case 'burst':
      return pub.burst(req.count, req.channels);
    case 'close':
      pub.close();
      return { done: true };
  }
}

process.on('message', (msg: Envelope<PublisherRequest>) => {
  handle(msg.body).then(
    (body) => {
      process.send?.({ id: msg.id, body });
      if (msg.body.type === 'close') setImmediate(() => process.exit(0));
    },
    (err: unknown) => process.send?.({ id: msg.id, body: { error: String(err) } }),
  );
});
process.on('disconnect', () => process.exit(0));
