/**
 * `@herald/api`: publish to Herald from a Node backend.
 *
 * ```ts
 * import { HeraldApi, mintToken } from '@herald/api';
 *
 * const herald = new HeraldApi({ url: 'http://localhost:8080', apiKey: process.env.HERALD_API_KEY! });
 * const { epoch, offset } = await herald.publish('chat.room1', { text: 'hello' });
 * const token = await mintToken({ sub: '42', channels: { subscribe: ['chat.**'] } }, process.env.HERALD_SECRET!);
 * ```
 *
 * - `HeraldApi` (herald-api.ts): a typed method per server API method, over a keep-alive pool of
 *   `connections` sockets, with retries that carry idempotency keys (caller.ts).
 * - `HeraldApiError` (errors.ts): every failure, with a code from Herald's table.
 * - `mintToken` (token.ts): connection and subscription tokens, checked as the server checks them.
 */
export { HeraldApi, MAX_BATCH_COMMANDS } from './herald-api.js';
export { HeraldApiError, type HeraldApiErrorInit } from './errors.js';
export {
  mintToken,
  MAX_GRANTS_PER_ACTION,
  MAX_USER_ID_LENGTH,
  MIN_HMAC_SECRET_BYTES,
  type ChannelGrants,
  type MintOptions,
  type SigningKey,
  type TokenAlgorithm,
  type TokenClaims,
} from './token.js';
export type {
  ApiMethodName,
  ApiParams,
  ApiResults,
  BackoffOptions,
  BatchCommand,
  BatchReply,
  BroadcastEntry,
  CallOptions,
  ChannelEntry,
  ChannelsOptions,
  ChannelsResult,
  DisconnectResult,
  DisconnectTarget,
  HeraldApiOptions,
  HistoryOptions,
  HistoryResult,
  InfoResult,
  NodeInfo,
  PresenceResult,
  PresenceStatsResult,
  PublishItem,
  PublishOptions,
  PublishOutcome,
  PublishResult,
  RetryEvent,
  StreamPosition,
} from './types.js';
export type { ErrorCode } from '@herald/protocol';
export { VERSION } from './version.js';
