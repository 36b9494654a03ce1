/**
 * A stream an SSE or NDJSON response cannot subscribe for now (the engine out of reach) ends the
 * response: a plain EventSource cannot subscribe again on it and reconnects only when it ends, so
 * without this it would sit on a live connection that never delivers. Found by the chaos suite
 * (a raw EventSource during a Redis restore).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';

/** A memory engine whose stream subscriptions fail while `down` is set. */
class FlakyEngine extends MemoryEngine {
  down = false;
  override subscribe(stream: string): Promise<void> {
    if (this.down) return Promise.reject(new Error('connection lost'));
    return super.subscribe(stream);
  }
}

/** Reads the whole response body, failing after `ms`. */
async function readToEnd(res: Response, ms = 5000): Promise<string> {
  const timer = setTimeout(() => void res.body?.cancel(), ms);
  try {
    return await res.text();
  } finally {
    clearTimeout(timer);
  }
}

describe('a stream refused because the engine is unavailable', () => {
  const engine = new FlakyEngine();
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({}, { engine });
  });
  afterAll(() => srv.close());

  it('ends the SSE response with a disconnect that asks to reconnect, and the reconnect recovers', async () => {
    engine.down = true;
    const res = await fetch(`${srv.url}/sse?channel=refused.a`);
    expect(res.status).toBe(200);
    const text = await readToEnd(res);
    expect(text).toContain('event: unsubscribed');
    expect(text).toContain('HERALD_ERR_ENGINE_UNAVAILABLE');
    expect(text).toMatch(/event: disconnect\ndata: \{[^\n]*"code":3006[^\n]*"reconnect":true/);
    engine.down = false;
    // As EventSource would: come back, and get what is published next.
    const again = await fetch(`${srv.url}/sse?channel=refused.a`);
    expect(again.status).toBe(200);
    const reader = again.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = '';
    const published = api(srv.url, 'publish', { channel: 'refused.a', data: 'after' });
    const deadline = setTimeout(() => void reader.cancel(), 5000);
    while (!seen.includes('"after"')) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    clearTimeout(deadline);
    await reader.cancel();
    expect((await published).status).toBe(200);
    expect(seen).toContain('"after"');
  });

  it('ends an NDJSON response the same way; with the engine back a response stays open', async () => {
    engine.down = true;
    const res = await fetch(`${srv.url}/stream?channel=refused.b`);
    const text = await readToEnd(res);
    expect(text).toContain('"push":"unsubscribed"');
    expect(text).toMatch(/"push":"disconnect","code":3006/);
    engine.down = false;
    // With the engine back, subscribing works and the response stays open.
    const ctrl = new AbortController();
    const open = await fetch(`${srv.url}/stream?channel=refused.c`, { signal: ctrl.signal });
    const reader = open.body!.pipeThrough(new TextDecoderStream()).getReader();
    let first = '';
    while (!first.includes('"push":"subscribed"')) {
      const { value, done } = await reader.read();
      expect(done).toBe(false);
      first += value;
    }
    expect(first).not.toContain('disconnect');
    ctrl.abort();
  });
});
