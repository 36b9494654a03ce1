/**
 * The SharedWorker side: `serveSharedWorker()` makes the worker the owner of the connection of the
 * tabs that connect to it (the first tab's URL and options open it). A tab is a peer from its
 * `hello` until its lock is released (it closed, or navigated away) or it says `bye`. When the last
 * tab is gone, the connection closes; the next tab opens a new one.
 */
import { lockName, whenGone, type ToOwner } from './messages.js';
import { Owner, type Peer } from './owner.js';

interface ConnectEvent {
  readonly ports: readonly MessagePort[];
}

/** Call it in a SharedWorker script (`herald-shared.min.js` does it when it runs as one). */
export function serveSharedWorker(): void {
  const scope = globalThis as unknown as { onconnect: ((e: ConnectEvent) => void) | null };
  let owner: Owner | undefined;
  const leave = (o: Owner, peer: Peer): void => {
    o.detach(peer);
    if (o.peers.size > 0) return;
    o.close();
    if (owner === o) owner = undefined;
  };
  scope.onconnect = (e) => {
    const port = e.ports[0];
    if (port === undefined) return;
    let peer: Peer | undefined;
    let o: Owner | undefined;
    port.onmessage = (ev: MessageEvent<ToOwner>) => {
      const m = ev.data;
      if (m.t !== 'hello') {
        if (o !== undefined && peer !== undefined) {
          if (m.t === 'bye') leave(o, peer);
          else o.receive(peer, m);
        }
        return;
      }
      o = owner ??= new Owner(m.url, m.opts, m.token);
      const p = (peer = { send: (x) => port.postMessage(x), subs: new Map(), token: m.token });
      const own = o;
      own.attach(p);
      const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
      if (locks !== undefined) whenGone(locks, lockName(m.name, m.tab), () => leave(own, p));
    };
    port.start();
  };
}
