/**
 * `@herald/client`: the Herald SDK for browsers and Node 20+.
 *
 * ```ts
 * const herald = new Herald('https://rt.example.com', { getToken: () => fetchToken() });
 * const room = herald.subscribe<{ text: string }>('chat.room1', { backlog: 20 });
 * room.on('publication', (p) => render(p.data.text));
 * for await (const p of herald.subscribe('radio.**')) console.log(p.channel, p.data);
 * ```
 */
export { Herald, Subscription } from './herald.js';
export type { ConnectionState, ConnectedEvent, HeraldEvents, StateEvent } from './connection.js';
export type {
  Publication,
  SubscribedEvent,
  SubscriptionEvents,
  SubscriptionState,
  SubscriptionStateEvent,
  UnrecoveredEvent,
} from './subscription.js';
export type { CallOptions, HeraldOptions, HistoryOptions, PublishOptions, SubscribeOptions } from './options.js';
export type { TransportName, WebSocketLike } from './transports/transport.js';
export { Emitter, type Listener } from './emitter.js';
export {
  HeraldError,
  type ErrorCode,
  type HistoryResult,
  type PublicationFrame,
  type PublishResult,
  type StreamPosition,
} from '@herald/protocol';
