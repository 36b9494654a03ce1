/**
 * The chaos suite's backend: numbered publications through the server API. Per channel, one
 * publication at a time (`data.n` = 1, 2, 3, ...), so the order of a channel is the order of its
 * numbers; the channels run side by side. Each publication carries an idempotency key and is
 * retried on another node until one acknowledges it; an attempt that ends without an answer that
 * says whether it was applied (a timeout, a dropped connection, a 5xx) marks the number ambiguous.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { API_KEY } from '@herald/test-support/server';
import type { PublishLog } from './history-checker.js';

export interface PublisherOptions {
  /** Base URLs of the nodes; publication k goes to node k mod n first, then the next ones. */
  nodes: () => readonly string[];
  channels: readonly string[];
  /** Publications per second per channel. */
  rate: number;
  /** Bytes of padding in each publication (slow-client scenarios fill queues with it). */
  padding?: number;
  /** How long one attempt may take, ms. */
  attemptTimeout?: number;
  /** A publication not acknowledged after this long fails the run, ms. */
  giveUpAfter?: number;
  runId: string;
}

export class Publisher implements PublishLog {
  readonly acked = new Map<string, Set<number>>();
  readonly ambiguous = new Map<string, Set<number>>();
  readonly sentinel = new Map<string, number>();
  /** Attempts that failed, by cause, for the report. */
  readonly failures = new Map<string, number>();
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly next = new Map<string, number>();
  private rotation = 0;
  private readonly pad: string;
  /** The first publication that could not be made, which ends the run. */
  error: Error | undefined;

  constructor(private readonly o: PublisherOptions) {
    for (const c of o.channels) {
      this.acked.set(c, new Set());
      this.ambiguous.set(c, new Set());
      this.next.set(c, 1);
    }
    this.pad = 'x'.repeat(o.padding ?? 0);
  }

  get total(): number {
    let n = 0;
    for (const s of this.acked.values()) n += s.size;
    return n;
  }

  start(): void {
    this.running = true;
    const interval = 1000 / this.o.rate;
    this.loops = this.o.channels.map(async (channel, i) => {
      await sleep((interval * i) / this.o.channels.length);
      let due = Date.now();
      while (this.running && this.error === undefined) {
        await this.publishNext(channel, false).catch((err: unknown) => {
          this.error ??= err as Error;
        });
        due += interval;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        else due = Date.now(); // fell behind (a fault held it): do not burst to catch up
      }
    });
  }

  /** Stops after the publications in flight are acknowledged. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    if (this.error !== undefined) throw this.error;
  }

  /**
   * One round of sentinels: the next publication of each channel, after the faults; `sentinel` then
   * names this round (every stream must deliver the last round).
   */
  async publishSentinels(): Promise<void> {
    await Promise.all(this.o.channels.map((c) => this.publishNext(c, true)));
  }

  /** Publishes the channel's next number until a node acknowledges it. */
  private async publishNext(channel: string, sentinel: boolean): Promise<void> {
    const n = this.next.get(channel) as number;
    this.next.set(channel, n + 1);
    if (sentinel) this.sentinel.set(channel, n);
    const body = JSON.stringify({
      channel,
      data: { n, ...(sentinel ? { sentinel: true } : {}), ...(this.pad === '' ? {} : { pad: this.pad }) },
      idempotencyKey: `${this.o.runId}:${channel}:${n}`,
    });
    const deadline = Date.now() + (this.o.giveUpAfter ?? 90_000);
    const first = this.rotation++;
    for (let attempt = 0; ; attempt++) {
      const nodes = this.o.nodes();
      const node = nodes[(first + attempt) % nodes.length] as string;
      const outcome = await this.attempt(node, body);
      if (outcome === 'ok') {
        this.acked.get(channel)?.add(n);
        return;
      }
      this.failures.set(outcome.cause, (this.failures.get(outcome.cause) ?? 0) + 1);
      if (outcome.ambiguous) this.ambiguous.get(channel)?.add(n);
      if (Date.now() > deadline)
        throw new Error(`publication ${channel}#${n} not acknowledged after ${attempt + 1} attempts: ${outcome.cause}`);
      await sleep(Math.min(50 * 2 ** Math.min(attempt, 3), 400));
    }
  }

  private async attempt(node: string, body: string): Promise<'ok' | { cause: string; ambiguous: boolean }> {
    try {
      const res = await fetch(`${node}/api/publish`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `apikey ${API_KEY}` },
        body,
        signal: AbortSignal.timeout(this.o.attemptTimeout ?? 2000),
      });
      const text = await res.text();
      if (res.status === 200) return 'ok';
      let code = String(res.status);
      try {
        code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? code;
      } catch {
        // not JSON
      }
      // 4xx are answers (nothing applied); a 4xx other than "too many" is a bug of the suite.
      if (res.status === 429 || res.status >= 500) return { cause: code, ambiguous: res.status >= 500 };
      throw new Error(`publish refused with ${res.status}: ${text}`);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      if (e.message.startsWith('publish refused')) throw e;
      return { cause: e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.name), ambiguous: true };
    }
  }
}
