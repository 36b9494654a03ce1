import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Session ids for `POST /send`: `<clientId>.<mac>`, where mac is an HMAC of the client id with the
 * node's (or the cluster's shared) session secret. Knowing another client's id is not enough to
 * send commands as that client: the mac is only ever given to the client in its own first
 * event/line/response. Any node holding the secret can verify an id, so long-poll sessions need no
 * sticky routing.
 */
export class SessionTokens {
  private readonly secret: Buffer;

  constructor(secret: string) {
    this.secret = secret === '' ? randomBytes(32) : Buffer.from(secret);
  }

  issue(clientId: string): string {
    return `${clientId}.${this.mac(clientId)}`;
  }

  /** The client id of a valid session token, else undefined. */
  verify(token: unknown): string | undefined {
    if (typeof token !== 'string' || token.length > 256) return undefined;
    const dot = token.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const clientId = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1));
    const expected = Buffer.from(this.mac(clientId));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    return clientId;
  }

  private mac(clientId: string): string {
    return createHmac('sha256', this.secret).update(clientId).digest('base64url').slice(0, 32);
  }
}
