export { HeraldServer, type HeraldServerOptions, type ServerState } from './server.js';
export { Hub, type HubOptions } from './core/hub.js';
export {
  MetricsTally,
  noMetrics,
  teeMetrics,
  type Counter,
  type Histogram,
  type Labels,
  type Metrics,
} from './core/metrics.js';
export type {
  Engine,
  Publication,
  PublicationSink,
  PublishRequest,
  PublishOutcome,
  HistoryRequest,
  HistoryOutcome,
  HistoryPolicy,
} from './core/engine.js';
export type {
  EnginePresence,
  PresenceCounts,
  PresenceEntry,
  PresenceEvent,
  PresenceJoin,
  PresenceOptions,
} from './core/presence.js';
export type { TransportConnection, TransportTraits } from './core/transport.js';
export type { FrameEncoder, EncodeCache } from './core/encoder.js';
export type { Logger } from './core/logger.js';
export { silentLogger } from './core/logger.js';
export type { Clock, TimerHandle } from './core/clock.js';
export { systemClock } from './core/clock.js';
export { MemoryEngine, type MemoryEngineOptions } from './engines/memory/memory-engine.js';
export { RedisEngine, type RedisEngineOptions, type RedisEngineStats } from './engines/redis/redis-engine.js';
export { NatsEngine, type NatsEngineOptions, type NatsEngineStats } from './engines/nats/nats-engine.js';
export * from './config/index.js';
export { createLogger, type LoggerOptions } from './logging.js';
export {
  PUBLISH_CHANNEL,
  CONNECT_CHANNEL,
  DISCONNECT_CHANNEL,
  type PublishDiagnostic,
  type ConnectDiagnostic,
  type DisconnectDiagnostic,
} from './core/diagnostics.js';
export { VERSION } from './version.js';
export * from './auth/index.js';
export { SessionAuthorizer } from './auth/session-authorizer.js';
export {
  ANONYMOUS_IDENTITY,
  namespaceAuthorizer,
  type Authorizer,
  type SessionIdentity,
  type ConnectInfo,
} from './core/authorizer.js';
export {
  prepareDemos,
  Demos,
  type DemoApp,
  type DemoBackend,
  type DemoBackendOptions,
  type DemoHost,
  type DemoMeta,
  type DemoOptions,
} from './demo/demos.js';
