/**
 * Who may do what on a channel: the token's grants (`ChannelPermissions`), a subscription token, and
 * the namespace's options, combined in one place so that every transport applies the same rules.
 * Each method returns when the action is allowed and throws a `HeraldError` when it is not.
 *
 * | action    | allowed when (first match wins)                                                         |
 * | --------- | --------------------------------------------------------------------------------------- |
 * | subscribe | a subscription token for exactly this stream and user was given and verifies;           |
 * |           | else refused if the namespace has `requireSubscriptionToken`;                           |
 * |           | else the token grants `subscribe`, or the namespace has `anonymousSubscribe`            |
 * | publish   | the token grants `publish`; or `clientPublish` (in a `requireSubscriptionToken`          |
 * |           | namespace, only for a client subscribed to the channel)                                  |
 * | history   | the token grants `history`; or `clientHistory` and the client is subscribed to the      |
 * |           | stream or could subscribe to it without a subscription token                            |
 * | presence  | the token grants `presence`; or the client is subscribed to the stream or could         |
 * |           | subscribe to it without a subscription token                                            |
 *
 * A subscription token given for a stream is always checked, also where the namespace does not
 * require one: a bad token is refused, never ignored.
 */
import { HeraldError, namespaceOf } from '@herald/protocol';
import type { ChannelPermissions } from './permissions.js';
import type { SubscriptionGrant, TokenVerifier } from './token-verifier.js';

/** The namespace options access decisions read (the config's `NamespaceOptions` has them). */
export interface NamespaceAccess {
  readonly anonymousSubscribe: boolean;
  readonly clientPublish: boolean;
  readonly clientHistory: boolean;
  readonly requireSubscriptionToken: boolean;
}

/** What the server knows of a connection's identity. */
export interface ClientAuth {
  /** '' for an anonymous connection. */
  readonly userId: string;
  readonly permissions: ChannelPermissions;
}

export type SubscribeVia = 'subscription-token' | 'grant' | 'namespace';

export interface SubscribeDecision {
  readonly via: SubscribeVia;
  /** When a subscription token allowed it: the token's `exp` (ms), after which the SDK refreshes it. */
  readonly expiresAt?: number | undefined;
  /** When a subscription token allowed it: its `info` claim. */
  readonly info?: unknown;
}

export interface ChannelAccessOptions {
  readonly verifier: TokenVerifier;
  readonly policy: (namespace: string) => NamespaceAccess;
}

export class ChannelAccess {
  private readonly verifier: TokenVerifier;
  private readonly policy: (namespace: string) => NamespaceAccess;

  constructor(opts: ChannelAccessOptions) {
    this.verifier = opts.verifier;
    this.policy = opts.policy;
  }

  /** `stream` must be a valid channel or subtree pattern (checked by the caller). */
  async subscribe(client: ClientAuth, stream: string, subscriptionToken?: string): Promise<SubscribeDecision> {
    const namespace = namespaceOf(stream);
    const ns = this.policy(namespace);
    if (subscriptionToken !== undefined && subscriptionToken !== '') {
      const grant: SubscriptionGrant = await this.verifier.verifySubscriptionToken(
        subscriptionToken,
        stream,
        client.userId,
      );
      return { via: 'subscription-token', expiresAt: grant.expiresAt, info: grant.info };
    }
    if (ns.requireSubscriptionToken) {
      throw new HeraldError(
        'HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED',
        `namespace "${namespace}" needs a subscription token for each subscription`,
      );
    }
    if (client.permissions.canSubscribe(stream)) return { via: 'grant' };
    if (ns.anonymousSubscribe) return { via: 'namespace' };
    if (client.userId === '') {
      throw new HeraldError(
        'HERALD_ERR_AUTH_TOKEN_REQUIRED',
        `namespace "${namespace}" does not allow anonymous subscribers: connect with a token`,
      );
    }
    throw new HeraldError('HERALD_ERR_PERMISSION_DENIED', `the token does not allow subscribing to "${stream}"`);
  }

  /** `channel` must be a valid exact channel. `subscribed`: the client holds a subscription to it. */
  publish(client: ClientAuth, channel: string, subscribed: boolean): void {
    if (client.permissions.canPublish(channel)) return;
    const namespace = namespaceOf(channel);
    const ns = this.policy(namespace);
    if (ns.clientPublish && (!ns.requireSubscriptionToken || subscribed)) return;
    throw new HeraldError(
      'HERALD_ERR_PERMISSION_DENIED',
      ns.clientPublish
        ? `namespace "${namespace}" lets only its subscribers publish: subscribe to "${channel}" first`
        : `clients may not publish to "${channel}" (namespace "${namespace}" has clientPublish off and the token grants no publish)`,
    );
  }

  /** `subscribed`: the client holds a subscription to exactly this stream. */
  history(client: ClientAuth, stream: string, subscribed: boolean): void {
    if (client.permissions.canReadHistory(stream)) return;
    const namespace = namespaceOf(stream);
    const ns = this.policy(namespace);
    if (!ns.clientHistory) {
      throw new HeraldError(
        'HERALD_ERR_PERMISSION_DENIED',
        `clients may not read history of namespace "${namespace}" (clientHistory is off and the token grants no history)`,
      );
    }
    if (subscribed) return;
    if (!ns.requireSubscriptionToken && (client.permissions.canSubscribe(stream) || ns.anonymousSubscribe)) return;
    throw new HeraldError(
      'HERALD_ERR_PERMISSION_DENIED',
      `the history of "${stream}" is readable only by clients that may subscribe to it`,
    );
  }

  /** `subscribed`: the client holds a subscription to exactly this stream. */
  presence(client: ClientAuth, stream: string, subscribed: boolean): void {
    if (client.permissions.canSeePresence(stream) || subscribed) return;
    const ns = this.policy(namespaceOf(stream));
    if (!ns.requireSubscriptionToken && (client.permissions.canSubscribe(stream) || ns.anonymousSubscribe)) return;
    throw new HeraldError(
      'HERALD_ERR_PERMISSION_DENIED',
      `the presence of "${stream}" is visible only to clients that may subscribe to it and to tokens granting presence`,
    );
  }
}
