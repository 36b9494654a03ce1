/**
 * The owner of the shared connection: one `Herald`, used on behalf of the tabs (`Peer`s). It
 * refcounts channels (one server subscription per channel, whatever the number of tabs on it),
 * sends each publication to the tabs subscribed to its stream, runs the commands of a tab and
 * answers that tab only, and asks a tab for tokens when the connection or a subscription needs one.
 * It tells every tab the connection's latest token (`setToken()` in any tab), so that a next owner
 * (after a handover) starts with it.
 * It runs in a SharedWorker (worker.ts) or in the leader tab (shared-herald.ts).
 */
import { HeraldError } from '@herald/protocol';
import { Herald, type HeraldOptions, type Subscription } from '../index.js';
import { fromWire, toWire, type ToOwner, type ToTab, type WireError } from './messages.js';

export interface Peer {
  send(m: ToTab): void;
  /** Its channels, each with whether it has a subscription `getToken`. */
  readonly subs: Map<string, boolean>;
  /** Whether it has a connection `getToken`. */
  readonly token: boolean;
}

interface Channel {
  readonly sub: Subscription;
  readonly peers: Set<Peer>;
}

interface Ask {
  readonly peer: Peer;
  readonly timer: ReturnType<typeof setTimeout>;
  resolve(token: string): void;
  reject(err: Error): void;
}

export class Owner {
  readonly herald: Herald;
  readonly peers = new Set<Peer>();
  closed = false;
  private readonly chans = new Map<string, Channel>();
  private readonly asks = new Map<number, Ask>();
  private nextAsk = 1;
  private readonly timeout: number;
  /** The connection's token, as given (`token`, then `setToken()`). */
  private token: string | undefined;
  /** Why the connection failed or stopped (the last `state` event's error); undefined once connected. */
  private err: WireError | undefined;

  /** `remoteToken`: the connection's tokens come from the tabs (a worker has no `getToken` of its own). */
  constructor(url: string, opts: HeraldOptions, remoteToken = false) {
    this.timeout = opts.timeout ?? 10_000;
    this.token = opts.token;
    const h = (this.herald = new Herald(url, {
      ...opts,
      getToken: remoteToken ? () => this.ask(undefined) : opts.getToken,
    }));
    h.on('state', ({ state, reason, code, retryIn, error }) => {
      if (state === 'connected') this.err = undefined;
      else if (error !== undefined) this.err = toWire(error);
      const e = error === undefined ? {} : { e: this.err };
      if (state !== 'closed')
        this.all({ t: 'state', state, reason, code, retryIn, client: h.client, transport: h.transport, ...e });
    });
    h.on('connected', (e) => this.all({ t: 'connected', ...e }));
    h.on('error', (err) => this.all({ t: 'error', e: toWire(err) }));
  }

  attach(peer: Peer): void {
    const h = this.herald;
    this.peers.add(peer);
    if (this.token !== undefined) peer.send({ t: 'token', v: this.token });
    const e = h.state === 'connected' || this.err === undefined ? {} : { e: this.err };
    const { client, transport } = h;
    peer.send({ t: 'state', state: h.state, reason: 'shared connection', client, transport, ...e });
    // A tab that joins a stopped connection hears why, as the tabs there when it stopped did.
    if (h.state === 'disconnected' && this.err !== undefined) peer.send({ t: 'error', e: this.err });
    if (h.client !== undefined && h.transport !== undefined)
      peer.send({ t: 'connected', client: h.client, transport: h.transport });
  }

  /** A tab is gone (it closed, or its lock was released): its subscriptions end, its asks fail. */
  detach(peer: Peer): void {
    if (!this.peers.delete(peer)) return;
    for (const ch of [...peer.subs.keys()]) this.unsub(peer, ch);
    for (const [id, a] of this.asks) if (a.peer === peer) this.answer(id, undefined, { message: 'the tab left' });
  }

  receive(peer: Peer, m: ToOwner): void {
    if (this.closed || !this.peers.has(peer)) return;
    switch (m.t) {
      case 'sub':
        return this.sub(peer, m);
      case 'unsub':
        return this.unsub(peer, m.ch);
      case 'call': {
        const fn = this.herald[m.m] as (...args: unknown[]) => Promise<unknown>;
        // Not answered once this owner is closed: the tab sends the command to the next owner.
        const reply = (r: Extract<ToTab, { t: 'result' }>): void => {
          if (!this.closed && this.peers.has(peer)) peer.send(r);
        };
        return void Promise.resolve([...m.a, m.o])
          .then((args) => fn.apply(this.herald, args))
          .then(
            (v) => reply({ t: 'result', id: m.id, v }),
            (err: unknown) => reply({ t: 'result', id: m.id, e: toWire(err) }),
          );
      }
      case 'token':
        this.token = m.v;
        this.all({ t: 'token', v: m.v });
        return this.herald.setToken(m.v);
      case 'answer':
        return this.answer(m.id, m.v, m.e);
      case 'connect':
        return this.herald.connect();
      case 'bye':
        return this.detach(peer);
      case 'hello':
        return;
    }
  }

  /** Ends the connection. The tabs are not told: they move to the next owner. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of this.asks.keys()) this.answer(id, undefined, { message: 'the shared connection closed' });
    this.herald.close();
  }

  private all(m: ToTab, peers: Iterable<Peer> = this.peers): void {
    if (this.closed) return;
    for (const p of peers) p.send(m);
  }

  private sub(peer: Peer, m: Extract<ToOwner, { t: 'sub' }>): void {
    const { ch } = m;
    peer.subs.set(ch, m.token);
    const known = this.chans.get(ch);
    if (known !== undefined) {
      known.peers.add(peer);
      const { state, cursor } = known.sub;
      peer.send({ t: 'sstate', ch, state, reason: 'shared subscription' });
      if (state === 'subscribed' && cursor !== undefined) {
        peer.send({ t: 'subscribed', ch, ev: { recovered: undefined, ...cursor } });
        peer.send({ t: 'pos', ch, at: cursor });
      }
      return;
    }
    let sub: Subscription;
    try {
      const getToken = m.token ? () => this.ask(ch) : undefined;
      sub = this.herald.subscribe(ch, { since: m.since, backlog: m.backlog, getToken });
    } catch (err) {
      peer.subs.delete(ch);
      return peer.send({ t: 'sstate', ch, state: 'unsubscribed', reason: String(err), e: toWire(err) });
    }
    const chan: Channel = { sub, peers: new Set([peer]) };
    this.chans.set(ch, chan);
    sub.on('publication', (p) => this.all({ t: 'pub', p }, chan.peers));
    for (const k of ['join', 'leave'] as const) sub.on(k, (v) => this.all({ t: 'pres', ch, k, v }, chan.peers));
    sub.on('state', (e) => {
      const error = e.error === undefined ? {} : { e: toWire(e.error) };
      this.all({ t: 'sstate', ch, state: e.state, reason: e.reason, ...error }, chan.peers);
      if (e.state !== 'unsubscribed' || this.chans.get(ch) !== chan) return;
      this.chans.delete(ch);
      for (const p of chan.peers) p.subs.delete(ch);
    });
    sub.on('subscribed', (ev) => {
      this.all({ t: 'subscribed', ch, ev }, chan.peers);
      // After the publications of the subscribe reply, which are delivered right after this event.
      queueMicrotask(() => {
        if (sub.cursor !== undefined) this.all({ t: 'pos', ch, at: sub.cursor }, chan.peers);
      });
    });
  }

  private unsub(peer: Peer, ch: string): void {
    peer.subs.delete(ch);
    const chan = this.chans.get(ch);
    if (chan === undefined || !chan.peers.delete(peer) || chan.peers.size > 0) return;
    this.chans.delete(ch);
    chan.sub.unsubscribe();
  }

  /** A token from a tab: the connection's (`ch` undefined) or a subscription's. */
  private ask(ch: string | undefined): Promise<string> {
    const peers = ch === undefined ? this.peers : (this.chans.get(ch)?.peers ?? []);
    const peer = [...peers].find((p) => (ch === undefined ? p.token : p.subs.get(ch) === true));
    if (peer === undefined) {
      return Promise.reject(new HeraldError('HERALD_ERR_CLIENT_DISCONNECTED', 'no tab left to give a token'));
    }
    return new Promise((resolve, reject) => {
      const id = this.nextAsk++;
      const timer = setTimeout(() => this.answer(id, undefined, { message: 'getToken: no answer' }), this.timeout);
      this.asks.set(id, { peer, timer, resolve, reject });
      peer.send({ t: 'ask', id, ch });
    });
  }

  private answer(id: number, v: string | undefined, e: WireError | undefined): void {
    const a = this.asks.get(id);
    if (a === undefined) return;
    this.asks.delete(id);
    clearTimeout(a.timer);
    if (e === undefined) a.resolve(v ?? '');
    else a.reject(fromWire(e));
  }
}
