/**
 * What `Herald` uses inside, kept out of the modules the published types reach: one transport's
 * connection, what a browser offers (`online`/`offline`, the page's
 * location), and the expiry of a JWT.
 */
import type { DisconnectPush } from '@herald/protocol';
import type { Transport, TransportName } from './transports/transport.js';

/** What a browser has, and Node has not. */
export const env = globalThis as Partial<Pick<typeof globalThis, 'addEventListener' | 'removeEventListener'>> & {
  navigator?: { onLine?: boolean };
  location?: { href: string; origin: string };
};

/** One transport's connection. */
export interface Conn {
  tr: Transport;
  readonly name: TransportName;
  /** Index of the transport to try if this one fails to connect. */
  readonly next: number;
  dis?: DisconnectPush;
}

/** The `exp` of a JWT in ms, if the token is one. */
export function expiry(token: string): number | undefined {
  try {
    const part = (token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(part)) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
