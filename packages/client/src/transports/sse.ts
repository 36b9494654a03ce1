/**
 * Server-Sent Events (`GET /sse`), read with `fetch` in browsers and Node alike (Node 20 has no
 * `EventSource`, and the SDK does its own reconnects and cursors, so it needs none of what
 * `EventSource` adds). Publications are `message` events whose data is
 * `{stream, channel, epoch, offset, data}`; control events (`connected`, `disconnect`,
 * `unsubscribed`, `reply`) carry their frame as data. Comments are heartbeats.
 */
import { streaming } from './http.js';
import type { HeraldTransport, InFrame } from './transport.js';

export const sse: HeraldTransport = {
  name: 'sse',
  open: streaming('/sse', 'text/event-stream', (sink) => {
    let rest = '';
    let event = '';
    let data: string[] = [];
    const dispatch = (): void => {
      if (data.length > 0) {
        const body = JSON.parse(data.join('\n')) as Record<string, unknown>;
        sink.frame(
          (event === 'reply'
            ? body
            : { push: event === '' || event === 'message' ? 'pub' : event, ...body }) as InFrame,
        );
      }
      event = '';
      data = [];
    };
    return (chunk) => {
      const all = (rest + chunk).split('\n');
      rest = all.pop() ?? '';
      for (const raw of all) {
        const line = raw.replace(/\r$/, '');
        if (line === '') dispatch();
        else if (line[0] !== ':') {
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data') data.push(value);
          else if (field === 'event') event = value;
        }
      }
    };
  }),
};
