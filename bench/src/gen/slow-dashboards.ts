/**
 * The slow subscribers of the slow-consumer benchmark (`npm run bench -- slow`), run as their own
 * process on the generator's core: "dashboards", each one WebSocket subscribed to every channel of
 * the ticker, that read slowly — or at full speed, for the run without slow readers. A slow one
 * pauses its socket once a tenth of a second's budget of `bytesPerSec` is read and resumes on its
 * next tenth; a resumed socket reads at least what one socket read brings (up to 64 KiB), so what
 * it takes is measured and reported (`readBytesPerSec`), not assumed. The tenths are staggered over
 * the dashboards, as independent clients' would be. A dashboard whose connection is closed (SLOW,
 * 3002) reconnects and subscribes again with `backlog: 1`, as an application would to show the
 * latest values.
 *
 * At the end (`final`), every dashboard reads at full speed until it holds, for every channel, the
 * last publication made: whether the slow ones get the latest value.
 */
import WebSocket from 'ws';
import { channelName, type Envelope } from './messages.js';

export type DashboardRequest =
  | {
      readonly type: 'connect';
      readonly port: number;
      readonly n: number;
      readonly channels: number;
      /** 0: read at full speed. */
      readonly bytesPerSec: number;
    }
  | { readonly type: 'final'; readonly final: readonly number[]; readonly timeoutMs: number }
  | { readonly type: 'close' };

export interface DashboardStats {
  readonly dashboards: number;
  /** Dashboards that hold the last publication of every channel (after `final`). */
  readonly withLatest: number;
  /** Connections closed by the server (SLOW), each followed by a reconnect. */
  readonly disconnects: number;
  /** `skip` pushes received, and the publications they announced as dropped. */
  readonly skipPushes: number;
  readonly skipped: number;
  readonly deliveries: number;
  readonly ms: number;
  /** What a dashboard read per second, on average, while throttled (0 at full speed). */
  readonly readBytesPerSec: number;
}

export type DashboardReply = { readonly ok: number } | DashboardStats | { readonly done: true };

interface Backlog {
  readonly channel: string;
  readonly data: { readonly seq: number };
}

const TICK_MS = 100;
const SEQ = '"seq":';
const CHANNEL = '"channel":"';

class Dashboard {
  ws: WebSocket | undefined;
  /** Last sequence number seen, per channel index. */
  readonly last: number[];
  used = 0;
  subscribed = false;

  constructor(
    readonly owner: Dashboards,
    channels: number,
  ) {
    this.last = new Array<number>(channels).fill(0);
  }

  open(backlog: boolean): void {
    const ws = new WebSocket(`ws://127.0.0.1:${this.owner.port}/ws`);
    this.ws = ws;
    ws.on('open', () => {
      const cmds: string[] = [];
      for (let c = 0; c < this.last.length; c++) {
        cmds.push(
          JSON.stringify({ id: c + 1, cmd: 'subscribe', channel: channelName(c), ...(backlog ? { backlog: 1 } : {}) }),
        );
      }
      ws.send(cmds.join('\n'));
    });
    ws.on('message', (data: Buffer) => this.read(data));
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (this.ws !== ws || this.owner.closing) return;
      this.owner.disconnects++;
      setTimeout(() => this.open(true), 100);
    });
  }

  /** A new tenth of a second: its budget again, and reading again if it had stopped. */
  tick(): void {
    this.used = 0;
    if (this.ws?.isPaused === true) this.ws.resume();
  }

  private read(data: Buffer): void {
    const o = this.owner;
    this.used += data.byteLength;
    if (o.bytesPerSec > 0) o.throttledBytes += data.byteLength;
    const text = data.toString('utf8');
    let at = 0;
    while (at < text.length) {
      let end = text.indexOf('\n', at);
      if (end === -1) end = text.length;
      const line = text.slice(at, end);
      at = end + 1;
      if (line.startsWith('{"push":"pub"')) {
        const c = line.indexOf(CHANNEL);
        const s = line.indexOf(SEQ);
        if (c === -1 || s === -1) continue;
        const ch = Number(line.slice(c + CHANNEL.length + 1, line.indexOf('"', c + CHANNEL.length)));
        const seq = Number.parseInt(line.slice(s + SEQ.length, s + SEQ.length + 16), 10);
        if ((this.last[ch] ?? 0) < seq) this.last[ch] = seq;
        o.deliveries++;
      } else if (line.startsWith('{"push":"skip"')) {
        o.skipPushes++;
        o.skipped += (JSON.parse(line) as { count: number }).count;
      } else if (line.startsWith('{"id":') && line.includes('"result"')) {
        this.subscribed = true;
        // A subscribe with `backlog: 1` (after a reconnect) carries the channel's latest publication.
        const pubs = (JSON.parse(line) as { result: { publications?: Backlog[] } }).result.publications ?? [];
        for (const p of pubs) {
          const ch = Number(p.channel.slice(1));
          if ((this.last[ch] ?? 0) < p.data.seq) this.last[ch] = p.data.seq;
        }
      }
    }
    if (o.bytesPerSec > 0 && this.used >= o.bytesPerSec / (1000 / TICK_MS)) this.ws?.pause();
  }
}

class Dashboards {
  port = 0;
  bytesPerSec = 0;
  closing = false;
  disconnects = 0;
  skipPushes = 0;
  skipped = 0;
  deliveries = 0;
  /** Bytes read while throttled, since `throttledSince`. */
  throttledBytes = 0;
  private throttledSince = 0;
  private readonly all: Dashboard[] = [];
  private readonly ticks: NodeJS.Timeout[] = [];

  async handle(req: DashboardRequest): Promise<DashboardReply> {
    switch (req.type) {
      case 'connect':
        return this.connect(req.port, req.n, req.channels, req.bytesPerSec);
      case 'final':
        return this.final(req.final, req.timeoutMs);
      case 'close':
        this.closing = true;
        for (const t of this.ticks) clearInterval(t);
        for (const d of this.all) d.ws?.terminate();
        return { done: true };
    }
  }

  private async connect(port: number, n: number, channels: number, bytesPerSec: number): Promise<{ ok: number }> {
    this.port = port;
    for (let i = 0; i < n; i++) {
      const d = new Dashboard(this, channels);
      this.all.push(d);
      d.open(false);
      // Each dashboard's tenth of a second starts at its own phase.
      this.ticks.push(setTimeout(() => this.ticks.push(setInterval(() => d.tick(), TICK_MS)), (i * TICK_MS) / n));
    }
    await until(() => this.all.every((d) => d.subscribed), 30_000);
    // Throttled from now on: subscribing went at full speed.
    this.bytesPerSec = bytesPerSec;
    this.throttledSince = performance.now();
    return { ok: this.all.filter((d) => d.subscribed).length };
  }

  private async final(final: readonly number[], timeoutMs: number): Promise<DashboardStats> {
    const t0 = performance.now();
    const throttled = this.bytesPerSec > 0 ? (t0 - this.throttledSince) / 1000 : 0;
    this.bytesPerSec = 0;
    for (const d of this.all) d.tick();
    const latest = (d: Dashboard): boolean => final.every((seq, ch) => (d.last[ch] ?? 0) >= seq);
    await until(() => this.all.every(latest), timeoutMs);
    return {
      dashboards: this.all.length,
      withLatest: this.all.filter(latest).length,
      disconnects: this.disconnects,
      skipPushes: this.skipPushes,
      skipped: this.skipped,
      deliveries: this.deliveries,
      ms: performance.now() - t0,
      readBytesPerSec: throttled > 0 ? this.throttledBytes / this.all.length / throttled : 0,
    };
  }
}

/** Resolves once `cond()` holds, or after `ms` (the caller reports what it finds then). */
async function until(cond: () => boolean, ms: number): Promise<void> {
  const t0 = performance.now();
  while (!cond() && performance.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
}

const dashboards = new Dashboards();
process.on('message', (msg: Envelope<DashboardRequest>) => {
  dashboards.handle(msg.body).then(
    (body) => {
      process.send?.({ id: msg.id, body });
      if (msg.body.type === 'close') setImmediate(() => process.exit(0));
    },
    (err: unknown) => process.send?.({ id: msg.id, body: { error: String(err) } }),
  );
});
process.on('disconnect', () => process.exit(0));
