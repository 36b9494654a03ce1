/**
 * Sockets that are accepted but have not asked for anything yet: no complete HTTP/1 request head,
 * no HTTP/2 connection preface (a TLS handshake in progress counts as nothing asked). Such a socket
 * costs the server a file descriptor and memory while giving it nothing to act on, so:
 *
 * - each one has a deadline, `http.headersTimeout` from the moment it was accepted, after which it is
 *   destroyed (Node's own timers start later, or never: the TLS handshake timer runs only until the
 *   handshake, HTTP/1's header timer only once the handshake is done, and a `clientError` socket was
 *   never destroyed);
 * - they are counted, so that the admission check counts them against `limits.maxConnections` beside
 *   the client connections (docs/configuration.md, "Connection limit").
 *
 * One timer per pending socket, with the socket as its argument (no closure), cleared by the first
 * request; the per-socket state is one symbol-keyed property.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Counter } from '../core/metrics.js';

const DEADLINE = Symbol('herald.firstRequestDeadline');
type PendingSocket = Duplex & { [DEADLINE]?: NodeJS.Timeout | undefined };

export class PendingSockets {
  private pending = 0;

  constructor(
    private readonly timeoutMs: number,
    /** Counts the sockets destroyed because their deadline passed. */
    readonly timedOut: Counter = { inc: () => undefined },
  ) {}

  /** Sockets accepted that have not sent their first request head (or HTTP/2 preface) yet. */
  get count(): number {
    return this.pending;
  }

  /** A socket was just accepted: it has `timeoutMs` to ask for something. */
  add(socket: net.Socket): void {
    const s = socket as PendingSocket;
    if (s[DEADLINE] !== undefined) return;
    s[DEADLINE] = setTimeout(expire, this.timeoutMs, this, s);
    this.pending++;
  }

  /**
   * The socket asked for something (its first request head, its HTTP/2 preface) or closed: its
   * deadline is lifted. Takes the TLS socket or the TCP socket under it; a no-op after the first call.
   */
  settle(socket: Duplex): void {
    const s = acceptedSocketOf(socket) as PendingSocket;
    const timer = s[DEADLINE];
    if (timer === undefined) return;
    clearTimeout(timer);
    s[DEADLINE] = undefined;
    this.pending--;
  }
}

function expire(set: PendingSockets, socket: PendingSocket): void {
  set.settle(socket);
  set.timedOut.inc();
  // Over TLS this is the TCP socket: destroying it closes the TLS socket on top as well.
  socket.destroy();
}

/**
 * The TCP socket the server accepted under `socket`: itself, or for a TLS socket the one it wraps.
 * Node keeps that one as `_parent` (server-side TLS sockets always wrap an accepted socket); if a
 * later Node stopped doing so, the TLS socket itself is returned and test/abuse-sockets.test.ts
 * fails (an honest TLS connection would be cut at its deadline).
 */
export function acceptedSocketOf(socket: Duplex): Duplex {
  if (!(socket instanceof tls.TLSSocket)) return socket;
  const parent = (socket as tls.TLSSocket & { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : socket;
}
