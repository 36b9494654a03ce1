/**
 * One measured session: a target server, the subscriber and publisher processes, and the steps
 * measured against them (a rate step, an idle-memory reading, a reconnect storm).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  ConnectResult,
  DrainStats,
  PublisherReply,
  PublisherRequest,
  PublishResult,
  RecoverResult,
  SubscriberReply,
  SubscriberRequest,
  WindowStats,
} from './gen/messages.js';
import { IpcChild, type RequestChild } from './ipc.js';
import { NativeSubscriber } from './native.js';
import { spawnPinned, type Pinning } from './launch.js';
import { coreBusy, coreTimes, cpuTimes, rssBytes, syscalls } from './proc.js';
import { startServer, type RunningServer, type ServerOptions, type TargetDef } from './targets.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A step whose generator core is busier than this measures the generator, not the server. */
export const GENERATOR_BUSY_LIMIT = 0.9;

/**
 * The generator's core time per delivery, in µs. In a fan-out the server writes a publication to
 * every subscriber in one burst while the generator's core reads them; when reading one costs the
 * generator about what writing it costs the server, the last reads trail the last writes, and the
 * latency tail shows the generator's pace as much as the server's, though neither core is busy
 * on average.
 */
export function generatorUsPerDelivery(s: Pick<StepResult, 'genCoreBusyPct' | 'deliveriesPerSec'>): number {
  return s.deliveriesPerSec > 0 ? (s.genCoreBusyPct / 100) * (1e6 / s.deliveriesPerSec) : 0;
}

/** See `generatorUsPerDelivery`: the generator spends at least 90 % of the server's CPU per delivery. */
export function generatorPaced(s: StepResult): boolean {
  const gen = generatorUsPerDelivery(s);
  return s.usPerDelivery > 0 && gen >= s.usPerDelivery * 0.9;
}

export interface StepResult {
  readonly target: string;
  readonly label: string;
  readonly n: number;
  readonly channels: number;
  /** Publications per second asked of the publisher. */
  readonly rate: number;
  /** Deliveries per second that rate means (rate × subscribers per channel). */
  readonly offered: number;
  readonly deliveriesPerSec: number;
  readonly lost: number;
  readonly dup: number;
  readonly closed: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly serverCpuPct: number;
  /** Part of the server's CPU spent in the kernel (system time: socket writes and reads, loopback TCP). */
  readonly serverSysPct: number;
  readonly usPerDelivery: number;
  /** Write system calls of the server per delivery (below 1 when it coalesces deliveries per socket). */
  readonly writesPerDelivery: number;
  /** Bytes the server wrote (to every socket) per delivery over the window. */
  readonly bytesPerDelivery?: number;
  readonly rssMiB: number;
  readonly genCpuPct: number;
  readonly genCoreBusyPct: number;
  /** Busy time on the server's core not spent by the server (other processes of the machine). */
  readonly serverCoreOtherPct: number;
  /** Busy time on the generator's core not spent by the subscriber and publisher processes. */
  readonly genCoreOtherPct: number;
  readonly pubAchieved: number;
  readonly pubFailed: number;
  readonly notes: readonly string[];
  /** The measured window, in CLOCK_MONOTONIC µs (to cut a CPU profile to it). */
  readonly window: { readonly startUs: number; readonly endUs: number };
}

export interface SessionOptions {
  readonly pin: Pinning;
  readonly n: number;
  readonly channels: number;
  readonly connectConcurrency?: number;
  readonly publisherSockets?: number;
  readonly payloadBytes?: number;
  readonly server?: Omit<ServerOptions, 'cpu'>;
  readonly log: (line: string) => void;
  /** The native subscriber's binary (`native.ts`); the Node subscriber when absent. */
  readonly nativeSubscriber?: string;
}

export class Session {
  private constructor(
    readonly target: TargetDef,
    readonly servers: readonly RunningServer[],
    readonly sub: RequestChild<SubscriberRequest, SubscriberReply>,
    readonly pub: IpcChild<PublisherRequest, PublisherReply>,
    readonly opts: SessionOptions,
    /** Processes whose CPU and memory count as the server's but that take no subscribers (Redis). */
    readonly extra: readonly RunningServer[],
  ) {}

  /** Starts the server (unless given) and the generator processes; subscribes nobody yet. */
  static async open(
    target: TargetDef,
    opts: SessionOptions,
    servers?: readonly RunningServer[],
    extra: readonly RunningServer[] = [],
  ): Promise<Session> {
    const serverOpts = { ...opts.server, cpu: target.unpinned === true ? undefined : opts.pin.server };
    const env = { ...opts.server?.heraldEnv, ...target.heraldEnv };
    const running = servers ?? [
      await startServer(target.server, Object.keys(env).length > 0 ? { ...serverOpts, heraldEnv: env } : serverOpts),
    ];
    // BENCH_GENERATOR_FLAGS: extra node flags for the generator processes (e.g. --cpu-prof, to profile it).
    const flags = (process.env.BENCH_GENERATOR_FLAGS ?? '').split(' ').filter((f) => f !== '');
    const spawnGen = (file: string): ReturnType<typeof spawnPinned> =>
      spawnPinned(process.execPath, [...flags, join(here, 'gen', file)], { cpu: opts.pin.generator, ipc: true });
    const sub =
      opts.nativeSubscriber !== undefined
        ? new NativeSubscriber(opts.nativeSubscriber, opts.pin.generator)
        : new IpcChild<SubscriberRequest, SubscriberReply>('subscriber', spawnGen('subscriber.js'));
    const pub = new IpcChild<PublisherRequest, PublisherReply>('publisher', spawnGen('publisher.js'));
    const session = new Session(target, running, sub, pub, opts, extra);
    if (target.scrape !== undefined) session.startScraping(target.scrape);
    await pub.request({
      type: 'config',
      spec: target.pub(running[0]!.port),
      channels: opts.channels,
      sockets: opts.publisherSockets ?? 32,
      // One channel means one connection: pipelining keeps its rate from being capped at 1/RTT.
      pipeline: opts.channels === 1 ? 8 : 1,
      payloadBytes: opts.payloadBytes ?? 0,
    });
    return session;
  }

  /** Asks every Node server for a full GC (S4; see FULL_GC_ON_SIGNAL in scenarios.ts). Not nginx: USR2 upgrades its binary. */
  collectGarbage(): void {
    for (const s of this.servers) {
      if (s.kind === 'nchan' || s.kind === 'redis' || s.child.pid === undefined) continue;
      process.kill(s.child.pid, 'SIGUSR2');
    }
  }

  serverPids(): number[] {
    return [...this.servers, ...this.extra].flatMap((s) => s.pids());
  }

  /**
   * Subscribes `n` clients (on `channels` channels, round-robin), spread evenly over the servers;
   * numbered from `first` (a later call adds more clients after the first ones, counting from the
   * per-channel sequence numbers `after` already published).
   */
  async connect(first = 0, n = this.opts.n, after?: readonly number[]): Promise<ConnectResult> {
    const { channels } = this.opts;
    const per = Math.ceil(n / this.servers.length);
    const total = { ok: 0, failed: 0, ms: 0, errors: [] as string[] };
    for (const [i, s] of this.servers.entries()) {
      const count = Math.min(per, n - i * per);
      if (count <= 0) break;
      const r = await this.sub.request<ConnectResult>({
        type: 'connect',
        spec: this.target.sub(s.port),
        first: first + i * per,
        ...(after !== undefined ? { after } : {}),
        n: count,
        channels,
        concurrency: this.opts.connectConcurrency ?? 256,
      });
      total.ok += r.ok;
      total.failed += r.failed;
      total.ms += r.ms;
      total.errors.push(...r.errors);
    }
    return total;
  }

  /**
   * One rate step: publish `rate`/s for warm-up + measure; server CPU, cores and deliveries are read
   * over the measure window only; then drain and count lost and duplicated deliveries.
   */
  async step(rate: number, warmupMs: number, measureMs: number): Promise<StepResult> {
    const { n, channels } = this.opts;
    const running = this.pub.request<PublishResult>({ type: 'run', rate, durationMs: warmupMs + measureMs });
    running.catch(() => undefined); // awaited below; a rejection before then is not unhandled
    await sleep(warmupMs);
    const pids = this.serverPids();
    await this.sub.request({ type: 'mark' });
    const io0 = syscalls(pids);
    const times0 = cpuTimes(pids);
    const cores0 = coreTimes();
    const t0 = performance.now();
    const startUs = monotonicUs();
    await sleep(measureMs);
    const times1 = cpuTimes(pids);
    const io1 = syscalls(pids);
    const cores1 = coreTimes();
    const endUs = monotonicUs();
    const seconds = (performance.now() - t0) / 1000;
    const rss = rssBytes(pids);
    const win = await this.sub.request<WindowStats>({ type: 'window' });
    const published = await running;
    const drain = await this.sub.request<DrainStats>({ type: 'drain', final: published.final, timeoutMs: 10_000 });
    const busy = coreBusy(cores0, cores1);
    const serverCpu = times1.user + times1.system - times0.user - times0.system;
    const serverSys = times1.system - times0.system;
    const serverCpuPct = (serverCpu / seconds) * 100;
    const genCore = this.opts.pin.generator === undefined ? 0 : (busy[this.opts.pin.generator] ?? 0);
    const serverCore =
      this.opts.pin.server === undefined || this.target.unpinned === true ? 0 : (busy[this.opts.pin.server] ?? 0);
    const pubCpuPct = (published.cpuMs / published.ms) * 100;
    const subCpuPct = (win.cpuMs / win.elapsedMs) * 100;
    const deliveriesPerSec = win.deliveries / (win.elapsedMs / 1000);
    const notes: string[] = [];
    if (genCore > GENERATOR_BUSY_LIMIT && this.target.unpinned === true) {
      notes.push(`generator core ${(genCore * 100).toFixed(0)}% busy, shared with the unpinned server`);
    } else if (genCore > GENERATOR_BUSY_LIMIT) {
      notes.push(
        `generator core ${(genCore * 100).toFixed(0)}% busy: this step measures the generator, not the server`,
      );
    }
    if (published.achievedRate < rate * 0.97)
      notes.push(`publisher reached ${published.achievedRate.toFixed(0)}/s of ${+rate.toFixed(1)}/s`);
    if (published.failed > 0) notes.push(`${published.failed} publishes failed: ${published.errors.join('; ')}`);
    if (drain.closed > 0) notes.push(`${drain.closed} connections ended`);
    const usPerDelivery = win.deliveries > 0 ? (serverCpu * 1e6) / win.deliveries : 0;
    const other = Math.max(0, serverCore * 100 - serverCpuPct);
    if (this.opts.pin.server !== undefined && other > 10)
      notes.push(`server core ${other.toFixed(0)}% busy with other work`);
    const result: StepResult = {
      target: this.target.id,
      label: this.target.label,
      n,
      channels,
      rate,
      offered: rate * (n / channels),
      deliveriesPerSec,
      lost: drain.lost,
      dup: drain.dup,
      closed: drain.closed,
      p50: win.latency.p50,
      p95: win.latency.p95,
      p99: win.latency.p99,
      max: win.latency.max,
      serverCpuPct,
      serverSysPct: (serverSys / seconds) * 100,
      usPerDelivery,
      writesPerDelivery: win.deliveries > 0 ? (io1.writes - io0.writes) / win.deliveries : 0,
      bytesPerDelivery: win.deliveries > 0 ? (io1.bytesWritten - io0.bytesWritten) / win.deliveries : 0,
      rssMiB: rss / 2 ** 20,
      genCpuPct: subCpuPct + pubCpuPct,
      genCoreBusyPct: genCore * 100,
      serverCoreOtherPct: other,
      genCoreOtherPct: Math.max(0, genCore * 100 - subCpuPct - pubCpuPct),
      pubAchieved: published.achievedRate,
      pubFailed: published.failed,
      notes,
      window: { startUs, endUs },
    };
    if (genCore <= GENERATOR_BUSY_LIMIT && generatorPaced(result)) {
      notes.push(
        `generator core ${generatorUsPerDelivery(result).toFixed(2)} µs per delivery against the server's ${usPerDelivery.toFixed(2)}: latency here is paced by the generator's reading as much as by the server`,
      );
    }
    return result;
  }

  /** Publishes `count` to each channel and waits until every subscriber has them. */
  async publishAndWait(count: number): Promise<{ published: PublishResult; drain: DrainStats }> {
    const published = await this.pub.request<PublishResult>({ type: 'burst', count, channels: this.opts.channels });
    const drain = await this.sub.request<DrainStats>({ type: 'drain', final: published.final, timeoutMs: 15_000 });
    return { published, drain };
  }

  async drop(): Promise<void> {
    await this.sub.request({ type: 'drop' });
  }

  async burst(count: number): Promise<PublishResult> {
    return this.pub.request<PublishResult>({ type: 'burst', count, channels: this.opts.channels });
  }

  async recover(final: readonly number[], concurrency: number, timeoutMs: number): Promise<RecoverResult> {
    return this.sub.request<RecoverResult>({ type: 'recover', final, concurrency, timeoutMs }, timeoutMs + 30_000);
  }

  private scraper: NodeJS.Timeout | undefined;
  /** Scrape counts and failures (a failed scrape is reported, not fatal). */
  readonly scrapes = { ok: 0, failed: 0 };

  /** Fetches `path` from every server once a second, like a Prometheus server would. */
  private startScraping(path: string): void {
    this.scraper = setInterval(() => {
      for (const s of this.servers) {
        fetch(`http://127.0.0.1:${s.port}${path}`)
          .then(async (res) => {
            await res.arrayBuffer();
            if (res.ok) this.scrapes.ok++;
            else this.scrapes.failed++;
          })
          .catch(() => this.scrapes.failed++);
      }
    }, 1000);
  }

  async close(stopServers = true): Promise<void> {
    if (this.scraper !== undefined) {
      clearInterval(this.scraper);
      this.opts.log(
        `  ${this.target.label}: ${this.scrapes.ok} scrapes of ${this.target.scrape}, ${this.scrapes.failed} failed`,
      );
    }
    await this.sub.stop({ type: 'close' });
    await this.pub.stop({ type: 'close' });
    if (stopServers) for (const s of this.servers) await s.stop();
  }
}

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
