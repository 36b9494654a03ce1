/**
 * `@herald/client`: the Herald SDK for browsers and Node 20+, with all four transports.
 *
 * ```ts
 * const herald = new Herald('https://rt.example.com', { getToken: () => fetchToken() });
 * const room = herald.subscribe<{ text: string }>('chat.room1', { backlog: 20 });
 * room.on('publication', (p) => render(p.data.text));
 * for await (const p of herald.subscribe('radio.**')) console.log(p.channel, p.data);
 * ```
 *
 * `@herald/client/core` is the same client without transports built in: a bundle then holds only
 * the transports it lists.
 */
import { Herald as Core } from './herald.js';
import type { HeraldOptions } from './options.js';
import { httpStream } from './transports/http-stream.js';
import { longPoll } from './transports/long-poll.js';
import { sse } from './transports/sse.js';
import type { HeraldTransport } from './transports/transport.js';
import { websocket } from './transports/websocket.js';

const ALL: readonly HeraldTransport[] = [websocket, httpStream, sse, longPoll];

/** The client. `transports` takes names (or transport objects); the default is all four, in this order. */
export class Herald extends Core {
  constructor(url: string, options: HeraldOptions = {}) {
    const pick = (t: HeraldTransport | string): HeraldTransport => {
      const found = typeof t === 'string' ? ALL.find((a) => a.name === t) : t;
      if (found === undefined) throw new TypeError(`unknown transport '${String(t)}'`);
      return found;
    };
    const transports = (options.transports ?? ALL).map(pick);
    // `upgrade` starts on long-polling whether or not it is listed.
    if (options.upgrade === true && !transports.includes(longPoll)) transports.push(longPoll);
    super(url, { ...options, transports });
  }
}

export * from './core.js';
