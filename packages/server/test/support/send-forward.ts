/**
 * Test support for `POST /send` between nodes: an SSE session opened on one node, driven through
 * another node's `/send`, proven by what arrives on the SSE stream.
 */
import { expect } from 'vitest';
import { api } from '@herald/test-support/server';
import { SseReader, send } from './http-clients.js';

/** A shared session secret (at least 16 characters), so that every node verifies every session id. */
export const SESSION_SECRET = 'send-forward-secret-0123456789ab';

/** Opens `/sse` on `base` (or any streaming URL) and resolves once its `connected` event came. */
export async function openSse(url: string): Promise<{ es: SseReader; client: string; session: string }> {
  const es = new SseReader(url);
  await es.waitFor((e) => e.some((x) => x.event === 'connected'), 'the connected event');
  const connected = es.of('connected')[0] as { client: string; session: string };
  return { es, client: connected.client, session: connected.session };
}

/**
 * Opens an SSE session on `holder`, subscribes it to `channel` through `other`'s `/send`, publishes
 * through `other`'s server API, and checks that the publication arrives on the SSE stream.
 */
export async function expectForwardedSend(holderUrl: string, otherUrl: string, channel: string): Promise<void> {
  const { es, session } = await openSse(`${holderUrl}/sse`);
  try {
    const r = await send(otherUrl, session, JSON.stringify({ id: 1, cmd: 'subscribe', channel }));
    expect(r.status).toBe(200);
    expect(r.lines).toEqual([{ id: 1, result: expect.objectContaining({ stream: channel, offset: 0 }) }]);
    await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), `the subscribed event of ${channel}`);
    const p = await api(otherUrl, 'publish', { channel, data: 'forwarded' });
    expect(p.status).toBe(200);
    await es.waitFor((e) => e.some((x) => x.event === 'message'), `the publication on ${channel}`);
    expect(es.pubs()).toEqual([expect.objectContaining({ channel, offset: 1, data: 'forwarded' })]);
  } finally {
    es.close();
  }
}
