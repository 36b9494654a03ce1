import type { Engine, HistoryRequest, PublicationSink, PublishRequest } from '../../src/core/engine.js';

/**
 * Wraps an engine and delays every call by a random 0-`maxMs` ms, the way a remote store (Redis)
 * answers: publishes, history reads and subscriptions then interleave like they do in production,
 * which widens every race the hub must handle.
 */
export class LatencyEngine implements Engine {
  readonly name: string;
  constructor(
    private readonly inner: Engine,
    private readonly maxMs: number,
    private readonly rand: () => number = Math.random,
  ) {
    this.name = `${inner.name}+latency`;
  }
  private delay(): Promise<void> {
    return new Promise((r) => setTimeout(r, Math.floor(this.rand() * (this.maxMs + 1))));
  }
  start(sink: PublicationSink): Promise<void> {
    return this.inner.start(sink);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  ready(): boolean {
    return this.inner.ready();
  }
  async publish(req: PublishRequest) {
    await this.delay();
    return this.inner.publish(req);
  }
  async history(req: HistoryRequest) {
    await this.delay();
    const h = await this.inner.history(req);
    await this.delay();
    return h;
  }
  async subscribe(stream: string) {
    await this.delay();
    return this.inner.subscribe(stream);
  }
  async unsubscribe(stream: string) {
    await this.delay();
    return this.inner.unsubscribe(stream);
  }
}
