/**
 * A client that keeps one subscription alive across reconnects, checking continuity as it goes:
 * every publication must be the next offset of the same epoch, and every resubscribe with a cursor
 * must be `recovered: true`. Used by the recovery tests (one node, and several nodes over Redis).
 */
import WebSocket from 'ws';
import { withTimeout } from '@herald/test-support';
import { type Frame } from '@herald/test-support/server';

/** Small deterministic PRNG so a failure can be replayed with the same seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface Received {
  offset: number;
  channel: string;
  data: unknown;
}

/** A client that keeps one subscription alive across reconnects, checking continuity as it goes. */
export class ChurningClient {
  readonly got: Received[] = [];
  epoch: string | undefined;
  offset = 0;
  reconnects = 0;
  errors: string[] = [];
  private ws: WebSocket | undefined;
  private stopped = false;
  private waiters: (() => void)[] = [];

  /** `url` may be a function: each session then connects to the URL it returns (several nodes). */
  constructor(
    private readonly url: string | (() => string),
    readonly stream: string,
    private readonly rand: () => number,
  ) {}

  private accept(p: Received, epoch: string): void {
    if (this.epoch !== undefined && epoch !== this.epoch) this.errors.push(`epoch changed ${this.epoch} → ${epoch}`);
    this.epoch = epoch;
    if (p.offset !== this.offset + 1) this.errors.push(`offset ${p.offset} after ${this.offset}`);
    this.offset = p.offset;
    this.got.push(p);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Connects, subscribes from the cursor, and drops after a random number of publications. */
  async session(dropAfter: number | undefined): Promise<void> {
    const ws = new WebSocket(typeof this.url === 'string' ? this.url : this.url());
    this.ws = ws;
    const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
    ws.on('error', () => undefined);
    let seen = 0;
    const drop = (): void => {
      if (this.rand() < 0.5) ws.terminate();
      else ws.close();
    };
    ws.on('open', () => {
      const cmd: Frame = { id: 1, cmd: 'subscribe', channel: this.stream };
      if (this.epoch !== undefined) cmd['since'] = { epoch: this.epoch, offset: this.offset };
      ws.send(JSON.stringify(cmd));
      if (dropAfter === 0) drop(); // race a drop with the in-flight subscribe
    });
    ws.on('message', (raw: Buffer) => {
      for (const line of raw.toString().split('\n')) {
        const f = JSON.parse(line) as Frame;
        if (f['id'] === 1) {
          if (f['error'] !== undefined) {
            this.errors.push(`subscribe error ${JSON.stringify(f['error'])}`);
            continue;
          }
          const r = f['result'];
          if (this.epoch !== undefined && r.recovered !== true) this.errors.push(`not recovered at ${this.offset}`);
          for (const p of r.publications as Received[]) this.accept(p, r.epoch);
          if (r.publications.length === 0) {
            if (this.epoch === undefined) this.epoch = r.epoch;
            if (r.offset !== this.offset && this.got.length > 0)
              this.errors.push(`reply offset ${r.offset} != ${this.offset}`);
            if (this.got.length === 0) this.offset = r.offset;
          }
        } else if (f['push'] === 'pub') {
          this.accept({ offset: f['offset'], channel: f['channel'], data: f['data'] }, f['epoch']);
          seen += 1;
          if (dropAfter !== undefined && seen === dropAfter) drop();
        }
      }
    });
    await closed;
  }

  async churn(until: () => boolean): Promise<void> {
    while (!until() && !this.stopped) {
      const r = this.rand();
      const dropAfter = r < 0.15 ? 0 : 1 + Math.floor(this.rand() * 25);
      await this.session(dropAfter);
      this.reconnects += 1;
    }
  }

  /** Ends the current session (the churn loop then sees its end condition). */
  interrupt(): void {
    this.ws?.terminate();
  }

  /** Final session that stays connected until `offset` reaches `top`. */
  async settle(top: number): Promise<void> {
    void this.session(undefined);
    await this.reach(top);
    this.stop();
  }

  /** Waits (without connecting) until `offset` reaches `top`. */
  async reach(top: number, ms = 10_000): Promise<void> {
    while (this.offset < top) {
      await withTimeout(
        new Promise<void>((r) => this.waiters.push(r)),
        ms,
        `${this.stream} to reach ${top} (at ${this.offset})`,
      );
    }
  }

  /** Closes the current session and ends the churn loop. */
  stop(): void {
    this.stopped = true;
    this.ws?.close();
  }
}
