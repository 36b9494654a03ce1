/**
 * The hub's Authorizer, built from the auth parts: connection tokens (Authenticator), channel
 * permissions and namespace rules (ChannelAccess), subscription tokens, and backend hooks.
 */
import { HeraldError, namespaceOf } from '@herald/protocol';
import type { Authorizer, ConnectInfo } from '../core/authorizer.js';
import type { SessionIdentity } from '../core/identity.js';
import type { Session } from '../core/session.js';
import type { ClientIdentity } from './authenticator.js';
import type { Auth } from './index.js';

/** The identity sessions carry is the authenticator's (a SessionIdentity with permissions). */
function identityOf(session: Session): ClientIdentity {
  return session.identity as ClientIdentity;
}

export class SessionAuthorizer implements Authorizer {
  constructor(private readonly auth: Auth) {}

  async connect(token: string | undefined, info: ConnectInfo): Promise<SessionIdentity> {
    const identity = await this.auth.authenticator.authenticate(token, info.remoteAddress);
    if (this.auth.hookEnabled('connect') && this.auth.hooks !== undefined) {
      await this.auth.hooks.connect({
        client: info.clientId,
        user: identity.userId,
        transport: info.transport,
        ...(info.remoteAddress !== undefined ? { remoteAddress: info.remoteAddress } : {}),
      });
    }
    return identity;
  }

  refresh(session: Session, token: string): Promise<SessionIdentity> {
    return this.auth.authenticator.refresh(identityOf(session), token, session.remoteAddress);
  }

  async subscribe(session: Session, stream: string, subscriptionToken: string | undefined): Promise<unknown> {
    const identity = identityOf(session);
    const decision = await this.auth.access.subscribe(identity, stream, subscriptionToken);
    if (this.auth.hooks !== undefined && this.auth.hookEnabled('subscribe', namespaceOf(stream))) {
      await this.auth.hooks.subscribe({ client: session.id, user: identity.userId, channel: stream });
    }
    return decision.info;
  }

  async publish(session: Session, channel: string, data: unknown): Promise<unknown> {
    const identity = identityOf(session);
    this.auth.access.publish(identity, channel, session.subscriptions.has(channel));
    if (this.auth.hooks !== undefined && this.auth.hookEnabled('publish', namespaceOf(channel))) {
      const answer = await this.auth.hooks.publish({ client: session.id, user: identity.userId, channel, data });
      return answer.hasData ? answer.data : data;
    }
    return data;
  }

  history(session: Session, stream: string): void {
    this.auth.access.history(identityOf(session), stream, session.subscriptions.has(stream));
  }

  presence(session: Session, stream: string): void {
    this.auth.access.presence(identityOf(session), stream, session.subscriptions.has(stream));
  }

  async rpc(session: Session, method: string, data: unknown): Promise<unknown> {
    if (this.auth.hooks === undefined || !this.auth.hookEnabled('rpc')) {
      throw new HeraldError('HERALD_ERR_HOOK_UNAVAILABLE', 'no RPC backend is configured (auth.hooks.rpc)');
    }
    const answer = await this.auth.hooks.rpc({ client: session.id, user: session.userId, method, data });
    return answer.data;
  }
}
