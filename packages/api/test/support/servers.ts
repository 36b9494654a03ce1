/**
 * What the tests of @herald/api watch on a Herald server: the TCP connections it accepts (and each
 * one's close, to await), the HTTP requests it receives, and the publications it applies (through
 * the server's `herald:publish` diagnostics channel).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Server as NetServer, Socket } from 'node:net';
import { PUBLISH_CHANNEL, type PublishDiagnostic } from '@herald/server';

export interface ConnectionCounter {
  /** Connections accepted since counting started. */
  readonly accepted: Socket[];
  /** Resolves when the `n`-th accepted connection (1-based) has closed. */
  closed(n: number): Promise<void>;
  /** Requests received since counting started. */
  requests: number;
}

/** Counts the connections and requests `server` (a HeraldServer's `httpServer`) accepts. */
export function countConnections(server: NetServer | undefined): ConnectionCounter {
  if (server === undefined) throw new Error('the server is not listening');
  const accepted: Socket[] = [];
  const closes: Promise<void>[] = [];
  const c: ConnectionCounter = {
    accepted,
    requests: 0,
    closed: (n) => {
      const p = closes[n - 1];
      if (p === undefined) throw new Error(`connection ${n} was never accepted (${accepted.length} were)`);
      return p;
    },
  };
  server.on('connection', (socket: Socket) => {
    accepted.push(socket);
    closes.push(new Promise((resolve) => socket.once('close', () => resolve())));
  });
  server.on('request', () => c.requests++);
  return c;
}

/** Calls `fn` for every publication any Herald server of this process applies; returns the unsubscribe. */
export function onPublish(fn: (d: PublishDiagnostic) => void): () => void {
  const listener = (msg: unknown): void => fn(msg as PublishDiagnostic);
  subscribe(PUBLISH_CHANNEL, listener);
  return () => unsubscribe(PUBLISH_CHANNEL, listener);
}
