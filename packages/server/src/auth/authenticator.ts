/**
 * The connection-level entry point: turns the token a client presents (or its absence) into a
 * `ClientIdentity`, applying `auth.anonymousConnect` and the per-address failure limit, and checks
 * a refreshed token against the identity it replaces. Transports call it once per connection and
 * once per refresh; what the identity may do per channel is `ChannelAccess`'s business.
 */
import { HeraldError } from '@herald/protocol';
import type { ClientAuth } from './access.js';
import type { FailureLimiter } from './failure-limiter.js';
import { ChannelPermissions } from './permissions.js';
import type { TokenVerifier } from './token-verifier.js';

/** Who a connection is. Anonymous: `userId` '', no permissions, no expiry. */
export interface ClientIdentity extends ClientAuth {
  readonly anonymous: boolean;
  /** When the token expires (ms since the epoch); undefined: never (anonymous, or no `exp`). */
  readonly expiresAt: number | undefined;
  /** The token's `info` claim (shown in presence). */
  readonly info?: unknown;
}

export const ANONYMOUS: ClientIdentity = Object.freeze({
  userId: '',
  anonymous: true,
  expiresAt: undefined,
  permissions: ChannelPermissions.none,
});

export interface AuthenticatorOptions {
  readonly verifier: TokenVerifier;
  readonly limiter: FailureLimiter;
  /** Whether a client without a token is accepted (as anonymous). */
  readonly anonymousConnect: boolean;
  /** Told of each refused connection, with the error code (metrics). */
  readonly refused?: (code: string) => void;
}

export class Authenticator {
  private readonly verifier: TokenVerifier;
  private readonly limiter: FailureLimiter;
  readonly anonymousConnect: boolean;
  private readonly refused: ((code: string) => void) | undefined;

  constructor(opts: AuthenticatorOptions) {
    this.verifier = opts.verifier;
    this.limiter = opts.limiter;
    this.anonymousConnect = opts.anonymousConnect;
    this.refused = opts.refused;
  }

  /**
   * The identity of a connecting client. `token` undefined or '' means "no token": anonymous if
   * `anonymousConnect`, else `HERALD_ERR_AUTH_TOKEN_REQUIRED`. A token that is given is verified and
   * never falls back to anonymous. Rejects with `HERALD_ERR_AUTH_RATE_LIMITED` before looking at
   * the token when `remoteAddress` failed too often; each failed verification counts against it
   * (except `HERALD_ERR_AUTH_KEYS_UNAVAILABLE`, which is the server's problem, not the client's).
   */
  async authenticate(token: string | undefined, remoteAddress?: string): Promise<ClientIdentity> {
    try {
      return await this.check(token, remoteAddress);
    } catch (err) {
      this.refused?.(err instanceof HeraldError ? err.code : 'HERALD_ERR_INTERNAL');
      throw err;
    }
  }

  private async check(token: string | undefined, remoteAddress?: string): Promise<ClientIdentity> {
    if (token === undefined || token === '') {
      if (this.anonymousConnect) return ANONYMOUS;
      throw new HeraldError('HERALD_ERR_AUTH_TOKEN_REQUIRED', 'this server accepts only connections with a token');
    }
    this.limiter.check(remoteAddress);
    try {
      const id = await this.verifier.verifyConnectionToken(token);
      return {
        userId: id.userId,
        anonymous: false,
        expiresAt: id.expiresAt,
        permissions: id.permissions,
        ...(id.info !== undefined ? { info: id.info } : {}),
      };
    } catch (err) {
      if (!(err instanceof HeraldError) || err.code !== 'HERALD_ERR_AUTH_KEYS_UNAVAILABLE') {
        this.limiter.fail(remoteAddress);
      }
      throw err;
    }
  }

  /**
   * Verifies a token that replaces `current`'s (in-band refresh): it must be valid and for the same
   * user (`HERALD_ERR_AUTH_TOKEN_CLAIMS` otherwise; an anonymous connection cannot become a user by
   * refreshing: it reconnects with a token). The result replaces the connection's identity:
   * permissions and expiry may change; subscriptions the new permissions no longer allow are the
   * caller's to drop.
   */
  async refresh(current: ClientIdentity, token: string, remoteAddress?: string): Promise<ClientIdentity> {
    if (current.anonymous) {
      throw new HeraldError(
        'HERALD_ERR_AUTH_TOKEN_CLAIMS',
        'an anonymous connection has no token to refresh; reconnect with a token',
      );
    }
    const next = await this.authenticate(token, remoteAddress);
    if (next.userId !== current.userId) {
      this.limiter.fail(remoteAddress);
      throw new HeraldError(
        'HERALD_ERR_AUTH_TOKEN_CLAIMS',
        'the refreshed token is for another user; a connection keeps its user (reconnect to change it)',
      );
    }
    return next;
  }
}
