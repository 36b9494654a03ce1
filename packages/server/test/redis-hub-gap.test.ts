/**
 * The hub's side of `onGap` (which the Redis engine calls after its subscriber link came back): a
 * subscription that is still reading its initial history when the gap is reported must re-read
 * history too, not only the live ones; otherwise the publication lost on the way stays missing
 * until some later publication shows the jump.
 */
import { describe, expect, it } from 'vitest';
import type {
  Engine,
  HistoryOutcome,
  HistoryRequest,
  Publication,
  PublicationSink,
  PublishOutcome,
  PublishRequest,
} from '../src/core/engine.js';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { until } from '@herald/test-support';
import { api, startServer, WsClient } from '@herald/test-support/server';

/** A memory engine that can lose live publications and hold history replies. */
class LossyEngine implements Engine {
  readonly name = 'lossy';
  readonly inner = new MemoryEngine();
  sink: PublicationSink | undefined;
  dropLive = false;
  hold: Promise<void> | undefined;
  historyCalls = 0;
  start(sink: PublicationSink): Promise<void> {
    this.sink = sink;
    return this.inner.start({ onPublication: (p: Publication) => (this.dropLive ? undefined : sink.onPublication(p)) });
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  publish(req: PublishRequest): Promise<PublishOutcome> {
    return this.inner.publish(req);
  }
  async history(req: HistoryRequest): Promise<HistoryOutcome> {
    const h = await this.inner.history(req);
    this.historyCalls += 1;
    if (this.hold !== undefined) await this.hold;
    return h;
  }
  subscribe(stream: string): Promise<void> {
    return this.inner.subscribe(stream);
  }
  unsubscribe(stream: string): Promise<void> {
    return this.inner.unsubscribe(stream);
  }
  ready(): boolean {
    return true;
  }
}

describe('hub onGap', () => {
  it('re-reads history for a subscription that was still recovering when the gap was reported', async () => {
    const engine = new LossyEngine();
    const srv = await startServer({}, { engine });
    try {
      await api(srv.url, 'publish', { channel: 'g.x', data: 1 });
      let release: () => void = () => undefined;
      engine.hold = new Promise<void>((r) => (release = r));
      const c = await WsClient.connect(srv.wsUrl);
      const reply = c.request({ cmd: 'subscribe', channel: 'g.x' });
      await until(() => engine.historyCalls > 0, 'the initial history read');
      // The initial read saw offset 1; publication 2 is then lost on its way to the hub.
      engine.dropLive = true;
      await api(srv.url, 'publish', { channel: 'g.x', data: 2 });
      engine.dropLive = false;
      engine.hold = undefined;
      engine.sink?.onGap?.(['g.x']);
      release();
      expect((await reply)['result']).toMatchObject({ offset: 1 });
      const pub = await c.waitFor((f) => f['push'] === 'pub', 'publication 2, recovered from history');
      expect(pub).toMatchObject({ offset: 2, data: 2 });
      await c.close();
    } finally {
      await srv.close();
    }
  });
});
