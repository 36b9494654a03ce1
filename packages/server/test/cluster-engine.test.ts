/**
 * The workers' engine (engines/cluster/) in one process: each `ClusterEngine` talks to the
 * `EngineHost` through a loopback port that JSON-encodes every message as node:cluster's IPC does and
 * delivers it on a later turn. It passes the engine conformance suite; the host hands a publication
 * once to each worker subscribed to its stream, batches a turn's messages into one send, and fails
 * what waited on a worker that exited.
 */
import { HeraldError } from '@herald/protocol';
import { describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import type { Publication } from '../src/core/engine.js';
import { silentLogger } from '../src/core/logger.js';
import { ClusterEngine } from '../src/engines/cluster/cluster-engine.js';
import { EngineHost, WorkerPort } from '../src/engines/cluster/engine-host.js';
import type { SupervisorMessage, WorkerMessage } from '../src/engines/cluster/messages.js';
import { WorkerLink, type IpcPort } from '../src/engines/cluster/worker-link.js';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { engineConformance } from './conformance/engine-suite.js';
import { FakeClock } from './support/fake-clock.js';

/** A worker's end of a loopback IPC channel to `host`, and what crossed it. */
class Loopback implements IpcPort {
  connected = true;
  /** Batches the host sent this worker. */
  readonly received: SupervisorMessage[][] = [];
  private readonly listeners: Array<(m: unknown) => void> = [];
  private readonly gone: Array<() => void> = [];
  readonly port: WorkerPort;

  constructor(
    private readonly host: EngineHost,
    slot: number,
  ) {
    this.port = new WorkerPort(slot, (batch) => {
      const copy = JSON.parse(JSON.stringify(batch)) as SupervisorMessage[];
      this.received.push(copy);
      setImmediate(() => this.listeners.forEach((l) => l(copy)));
    });
    host.attach(this.port);
  }

  send(message: unknown): boolean {
    const copy = JSON.parse(JSON.stringify(message)) as WorkerMessage[];
    setImmediate(() => this.host.receive(this.port, copy));
    return true;
  }

  on(event: 'message' | 'disconnect', listener: ((m: unknown) => void) | (() => void)): this {
    if (event === 'message') this.listeners.push(listener as (m: unknown) => void);
    else this.gone.push(listener as () => void);
    return this;
  }

  /** The worker exits. */
  exit(): void {
    this.connected = false;
    this.host.detach(this.port);
    this.gone.forEach((l) => l());
  }
}

function cluster(clock?: FakeClock): {
  host: EngineHost;
  worker(slot: number): { engine: ClusterEngine; ipc: Loopback };
} {
  const host = new EngineHost({
    engine: new MemoryEngine(clock !== undefined ? { clock } : {}),
    logger: silentLogger,
    metrics: () => Promise.resolve(''),
  });
  return {
    host,
    worker: (slot) => {
      const ipc = new Loopback(host, slot);
      return { engine: new ClusterEngine({ link: new WorkerLink(ipc) }), ipc };
    },
  };
}

engineConformance('cluster (a worker over IPC to the supervisor)', async () => {
  const clock = new FakeClock();
  const { host, worker } = cluster(clock);
  await host.start();
  const { engine } = worker(1);
  return {
    engine,
    advance: (ms: number) => {
      clock.advance(ms);
      return Promise.resolve();
    },
    close: async () => {
      await engine.close();
      await host.close();
    },
  };
});

const POLICY = { size: 10, ttlMs: 60_000, metaTtlMs: 60_000 };

describe('the workers engine', () => {
  it('hands each publication once to each subscribed worker, the messages of a turn in one send', async () => {
    const { host, worker } = cluster();
    await host.start();
    const workers = [worker(1), worker(2), worker(3)];
    const got = workers.map(() => [] as Publication[]);
    await Promise.all(workers.map((w, i) => w.engine.start({ onPublication: (p) => got[i]!.push(p) })));
    await workers[0]!.engine.subscribe('b.**');
    await workers[1]!.engine.subscribe('b.**');
    for (const w of workers) w.ipc.received.length = 0;
    // Ten publishes in one turn: one batch each way.
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        workers[2]!.engine.publish({ channel: 'b.c', data: String(i), history: POLICY, idempotencyWindowMs: 1000 }),
      ),
    );
    expect(outcomes.map((o) => o.position.offset)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void =>
          got[0]!.length === 10 && got[1]!.length === 10 ? resolve() : void setImmediate(check);
        check();
      }),
      2000,
      'the publications on both workers',
    );
    for (const g of got.slice(0, 2))
      expect(g.map((p) => [p.stream, p.offset])).toEqual(outcomes.map((_, i) => ['b.**', i + 1]));
    expect(got[2]).toEqual([]); // not subscribed: nothing sent its way
    expect(workers[0]!.ipc.received).toHaveLength(1);
    expect(workers[2]!.ipc.received).toHaveLength(1); // the ten answers
    await host.close();
  });

  it('shares presence and history across workers, and fails requests to a worker that exited', async () => {
    const { host, worker } = cluster();
    await host.start();
    const [a, b] = [worker(1), worker(2)];
    for (const w of [a, b]) await w.engine.start({ onPublication: () => undefined });
    const opts = { events: false, max: 10 };
    await a.engine.presence.join('room.x', [{ entry: { client: 'a-1', user: 'u1' }, ttlMs: 60_000 }], opts);
    await b.engine.presence.join('room.x', [{ entry: { client: 'b-1', user: 'u2' }, ttlMs: 60_000 }], opts);
    expect((await a.engine.presence.count('room.x', opts)).clients).toBe(2);
    await a.engine.publish({ channel: 'h.x', data: '1', history: POLICY, idempotencyWindowMs: 1000 });
    expect((await b.engine.history({ stream: 'h.x', limit: 10 })).publications).toHaveLength(1);

    // b serves node "nb" and hangs on a request; it exits: a's request fails at once, not at the timeout.
    await b.engine.control.serve('nb', () => new Promise<string>(() => undefined));
    const asked = a.engine.control.request('nb', 'hello', 60_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    b.ipc.exit();
    const err = await withTimeout(
      asked.catch((e: unknown) => e),
      2000,
      'the request to fail',
    );
    expect(err).toBeInstanceOf(HeraldError);
    expect((err as HeraldError).code).toBe('HERALD_ERR_NODE_UNREACHABLE');
    // And nobody serves "nb" any more.
    const again = await a.engine.control.request('nb', 'hello', 60_000).catch((e: unknown) => e);
    expect((again as HeraldError).code).toBe('HERALD_ERR_NODE_UNREACHABLE');
    await host.close();
  });
});
