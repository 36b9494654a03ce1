/**
 * The boundary between the hub and a transport (WebSocket, SSE, HTTP streaming, long-polling). A
 * transport owns reading from its socket and hands commands to its `Session`; the session writes
 * encoded frames through this interface and closes it. Nothing else crosses the boundary.
 */
import type { SubscribeResult } from '@herald/protocol';

/**
 * What a transport can do; core decides by these, never by a transport's name, so a new transport
 * needs no change in core.
 */
export interface TransportTraits {
  /** The client sends its commands on this connection (WebSocket). */
  readonly readsCommands: boolean;
  /** While the connection is open, `POST /send` naming its client id runs commands on it (SSE, /stream). */
  readonly sendCommands: boolean;
  /**
   * No session outlives a request: the client's streams and cursors travel with each request, and
   * any node may run its `POST /send` commands (long-poll). A stateless client's subscribe is
   * answered with what the subscription would start with; its unsubscribe changes nothing here.
   */
  readonly stateless: boolean;
}

export interface TransportConnection {
  /** The transport's name, for logs, metrics and hooks (`websocket`, `sse`, `http-stream`, `long-poll`, ...). */
  readonly name: string;
  readonly traits: TransportTraits;
  /** Writes one batch of encoded frames (the encoder's `join` output). */
  write(data: Uint8Array): void;
  /**
   * Optional: writes several frames, each a complete message of the wire format, as one write
   * (`writev`), without joining them into one buffer first. Used only with an encoder whose `join`
   * is plain concatenation (`FrameEncoder.concatenates`).
   */
  writeFrames?(frames: readonly Uint8Array[]): void;
  /** Bytes accepted by `write` but not yet handed to the operating system. */
  bufferedAmount(): number;
  /**
   * Closes the connection with a disconnect code (the session has already written its `disconnect`
   * push). Must be idempotent; the transport reports the end through `Session.transportClosed()`.
   */
  close(code: number, reason: string): void;
  /**
   * Optional: told when a subscription was added or removed by a command (for example through
   * `POST /send`), so that a transport that carries cursors itself (SSE event ids) can update them.
   */
  subscribed?(result: Omit<SubscribeResult, 'publications'>): void;
  unsubscribed?(stream: string): void;
  /**
   * Optional, for transports that read commands from their own connection (WebSocket): stop and
   * restart reading the client, so that a client whose commands wait, or whose output is over half
   * its bound, cannot make the server hold more (back-pressure on commands).
   */
  pauseReading?(): void;
  resumeReading?(): void;
  /**
   * Optional: calls `drained` once, when the bytes counted by `bufferedAmount()` have been handed to
   * the operating system. Returns false (and never calls) when there is no such wait to report.
   */
  onDrained?(drained: () => void): boolean;
}
