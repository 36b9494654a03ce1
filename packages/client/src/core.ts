/**
 * `@herald/client/core`: the same client as `@herald/client`, without any transport built in. List
 * the transports the application uses; a bundler leaves the others out.
 *
 * ```ts
 * import { Herald, websocket, sse } from '@herald/client/core';
 * const herald = new Herald('https://rt.example.com', { transports: [websocket, sse] });
 * ```
 */
export { Herald, Subscription } from './herald.js';
export { websocket } from './transports/websocket.js';
export { httpStream } from './transports/http-stream.js';
export { sse } from './transports/sse.js';
export { longPoll } from './transports/long-poll.js';
export type { ConnectionState, ConnectedEvent, HeraldEvents, StateEvent } from './connection.js';
export type {
  Publication,
  SkipEvent,
  SubscribedEvent,
  SubscriptionEvents,
  SubscriptionState,
  SubscriptionStateEvent,
  UnrecoveredEvent,
} from './subscription.js';
export type { CallOptions, HeraldOptions, HistoryOptions, PublishOptions, SubscribeOptions } from './options.js';
export type { HeraldTransport, TransportName, WebSocketLike } from './transports/transport.js';
export { Emitter, type Listener } from './emitter.js';
export {
  HeraldError,
  type ErrorCode,
  type HistoryResult,
  type PresenceInfo,
  type PresenceResult,
  type PresenceStatsResult,
  type PublicationFrame,
  type PublishResult,
  type StreamPosition,
} from '@herald/protocol';
