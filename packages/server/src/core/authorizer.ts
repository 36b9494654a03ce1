/**
 * The hub asks an Authorizer who a connection is and what it may do. The auth module implements
 * it with JWTs, channel permissions and backend hooks; `namespaceAuthorizer` is the token-less
 * default that applies the namespace options alone. Every refusal is a HeraldError with a code.
 */
import { HeraldError, namespaceOf } from '@herald/protocol';
import { ANONYMOUS_IDENTITY, type SessionIdentity } from './identity.js';
import type { NamespacePolicy } from './policy.js';
import type { Session } from './session.js';

// Identities are what an Authorizer makes; they are defined in their own module so that the session
// can carry one without depending on the authorizer.
export { ANONYMOUS_IDENTITY, type SessionIdentity } from './identity.js';

export interface ConnectInfo {
  readonly clientId: string;
  readonly transport: string;
  readonly remoteAddress: string | undefined;
}

export interface Authorizer {
  /** The identity of a connecting client (`token` undefined: none given). */
  connect(token: string | undefined, info: ConnectInfo): Promise<SessionIdentity>;
  /** A new token for a connected session: the same user, a new expiry. */
  refresh(session: Session, token: string): Promise<SessionIdentity>;
  /**
   * Whether the session may subscribe to `stream`; resolves with the subscription token's `info`
   * claim when one was given and has it (shown in presence as `chanInfo`), else undefined.
   */
  subscribe(session: Session, stream: string, subscriptionToken: string | undefined): Promise<unknown>;
  /** Whether the session may publish; resolves with the data to publish (a hook may replace it). */
  publish(session: Session, channel: string, data: unknown): Promise<unknown>;
  history(session: Session, stream: string): void;
  /** Whether the session may see who is subscribed to `stream` (`presence`, `presenceStats`). */
  presence(session: Session, stream: string): void;
  /** Forwards an RPC call to the application; resolves with its answer. */
  rpc(session: Session, method: string, data: unknown): Promise<unknown>;
}

/** Namespace options only: every client is anonymous, tokens are refused. */
export function namespaceAuthorizer(policy: (namespace: string) => NamespacePolicy): Authorizer {
  const noTokens = (): never => {
    throw new HeraldError('HERALD_ERR_AUTH_TOKEN_INVALID', 'this server is configured without token keys');
  };
  return {
    connect: (token) =>
      token === undefined || token === '' ? Promise.resolve(ANONYMOUS_IDENTITY) : Promise.reject(noTokens()),
    refresh: () => Promise.reject(noTokens()),
    subscribe(_session, stream) {
      const ns = namespaceOf(stream);
      if (!policy(ns).anonymousSubscribe) {
        return Promise.reject(
          new HeraldError('HERALD_ERR_PERMISSION_DENIED', `anonymous clients may not subscribe to namespace "${ns}"`),
        );
      }
      return Promise.resolve(undefined);
    },
    publish(_session, channel, data) {
      const ns = namespaceOf(channel);
      if (!policy(ns).clientPublish) {
        return Promise.reject(
          new HeraldError('HERALD_ERR_PERMISSION_DENIED', `clients may not publish to namespace "${ns}"`),
        );
      }
      return Promise.resolve(data);
    },
    history(_session, stream) {
      const ns = namespaceOf(stream);
      if (!policy(ns).clientHistory) {
        throw new HeraldError('HERALD_ERR_PERMISSION_DENIED', `clients may not read history of namespace "${ns}"`);
      }
    },
    presence(session, stream) {
      const ns = namespaceOf(stream);
      if (!session.subscriptions.has(stream) && !policy(ns).anonymousSubscribe) {
        throw new HeraldError(
          'HERALD_ERR_PERMISSION_DENIED',
          `the presence of "${stream}" is visible only to clients that may subscribe to it`,
        );
      }
    },
    rpc: () =>
      Promise.reject(new HeraldError('HERALD_ERR_HOOK_UNAVAILABLE', 'no RPC backend is configured (auth.hooks.rpc)')),
  };
}
