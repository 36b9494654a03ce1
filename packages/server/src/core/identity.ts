/**
 * Who a connection is, as the authorizer established it. A leaf module: the session carries an
 * identity and the authorizer makes one, and neither needs the other to say what it is.
 */

/** Who a connection is. */
export interface SessionIdentity {
  /** From the token's `sub`; '' for anonymous clients. */
  readonly userId: string;
  readonly anonymous: boolean;
  /** When the token expires (ms since the epoch); undefined: never. */
  readonly expiresAt: number | undefined;
  /** The token's `info` claim. */
  readonly info?: unknown;
}

export const ANONYMOUS_IDENTITY: SessionIdentity = Object.freeze({ userId: '', anonymous: true, expiresAt: undefined });
