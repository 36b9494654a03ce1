/**
 * Authentication and authorization: connection and subscription tokens (`TokenVerifier`), channel
 * grants (`ChannelPermissions`), the per-namespace decision table (`ChannelAccess`), the failed
 * attempt limit (`FailureLimiter`) and backend hooks (`BackendHooks`). `createAuth` builds them all
 * from the configuration. Nothing here imports transports or engines.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Counter, Metrics } from '../core/metrics.js';
import { namespaceOptions, type HeraldConfig } from '../config/config.js';
import { ChannelAccess } from './access.js';
import { Authenticator } from './authenticator.js';
import { FailureLimiter } from './failure-limiter.js';
import { BackendHooks } from './hooks.js';
import { TokenVerifier } from './token-verifier.js';

export {
  ChannelAccess,
  type ChannelAccessOptions,
  type ClientAuth,
  type NamespaceAccess,
  type SubscribeDecision,
  type SubscribeVia,
} from './access.js';
export { ANONYMOUS, Authenticator, type AuthenticatorOptions, type ClientIdentity } from './authenticator.js';
export { FailureLimiter, type FailureLimiterOptions } from './failure-limiter.js';
export {
  BackendHooks,
  HOOK_EVENTS,
  type BackendHooksOptions,
  type ConnectHookRequest,
  type HookAnswer,
  type HookCaller,
  type HookEvent,
  type HookRequest,
  type HookOutcome,
  type PublishHookRequest,
  type RpcHookRequest,
  type SubscribeHookRequest,
} from './hooks.js';
export { HMAC_ALGORITHMS, loadPublicKey, type LoadedPublicKey, type PublicKeyInput } from './keys.js';
export {
  ChannelPermissions,
  PERMISSION_ACTIONS,
  SUB_PLACEHOLDER,
  substituteSub,
  type ChannelsClaim,
  type PermissionAction,
} from './permissions.js';
export {
  DEFAULT_MAX_TOKEN_LENGTH,
  TokenVerifier,
  type ConnectionIdentity,
  type SubscriptionGrant,
  type TokenVerifierOptions,
} from './token-verifier.js';

/** Everything auth needs at run time, built from the configuration. */
export interface Auth {
  readonly verifier: TokenVerifier;
  readonly authenticator: Authenticator;
  readonly access: ChannelAccess;
  readonly limiter: FailureLimiter;
  /** Present when `auth.hooks.url` is set. */
  readonly hooks: BackendHooks | undefined;
  /** Whether `event` goes to the backend first: `connect`/`rpc` globally, `subscribe`/`publish` per namespace. */
  hookEnabled(event: 'connect' | 'rpc'): boolean;
  hookEnabled(event: 'subscribe' | 'publish', namespace: string): boolean;
  /** Closes the hooks' connection pool. */
  close(): Promise<void>;
}

export interface CreateAuthOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
}

/** Builds the auth parts from a resolved configuration. Throws an `Error` when a key cannot be used. */
export function createAuth(config: HeraldConfig, opts: CreateAuthOptions = {}): Auth {
  const a = config.auth;
  const common = {
    ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
    ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
  };
  const verifier = new TokenVerifier({
    hmacSecret: a.hmacSecret,
    publicKeys: a.publicKeys,
    jwksUrl: a.jwksUrl,
    jwksCacheTtl: a.jwksCacheTtl,
    jwksCooldown: a.jwksCooldown,
    algorithms: a.algorithms,
    issuer: a.issuer,
    audience: a.audience,
    clockTolerance: a.clockTolerance,
    maxTokenLength: a.maxTokenLength,
    ...common,
  });
  const limiter = new FailureLimiter({
    maxFailures: a.maxFailuresPerMinute,
    windowMs: 60_000,
    ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
  });
  const metrics = opts.metrics;
  const refusals = new Map<string, Counter>();
  const authenticator = new Authenticator({
    verifier,
    limiter,
    anonymousConnect: a.anonymousConnect,
    refused: (code) => {
      if (metrics === undefined) return;
      let c = refusals.get(code);
      if (c === undefined) {
        const reason = code.replace(/^HERALD_ERR_(AUTH_)?/, '').toLowerCase();
        c = metrics.counter('herald_auth_failures_total', 'Connections refused by authentication, by reason', {
          reason,
        });
        refusals.set(code, c);
      }
      c.inc();
    },
  });
  const access = new ChannelAccess({ verifier, policy: (ns) => namespaceOptions(config, ns) });
  const hooks =
    a.hooks.url !== ''
      ? new BackendHooks({
          url: a.hooks.url,
          timeout: a.hooks.timeout,
          maxConnections: a.hooks.maxConnections,
          apiKey: a.hooks.apiKey,
          ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
          ...common,
        })
      : undefined;
  function hookEnabled(event: 'connect' | 'rpc' | 'subscribe' | 'publish', namespace?: string): boolean {
    if (hooks === undefined) return false;
    if (event === 'connect' || event === 'rpc') return a.hooks[event];
    return namespaceOptions(config, namespace ?? '').hooks.includes(event);
  }
  return {
    verifier,
    authenticator,
    access,
    limiter,
    hooks,
    hookEnabled,
    close: () => hooks?.close() ?? Promise.resolve(),
  };
}
