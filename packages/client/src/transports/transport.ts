/**
 * The boundary between the client core (`Herald`) and one transport. A transport opens one
 * connection, hands every frame it receives to its sink (replies, pushes; the HTTP transports turn
 * their wire formats into the WebSocket protocol's frames), sends batches of commands, and reports
 * its end once. It keeps no subscription state: the core owns subscriptions and cursors.
 */
import type { Command, ErrorBody, HeraldError, Push, Reply, StreamPosition } from '@herald/protocol';

export type TransportName = 'websocket' | 'http-stream' | 'sse' | 'long-poll';

/** A command as the SDK sends it. */
export type OutFrame = Command;

/** A frame as a transport delivers it. */
export type InFrame = Reply | Push | { id?: undefined; error: ErrorBody };

/** The WebSocket constructor: the browser's, Node's `ws`, or one given in the options. */
export type WebSocketLike = new (url: string, protocols?: string) => WebSocket;

/** The wire format on WebSocket (the other transports always speak JSON). */
export type WireFormat = 'json' | 'msgpack';

export interface TransportContext {
  /** The server's base URL (`http(s)://host[:port][/prefix]`, no trailing slash). */
  readonly base: string;
  /** The connection token now (it may be renewed while the connection lasts). */
  readonly token: () => string | undefined;
  readonly fetch: typeof fetch;
  readonly WebSocket?: WebSocketLike | undefined;
  readonly format?: WireFormat | undefined;
  readonly credentials: RequestCredentials;
  /** How long a long-poll may be held by the server, in ms. */
  readonly pollTimeout: number;
  /** The client's `connectTimeout`, ms: the margin a poll's answer gets on top of `pollTimeout`. */
  readonly connectTimeout: number;
  /** Positions of the subscriptions to poll (long-polling only). */
  readonly cursors: () => ReadonlyMap<string, StreamPosition>;
}

export interface TransportSink {
  frame(frame: InFrame): void;
  /**
   * Bytes arrived on what carries the server's frames (the socket, the stream, the poll — never a
   * reply to `POST /send`, which says nothing about them): the connection is alive.
   */
  alive(): void;
  /**
   * The connection ended by itself (never called after `close`). `error`: what the server said
   * when it refused it (an HTTP error answer), or why the client gave up on it.
   */
  closed(code: number, reason: string, error?: HeraldError): void;
}

export interface Transport {
  send(frames: readonly OutFrame[]): void;
  /** Ends the connection. `hard` also aborts commands in flight (HTTP transports let them finish otherwise). */
  close(hard: boolean): void;
  /** The subscriptions changed: a transport that polls starts over with the new cursors. */
  refresh?(): void;
}

export type TransportFactory = (ctx: TransportContext, sink: TransportSink) => Transport;

/**
 * A transport as the `transports` option takes it (`import { websocket, sse } from
 * '@herald/client/core'`): a bundle holds only the transports it lists.
 */
export interface HeraldTransport {
  readonly name: TransportName;
  /** Opens one connection (internal: the client calls it). */
  readonly open: TransportFactory;
}

/** `base + path`, with the parameters that are set and the connection token. */
export function buildUrl(ctx: TransportContext, path: string, params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...params, token: ctx.token() })) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return ctx.base + path + (s === '' ? '' : '?' + s);
}

/** The close code an HTTP refusal stands for: token problems map to the disconnect codes 3511/3510. */
export function refusalCode(code: string | undefined): number {
  if (code === 'HERALD_ERR_AUTH_TOKEN_EXPIRED') return 3511;
  return code?.startsWith('HERALD_ERR_AUTH_TOKEN') === true ? 3510 : 1006;
}
