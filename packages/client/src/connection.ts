/**
 * The connection's public types: its states and events. The connection itself — one logical
 * connection over the first transport that works, reconnecting with backoff, liveness,
 * make-before-break replacement — is run by `Herald` (herald.ts), whose insides stay private.
 */
import type { HeraldError } from '@herald/protocol';
import type { TransportName } from './transports/transport.js';

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'closed';

export interface StateEvent {
  state: ConnectionState;
  prev: ConnectionState;
  reason: string;
  /** The close or disconnect code that caused the change, when there is one. */
  code?: number;
  /** `connecting` after a loss: the next attempt starts in this many ms (backoff, or the server's hint). */
  retryIn?: number;
  /**
   * Set when a failure caused this event: why a connect cycle failed (every transport was tried),
   * or why the client stopped (a refused token, for example).
   */
  error?: HeraldError;
}

export interface ConnectedEvent {
  client: string;
  transport: TransportName;
}

export interface HeraldEvents {
  state: StateEvent;
  /** A transport is connected: after each (re)connect, and after an upgrade or a token renewal. */
  connected: ConnectedEvent;
  /**
   * A failure no caller can be told about: a connect cycle failed (a `HeraldError` saying why), the
   * token was refused, `getToken` failed, the server refused a frame.
   */
  error: unknown;
}
