/**
 * The subscriber side of the load generator, run as its own process (pinned to the generator's core).
 * The orchestrator drives it over IPC: open N subscribers, open/close a measurement window, drain
 * after a step, drop and resume everyone (reconnect storm), close.
 *
 * Accounting, per subscriber (sequence numbers are per channel and start at 1):
 * - a sequence number at or below the last one received is a duplicate;
 * - a jump over the next expected one counts the skipped ones as lost;
 * - at the end of a drain, what has still not arrived is lost too (and a later arrival of one of
 *   those is counted as `late`, not again as lost).
 */
import { channelName, type ConnectResult, type DrainStats, type Envelope, type RecoverResult } from './messages.js';
import type { SubscriberReply, SubscriberRequest, SubSpec, WindowStats } from './messages.js';
import { createSub, SubState, type Sub, type SubSink } from './clients.js';
import { Histogram } from './histogram.js';

class SubscriberProcess implements SubSink {
  private readonly subs: Sub[] = [];
  private readonly hist = new Histogram();
  private windowOpen = false;
  private windowStart = 0;
  private windowDeliveries = 0;
  private cpuStart = process.cpuUsage();
  private gapLost = 0;
  private dup = 0;
  private late = 0;
  private endedCount = 0;
  private readonly errors: string[] = [];
  private gate: (() => void) | undefined;

  delivered(sub: Sub, seq: number, latencyUs: number): void {
    if (seq <= sub.last) {
      this.dup++;
      return;
    }
    const floor = sub.last > sub.acct ? sub.last : sub.acct;
    if (seq > floor + 1) this.gapLost += seq - floor - 1;
    if (seq <= sub.acct) this.late++;
    sub.last = seq;
    if (this.windowOpen) {
      this.windowDeliveries++;
      this.hist.record(latencyUs);
    }
  }

  subscribed(sub: Sub): void {
    sub.everSubscribed = true;
    this.gate?.();
  }

  failed(sub: Sub, reason: string): void {
    sub.failed = true;
    this.note(reason);
    this.gate?.();
  }

  ended(_sub: Sub, reason: string): void {
    this.endedCount++;
    this.note(reason);
  }

  private note(reason: string): void {
    if (this.errors.length < 5 && !this.errors.includes(reason)) this.errors.push(reason);
  }

  async handle(req: SubscriberRequest): Promise<SubscriberReply> {
    switch (req.type) {
      case 'connect':
        return this.connect(req.spec, req.first, req.n, req.channels, req.concurrency, req.after);
      case 'mark':
        this.hist.reset();
        this.windowDeliveries = 0;
        this.windowStart = performance.now();
        this.cpuStart = process.cpuUsage();
        this.windowOpen = true;
        this.gapLost = 0;
        this.dup = 0;
        this.late = 0;
        this.endedCount = 0;
        return { done: true };
      case 'window':
        return this.window();
      case 'drain':
        return this.drain(req.final, req.timeoutMs);
      case 'drop':
        for (const sub of this.subs) if (!sub.failed) sub.close();
        return { done: true };
      case 'recover':
        return this.recover(req.final, req.concurrency, req.timeoutMs);
      case 'close':
        for (const sub of this.subs) sub.close();
        return { done: true };
    }
  }

  private window(): WindowStats {
    this.windowOpen = false;
    const cpu = process.cpuUsage(this.cpuStart);
    return {
      deliveries: this.windowDeliveries,
      elapsedMs: performance.now() - this.windowStart,
      latency: this.hist.summary(),
      cpuMs: (cpu.user + cpu.system) / 1000,
    };
  }

  /** Opens subscribers `concurrency` at a time; each slot frees when one is subscribed or failed. */
  private async openAll(subs: readonly Sub[], resume: boolean, concurrency: number, timeoutMs: number): Promise<void> {
    let next = 0;
    let settled = 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const pump = (): void => {
        while (next < subs.length && next - settled < concurrency) subs[next++]!.open(resume);
      };
      this.gate = () => {
        settled++;
        if (settled >= subs.length) {
          clearTimeout(timer);
          resolve();
        } else pump();
      };
      if (subs.length === 0) resolve();
      pump();
    });
    this.gate = undefined;
  }

  private async connect(
    spec: SubSpec,
    first: number,
    n: number,
    channels: number,
    concurrency: number,
    after: readonly number[] | undefined,
  ): Promise<ConnectResult> {
    const t0 = performance.now();
    const subs: Sub[] = [];
    for (let i = 0; i < n; i++) {
      const ch = (first + i) % channels;
      const sub = createSub(channelName(ch), ch, spec, this);
      sub.last = sub.acct = after?.[ch] ?? 0;
      this.subs.push(sub);
      subs.push(sub);
    }
    await this.openAll(subs, false, concurrency, 120_000);
    let ok = 0;
    for (const sub of subs) if (sub.state === SubState.subscribed) ok++;
    return { ok, failed: n - ok, ms: performance.now() - t0, errors: this.errors.splice(0) };
  }

  private missing(final: readonly number[]): number {
    let missing = 0;
    for (const sub of this.subs) {
      if (!sub.everSubscribed) continue;
      const top = final[sub.chIndex] ?? 0;
      const have = sub.last > sub.acct ? sub.last : sub.acct;
      if (top > have) missing += top - have;
    }
    return missing;
  }

  private async drain(final: readonly number[], timeoutMs: number): Promise<DrainStats> {
    const t0 = performance.now();
    while (this.missing(final) > 0 && performance.now() - t0 < timeoutMs) await sleep(20);
    const tail = this.missing(final);
    let complete = 0;
    for (const sub of this.subs) {
      if (!sub.everSubscribed) continue;
      const top = final[sub.chIndex] ?? 0;
      if (sub.last >= top) complete++;
      if (top > sub.acct) sub.acct = top;
    }
    const stats: DrainStats = {
      lost: this.gapLost + tail,
      dup: this.dup,
      late: this.late,
      closed: this.endedCount,
      complete,
      drainMs: performance.now() - t0,
    };
    this.gapLost = 0;
    this.dup = 0;
    this.late = 0;
    return stats;
  }

  private async recover(final: readonly number[], concurrency: number, timeoutMs: number): Promise<RecoverResult> {
    const t0 = performance.now();
    this.gapLost = 0;
    this.dup = 0;
    const subs = this.subs.filter((sub) => sub.everSubscribed && !sub.failed);
    for (const sub of subs) sub.everSubscribed = false;
    await this.openAll(subs, true, concurrency, timeoutMs);
    const behind = (): number => subs.filter((s) => s.last < (final[s.chIndex] ?? 0)).length;
    while (behind() > 0 && performance.now() - t0 < timeoutMs) await sleep(5);
    const ms = performance.now() - t0;
    const failed = subs.filter((s) => s.state !== SubState.subscribed).length;
    return {
      ms,
      recovered: subs.length - behind(),
      failed,
      lost: this.gapLost,
      dup: this.dup,
      errors: this.errors.splice(0),
    };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const proc = new SubscriberProcess();
process.on('message', (msg: Envelope<SubscriberRequest>) => {
  proc.handle(msg.body).then(
    (body) => {
      process.send?.({ id: msg.id, body });
      if (msg.body.type === 'close') setImmediate(() => process.exit(0));
    },
    (err: unknown) => process.send?.({ id: msg.id, body: { error: String(err) } }),
  );
});
process.on('disconnect', () => process.exit(0));
